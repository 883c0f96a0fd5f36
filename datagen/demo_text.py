"""Listing text for the demo export: titles and descriptions as sellers write them.

Informative but not perfect, on purpose, so that text + image beats either alone:

- most listings name their item ("Dyson V8 cordless hoover"), often with a brand, a size, a
  condition and a price in the text;
- some name an item whose words another category shares ("desk lamp" is Home & Garden, "desk" is
  Office Furniture; "kids bike" is Baby & Kids, "road bike" is Sports);
- about a quarter say nothing about the item ("Job lot, moving house, everything must go"), and
  some descriptions mention another category's thing ("will throw in a phone charger").

Noise like a real export's: misspellings, emoji, HTML entities and tags, accents from several
languages, empty descriptions and a few very long ones. Everything comes from the generator passed
in, so the demo export stays deterministic from ``--seed``.
"""

import numpy as np

# Per root category: (items, brands, details). Items are what a title names.
VOCABULARY: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "Appliances": (
        ("fridge freezer", "washing machine", "tumble dryer", "dishwasher", "microwave",
         "kettle", "toaster", "cooker", "hoover", "cordless vacuum", "air fryer", "chest freezer"),
        ("Bosch", "Hotpoint", "Beko", "Samsung", "Dyson", "Russell Hobbs", "Zanussi", "Indesit",
         "Ninja", "Breville", "Smeg"),
        ("A++ energy rating", "7kg drum", "1400 spin", "fully working", "integrated", "60cm wide",
         "frost free", "1.7 litre", "serviced last year", "plumbed in until yesterday"),
    ),
    "Baby & Kids Stuff": (
        ("pram", "pushchair", "cot bed", "high chair", "car seat", "baby walker", "kids bike",
         "play mat", "baby monitor", "toddler scooter", "changing table", "lego set"),
        ("Mamas & Papas", "Silver Cross", "iCandy", "Chicco", "Graco", "Joie", "Fisher-Price",
         "Maxi-Cosi", "Lego", "Vtech"),
        ("age 0-4 years", "isofix base", "suitable from birth", "smoke free home",
         "includes rain cover", "toddler size", "folds flat", "12 months+", "pet free home"),
    ),
    "Clothes, Footwear & Accessories": (
        ("dress", "trainers", "winter coat", "leather jacket", "handbag", "jeans", "boots",
         "wedding dress", "necklace", "watch", "hoodie", "heels"),
        ("Nike", "Adidas", "Zara", "Next", "Barbour", "Michael Kors", "Levi's", "Dr. Martens",
         "Pandora", "Ted Baker", "Primark"),
        ("size 10", "size 12", "UK 8", "UK 9", "size M", "size L", "worn once", "tags still on",
         "waist 32", "sterling silver", "genuine leather"),
    ),
    "Computers & Software": (
        ("laptop", "gaming pc", "monitor", "macbook", "keyboard", "graphics card", "printer ink",
         "desktop computer", "ssd", "router", "tablet", "webcam"),
        ("Dell", "HP", "Lenovo", "Apple", "Asus", "Acer", "Logitech", "Nvidia", "Microsoft",
         "Corsair"),
        ("16GB RAM", "512GB SSD", "i7 processor", "24 inch", "windows 11", "RTX 3060",
         "charger included", "1080p", "wiped and reset", "office installed"),
    ),
    "DIY Tools & Materials": (
        ("drill", "cordless drill", "circular saw", "tool box", "spirit level", "ladder",
         "plasterboard", "paving slabs", "jigsaw", "sander", "spanner set", "timber"),
        ("DeWalt", "Makita", "Bosch", "Ryobi", "Stanley", "Black & Decker", "Milwaukee",
         "Einhell", "Hilti"),
        ("18v", "2 batteries", "with case", "hardly used", "trade quality", "2.4m lengths",
         "brushless", "spare blades", "left over from a job", "sds plus"),
    ),
    "Health & Beauty": (
        ("hair straighteners", "perfume", "hair dryer", "makeup bag", "foundation", "aftershave",
         "nail kit", "electric toothbrush", "face cream", "lipstick set", "massage gun"),
        ("GHD", "Chanel", "Dior", "Oral-B", "Clinique", "L'Oréal", "Remington", "Estée Lauder",
         "Benefit", "Braun"),
        ("100ml", "50ml", "unopened", "boxed", "sealed", "shade 03", "travel size", "gift set",
         "barely used", "eau de parfum"),
    ),
    "Home & Garden": (
        ("sofa", "corner sofa", "dining table", "garden shed", "desk lamp", "wardrobe",
         "lawn mower", "rug", "bed frame", "patio set", "chest of drawers", "bookcase"),
        ("Ikea", "DFS", "John Lewis", "Habitat", "Dunelm", "Flymo", "Argos", "Next Home",
         "Keter", "Oak Furniture Land"),
        ("3 seater", "king size", "seats 6", "solid oak", "8x6", "grey fabric", "self assembly",
         "collection only", "needs a clean", "pet and smoke free"),
    ),
    "Music, Films, Books & Games": (
        ("guitar", "acoustic guitar", "keyboard piano", "dvd collection", "vinyl records",
         "books", "board game", "drum kit", "amp", "blu-ray box set", "violin", "jigsaw puzzle"),
        ("Fender", "Yamaha", "Gibson", "Roland", "Penguin", "Marshall", "Casio", "Hasbro",
         "Harry Potter", "Disney"),
        ("with case", "full set", "first edition", "all discs", "strings replaced", "hardback",
         "61 keys", "1000 pieces", "complete", "boxed"),
    ),
    "Office Furniture & Equipment": (
        ("office chair", "desk", "filing cabinet", "standing desk", "swivel chair",
         "conference table", "shredder", "whiteboard", "bookshelf", "laser printer", "pedestal",
         "meeting chairs"),
        ("Herman Miller", "Steelcase", "Brother", "Fellowes", "Bisley", "Ikea", "HP",
         "Kinnarps", "Staples"),
        ("adjustable height", "lumbar support", "4 drawer", "with keys", "mesh back",
         "160cm wide", "on castors", "ex office", "lockable", "a4"),
    ),
    "Other Goods": (
        ("concert tickets", "festival tickets", "collectable coins", "stamp album", "job lot",
         "wine glasses", "vintage postcards", "trading cards", "football programmes",
         "mystery box", "antique clock", "gift voucher"),
        ("Royal Mail", "Pokémon", "Ticketmaster", "Wedgwood", "Royal Doulton", "Panini"),
        ("2 tickets", "standing", "rare", "mixed lot", "collection of 50", "1970s",
         "face value", "e-tickets", "unsorted", "no timewasters"),
    ),
    "Phones, Mobile Phones & Telecoms": (
        ("iphone", "phone case", "samsung galaxy", "phone charger", "cordless phone",
         "smartphone", "screen protector", "pixel", "power bank", "sim free phone",
         "answering machine", "phone holder"),
        ("Apple", "Samsung", "Google", "Motorola", "BT", "Nokia", "Xiaomi", "OnePlus",
         "Panasonic", "Anker"),
        ("128GB", "64GB", "unlocked", "any network", "battery health 89%", "no scratches",
         "cracked screen", "boxed with charger", "dual sim", "5g"),
    ),
    "Sports, Leisure & Travel": (
        ("road bike", "mountain bike", "treadmill", "dumbbells", "tent", "golf clubs",
         "rowing machine", "exercise bike", "suitcase", "football boots", "kayak",
         "camping chairs"),
        ("Trek", "Specialized", "Carrera", "Boardman", "Callaway", "Coleman", "Vango",
         "Decathlon", "Nordictrack", "Samsonite"),
        ("54cm frame", "21 gears", "disc brakes", "4 man", "20kg set", "folding",
         "recently serviced", "cabin size", "waterproof", "full set"),
    ),
    "Video Games & Consoles": (
        ("ps4", "ps5 controller", "xbox one", "nintendo switch", "ps4 games", "gaming headset",
         "xbox controller", "switch games", "retro console", "gaming chair", "vr headset",
         "guitar hero"),
        ("Sony", "Microsoft", "Nintendo", "Sega", "Turtle Beach", "Razer", "Oculus"),
        ("1TB", "500GB", "2 controllers", "with games", "boxed", "fifa 23", "mario kart",
         "call of duty", "fully working", "jailbroken"),
    ),
}
CONDITIONS = ("barely used", "good condition", "brand new", "used but works perfectly",
              "collection only", "excellent condition", "spares or repairs", "like new",
              "a few marks", "from a smoke free home")
# Say nothing about the item: a title or description that any category could have.
GENERIC_TITLES = ("Job lot - must go", "Moving house sale", "Clearing out the loft",
                  "Bundle for sale", "Bargain!!", "Offers welcome", "Spare one, never used",
                  "Unwanted gift", "Everything must go", "Quick sale needed", "See description",
                  "Good condition, barely used")
GENERIC_LINES = ("Collection only.", "Cash on collection please.", "No timewasters.",
                 "Can deliver locally for a small fee.", "Open to sensible offers.",
                 "Message me for more pictures.", "First to see will buy.",
                 "Selling as no longer needed.", "From a pet free and smoke free home.",
                 "Reluctant sale.", "Still available if the advert is up.")
ACCENTED = ("Très bon état.", "Como nuevo, poco uso.", "Größe passt nicht mehr.",
            "Crème colour.", "Café owner clearing stock.", "Naïve me bought two.",
            "Perfekt für Anfänger.", "Ótimo estado.")
EMOJI = ("😊", "👍", "🔥", "✨", "📦", "💯", "🙂", "⭐")
ENTITIES = (" &amp; ", " &nbsp;", "&#39;", " &quot;as new&quot; ", " &pound;")
TAGS = (("<b>", "</b>"), ("<br>", ""), ("<p>", "</p>"), ("<i>", "</i>"), ("<br/>", ""))

# Probabilities of each kind of listing text (the rest names the category's item).
P_GENERIC = 0.25  # nothing about the item
P_OTHER_MENTION = 0.12  # the description also names another category's item
P_EMPTY_DESCRIPTION = 0.1
P_LONG_DESCRIPTION = 0.03
P_MISSPELL = 0.06  # per word of an informative title or description


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return str(options[int(rng.integers(len(options)))])


def _misspell(rng: np.random.Generator, text: str) -> str:
    """Swap, drop or double one letter in some words ("wahsing machine", "drll")."""
    words = text.split(" ")
    for i, word in enumerate(words):
        if len(word) < 4 or not word.isalpha() or rng.random() >= P_MISSPELL:
            continue
        j = int(rng.integers(1, len(word) - 1))
        kind = int(rng.integers(3))
        if kind == 0:
            words[i] = word[:j] + word[j + 1] + word[j] + word[j + 2:]
        elif kind == 1:
            words[i] = word[:j] + word[j + 1:]
        else:
            words[i] = word[:j] + word[j] + word[j:]
    return " ".join(words)


def _price_text(rng: np.random.Generator, price: str) -> str:
    amount = price.replace("£", "").replace(",", "") or "20"
    return _pick(rng, (f"{price} ono", f"£{amount} or nearest offer", f"{amount} quid",
                       f"Price {price} firm", f"Asking {price}"))


def _decorate(rng: np.random.Generator, text: str) -> str:
    """Emoji, HTML entities and tags, accents: the noise a scraped description carries."""
    if rng.random() < 0.25:
        text = f"{text} {_pick(rng, EMOJI)}"
    if rng.random() < 0.2:
        text = text.replace(" and ", _pick(rng, ENTITIES), 1) + _pick(rng, ENTITIES)
    if rng.random() < 0.2:
        opening, closing = TAGS[int(rng.integers(len(TAGS)))]
        text = f"{opening}{text}{closing}"
    if rng.random() < 0.1:
        text = f"{text} {_pick(rng, ACCENTED)}"
    return text


def _item_phrase(rng: np.random.Generator, category: str) -> str:
    items, brands, details = VOCABULARY[category]
    item = _pick(rng, items)
    parts = [_pick(rng, brands)] if rng.random() < 0.6 else []
    parts.append(item)
    if rng.random() < 0.5:
        parts.append(_pick(rng, details))
    return " ".join(parts)


def listing_text(rng: np.random.Generator, category: str, condition: str, location: str,
                 price: str, line_break: str) -> tuple[str, str]:
    """A (title, description) pair for a product of root ``category``.

    ``condition``, ``location``, ``price`` and ``line_break`` ("\\r" or " ") come from the export's
    own draws, so they match the product row.
    """
    town = location.split(",")[0]
    generic = rng.random() < P_GENERIC
    if generic:
        name = _pick(rng, GENERIC_TITLES)
        lines = [_pick(rng, GENERIC_LINES) for _ in range(int(rng.integers(1, 3)))]
    else:
        phrase = _item_phrase(rng, category)
        name = _misspell(rng, phrase[:1].upper() + phrase[1:])
        if rng.random() < 0.5:
            name = f"{name} - {condition.lower()}"
        items, _, details = VOCABULARY[category]
        lines = [_misspell(rng, f"{condition.capitalize()} {_pick(rng, items)}, "
                                f"{_pick(rng, details)}."),
                 _pick(rng, GENERIC_LINES)]
    if rng.random() < P_OTHER_MENTION:
        other = _pick(rng, tuple(c for c in VOCABULARY if c != category))
        lines.append(f"Will throw in a {_pick(rng, VOCABULARY[other][0])} if you want it.")
    if rng.random() < 0.5:
        lines.append(f"{_price_text(rng, price)}.")
    lines.append(f"Collection from {town}.")
    if rng.random() < P_EMPTY_DESCRIPTION:
        lines = []
    elif rng.random() < P_LONG_DESCRIPTION:
        lines += [_pick(rng, GENERIC_LINES) for _ in range(int(rng.integers(150, 400)))]
    description = _decorate(rng, line_break.join(lines)) if lines else ""
    title = f"{name} | in {location} | Gumtree"
    return title, description
