"""A cleaned dataset with listing text, prices and places, for the search tests.

:func:`make_listings_dataset` writes what ``training.prepare`` writes for an export: the images and
manifest of :func:`tests.support.data.make_clean_dataset` plus ``products.csv``. Titles name a
noun of the listing's category, so a lexical query for that noun finds its category.
"""

import csv
from pathlib import Path

from tests.support.data import make_clean_dataset

# One noun per category, in the sorted order make_clean_dataset uses (first 3 roots + more).
NOUNS = ("kettle", "pram", "trainers", "laptop", "drill", "perfume", "sofa", "guitar", "desk",
         "ticket", "iphone", "bicycle", "console")
ADJECTIVES = ("barely used", "vintage", "brand new", "spare", "good condition", "unwanted gift")
LOCATIONS = ("Leeds, West Yorkshire", "Hackney, London", "Camden, London", "Bristol, Bristol",
             "Zürich, Switzerland")
PRODUCT_COLUMNS = ("id", "product_name", "category", "root_category", "product_description",
                   "price", "location")


def make_listings_dataset(root: Path, num_classes: int = 3, products_per_class: int = 6,
                          images_per_product: int = 2, size: int = 48, seed: int = 0) -> Path:
    """Write the dataset to ``root`` and return ``root``.

    Product ``p`` of category ``c`` costs ``10 * (p + 1)`` (the last product of each category
    has no price: an empty cell) and is in ``LOCATIONS[p % 5]``.
    """
    root = make_clean_dataset(root, num_classes, products_per_class, images_per_product, size, seed)
    with open(root / "manifest.csv", encoding="utf-8") as f:
        manifest = list(csv.DictReader(f))
    products = {}
    for row in manifest:
        products.setdefault(row["product_id"], row["category"])
    categories = sorted(set(products.values()))
    rows = []
    for product_id, category in sorted(products.items()):
        c = categories.index(category)
        p = int(product_id.rsplit("-", 1)[1])
        noun = NOUNS[c % len(NOUNS)]
        location = LOCATIONS[p % len(LOCATIONS)]
        price = "" if p == products_per_class - 1 else f"{10.0 * (p + 1)}"
        rows.append({"id": product_id,
                     "product_name": f"{noun.capitalize()} - {ADJECTIVES[p % len(ADJECTIVES)]}",
                     "category": f"{category} / Things", "root_category": category,
                     "product_description": f"A {noun} for sale. Collection from "
                                            f"{location.split(',')[0]}.",
                     "price": price, "location": location})
    with open(root / "products.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=PRODUCT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return root
