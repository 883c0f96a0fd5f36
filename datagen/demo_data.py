"""Write a small synthetic marketplace export, in exactly the real export's format.

    python -m datagen.demo_data --out data/demo/raw [--seed 0] [--images-per-category 75]

Writes ``Products.csv``, ``Images.csv``, ``images/<Images.id>.jpg`` and ``samples/`` (a few
photos at realistic sizes for demoing predictions, listed in ``samples/samples.json``).

Like the real export it is messy on purpose, so ``training.prepare`` is exercised on every quirk:
an unnamed index column, descriptions with bare carriage returns (readable only with
``lineterminator="\\n"``), stray whitespace, duplicated ids, unparseable prices ("free", ""),
missing categories, a CSV line with an extra field, images without a product, products without
images, image rows whose file is missing, and image files of every kind -- RGB JPEG mostly, RGBA
PNG with transparency, palette PNG/GIF, greyscale and CMYK JPEG, an EXIF-rotated JPEG, a truncated
file and an XML error page -- all named ``<id>.jpg`` as the real export names them.

The photos carry a learnable signal per category (see :mod:`datagen.demo_draw`). Everything is
deterministic from ``--seed``: the same seed writes byte-identical files.
"""

import argparse
import io
import json
import time
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from aicore.categories import CATEGORY_SEPARATOR, ROOT_CATEGORIES
from common.cli import UserError, run
from datagen.demo_draw import category_style, draw_listing_photo
from datagen.demo_text import listing_text
from training.export import IMAGE_COLUMNS, PRODUCT_COLUMNS

# Sub-category paths under each root, as the marketplace writes them.
SUB_CATEGORIES = {
    "Appliances": ("Refrigerators", "Washing Machines", "Small Appliances / Kettles"),
    "Baby & Kids Stuff": ("Toys", "Prams & Strollers", "Kids Clothes, Shoes & Accessories / Coats"),
    "Clothes, Footwear & Accessories": ("Women's Clothing / Dresses", "Men's Shoes / Trainers",
                                        "Jewellery"),
    "Computers & Software": ("Laptops", "Computer Monitors", "Software"),
    "DIY Tools & Materials": ("Power Tools / Drills", "Hand Tools", "Building Materials"),
    "Health & Beauty": ("Hair Care & Styling", "Fragrances", "Make Up & Cosmetics"),
    "Home & Garden": ("Garden & Patio / Sheds", "Dining, Living Room Furniture / Sofas",
                      "Kitchenware & Accessories"),
    "Music, Films, Books & Games": ("Books, Comics & Magazines", "Musical Instruments / Guitars",
                                    "Films & TV / DVDs"),
    "Office Furniture & Equipment": ("Office Chairs", "Desks", "Printers & Scanners"),
    "Other Goods": ("Collectables", "Tickets", "Miscellaneous Goods"),
    "Phones, Mobile Phones & Telecoms": ("Mobile Phones / Apple iPhone", "Phone Cases & Covers",
                                         "Home Phones & Answering Machines"),
    "Sports, Leisure & Travel": ("Bicycles", "Gym & Fitness", "Camping & Hiking"),
    "Video Games & Consoles": ("Consoles / PS4", "Games", "Controllers & Accessories"),
}
LOCATIONS = ("Wokingham, Berkshire", "Leeds, West Yorkshire", "Bristol, Bristol",
             "Hackney, London", "Glasgow, Glasgow", "Cardiff, Cardiff", "Norwich, Norfolk",
             "Brighton, East Sussex", "Manchester, Manchester", "Belfast, County Antrim")
ADJECTIVES = ("Good condition", "Barely used", "Brand new", "Vintage", "Spare", "Unwanted gift")
BUCKET = "https://aicore-marketplace-images.s3.eu-west-1.amazonaws.com"
NOT_AN_IMAGE = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
                b"<Message>Access Denied</Message></Error>\n")

# How many image files of each special kind replace an ordinary RGB JPEG. The truncated file and
# the XML page cannot be decoded; every other kind must come out of prepare as a clean picture.
SPECIAL_KINDS = {"rgba_png": 6, "p_png": 3, "p_gif": 1, "p_gif_transparent": 1, "grey_jpeg": 4,
                 "cmyk_jpeg": 3, "exif_jpeg": 1, "truncated": 1, "not_image": 1}
UNREADABLE_KINDS = ("truncated", "not_image")
BAD_PRICES = ("free", "", "POA", "£", "Swap for PS5", "£1,23")
BAD_CATEGORIES = ("", "   ", f"{CATEGORY_SEPARATOR}Sheds")
UNPHOTOGRAPHED_PRODUCTS = 10
ORPHAN_IMAGES = 12  # image rows whose product_id is not in Products.csv
# Demo samples: (category, file name, width, height, format); the PNG also tests RGBA input.
SAMPLES = (("Appliances", "Appliances.jpg", 1600, 1200, "JPEG"),
           ("Home & Garden", "Home-and-Garden.png", 800, 600, "PNG"),
           ("Sports, Leisure & Travel", "Sports-Leisure-and-Travel.jpg", 640, 480, "JPEG"),
           ("Video Games & Consoles", "Video-Games-and-Consoles.jpg", 1200, 900, "JPEG"))


@dataclass
class ImageRow:
    id: str
    product_id: str
    category: str  # what the photo shows (for an orphan image: a random category)
    kind: str = "jpeg"  # "jpeg", a key of SPECIAL_KINDS, or "missing" (no file written)


@dataclass
class Export:
    """The export being built: CSV rows, image rows, and the truth about them for tests."""

    products: list[list[str]] = field(default_factory=list)
    images: list[ImageRow] = field(default_factory=list)
    bad_csv_lines: list[str] = field(default_factory=list)
    # image ids that prepare must keep (good product, readable file), with their root category
    usable: dict[str, str] = field(default_factory=dict)
    # rows prepare must drop, by the reason it reports
    dropped_products: dict[str, int] = field(default_factory=dict)
    dropped_images: dict[str, int] = field(default_factory=dict)
    files_written: int = 0
    out: Path | None = None  # where generate() wrote it


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m datagen.demo_data",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="directory to write Products.csv, Images.csv, images/, samples/")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--images-per-category", type=int, default=75, metavar="N",
                        help="usable-looking images per root category; the export adds ~30 "
                             "broken or orphan rows on top (default: 75)")
    return parser


def _uuid(rng: np.random.Generator) -> str:
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


def _price(rng: np.random.Generator) -> str:
    """A price as the export writes it: "£5", "£12.00", "£1,234.50"."""
    value = round(float(np.exp(rng.uniform(np.log(2), np.log(3000)))), 2)
    style = rng.integers(3)
    if style == 0:
        return f"£{int(value):,}"
    if style == 1:
        return f"£{int(value):,}.00"
    return f"£{value:,.2f}"


def _product_row(rng: np.random.Generator, category_path: str, price: str) -> list[str]:
    location = str(rng.choice(LOCATIONS))
    adjective = str(rng.choice(ADJECTIVES))
    # Real descriptions hold bare carriage returns; a default CSV reader splits the row there.
    sep = "\r" if rng.random() < 0.3 else " "
    product_id = _uuid(rng)
    # The text has its own generator (seeded by the product id, itself drawn from --seed), so the
    # photos come out the same whatever the text module draws.
    text_rng = np.random.default_rng(zlib.crc32(product_id.encode()))
    root = category_path.split(CATEGORY_SEPARATOR)[0].strip()
    if root in ROOT_CATEGORIES:
        name, description = listing_text(text_rng, root, adjective, location, price, sep)
    else:  # a row with a broken category path: prepare drops it anyway
        name = f"{adjective} | in {location} | Gumtree"
        description = f"{adjective}.{sep}Collection only from {location.split(',')[0]}."
    return [product_id, name, category_path, description, price, location]


def _category_path(rng: np.random.Generator, root: str) -> str:
    return f"{root}{CATEGORY_SEPARATOR}{rng.choice(SUB_CATEGORIES[root])}"


def _add_good_products(export: Export, rng: np.random.Generator, per_category: int) -> None:
    """Products with 1-4 images each until every category has ``per_category`` images."""
    for root in ROOT_CATEGORIES:
        remaining = per_category
        while remaining > 0:
            row = _product_row(rng, _category_path(rng, root), _price(rng))
            export.products.append(row)
            for _ in range(min(int(rng.integers(1, 5)), remaining)):
                export.images.append(ImageRow(_uuid(rng), row[0], root))
                remaining -= 1


def _count(counts: dict[str, int], reason: str, n: int = 1) -> None:
    counts[reason] = counts.get(reason, 0) + n


def _add_broken_rows(export: Export, rng: np.random.Generator) -> None:
    """Everything prepare must drop: bad prices and categories, orphans, duplicates, missing files."""
    good_products = list(export.products)
    for price in BAD_PRICES:
        root = str(rng.choice(ROOT_CATEGORIES))
        row = _product_row(rng, _category_path(rng, root), price)
        export.products.append(row)
        export.images.append(ImageRow(_uuid(rng), row[0], root))
        _count(export.dropped_products, "unparseable price")
        _count(export.dropped_images, "product row dropped")
    for category in BAD_CATEGORIES:
        root = str(rng.choice(ROOT_CATEGORIES))
        row = _product_row(rng, category, _price(rng))
        export.products.append(row)
        export.images.append(ImageRow(_uuid(rng), row[0], root))
        _count(export.dropped_products, "missing category")
        _count(export.dropped_images, "product row dropped")
    for _ in range(UNPHOTOGRAPHED_PRODUCTS):
        root = str(rng.choice(ROOT_CATEGORIES))
        export.products.append(_product_row(rng, _category_path(rng, root), _price(rng)))
        _count(export.dropped_products, "no image row")
    for i in (3, 17):  # the same product listed twice
        export.products.append(list(good_products[i % len(good_products)]))
        _count(export.dropped_products, "duplicate product id")
    for _ in range(ORPHAN_IMAGES):
        export.images.append(ImageRow(_uuid(rng), _uuid(rng), str(rng.choice(ROOT_CATEGORIES))))
        _count(export.dropped_images, "image without a product")
    first = export.images[0]
    export.images.append(ImageRow(first.id, first.product_id, first.category))  # duplicate row
    _count(export.dropped_images, "duplicate image id")
    for i in (5, 11):  # image rows whose file never made it to disk
        source = export.images[i]
        export.images.append(ImageRow(_uuid(rng), source.product_id, source.category, "missing"))
        _count(export.dropped_images, "missing image file")
    # A line with one field too many: an unquoted comma in the location.
    export.bad_csv_lines.append(",".join([_uuid(rng), "Desk lamp | in Leeds | Gumtree",
                                          "Home & Garden / Lighting", "Works fine.", "£8",
                                          "Leeds", "West Yorkshire"]))
    _count(export.dropped_products, "malformed CSV line")


def _assign_special_kinds(export: Export, rng: np.random.Generator, num_good: int) -> None:
    """Turn some good products' RGB JPEGs into the other kinds of file the export holds."""
    needed = sum(SPECIAL_KINDS.values())
    if num_good < needed:
        raise UserError(f"--images-per-category is too small: the export needs at least {needed} "
                       f"images in all for its special files, got {num_good}")
    chosen = rng.choice(num_good, size=needed, replace=False)
    kinds = [kind for kind, n in SPECIAL_KINDS.items() for _ in range(n)]
    for index, kind in zip(chosen, kinds, strict=True):
        export.images[int(index)].kind = kind


def build_export(seed: int, per_category: int) -> Export:
    """Decide every row of the export (no files are written here)."""
    if per_category < 2:
        raise UserError(f"--images-per-category must be at least 2, got {per_category}")
    rng = np.random.default_rng(seed)
    export = Export()
    _add_good_products(export, rng, per_category)
    num_good = len(export.images)
    _add_broken_rows(export, rng)
    _assign_special_kinds(export, rng, num_good)
    for row in export.images[:num_good]:
        if row.kind in UNREADABLE_KINDS:
            _count(export.dropped_images, "unreadable image file")
        else:
            export.usable[row.id] = row.category
    return export


def _csv_field(value: str) -> str:
    """Quote like the real export: only fields holding a comma, a quote or a newline.

    A bare carriage return stays unquoted, which is why the export needs ``lineterminator="\\n"``.
    """
    if any(ch in value for ch in ',"\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[list[str]],
               raw_lines: Sequence[str] = ()) -> None:
    """Write with the export's leading unnamed index column; ``raw_lines`` go in unchanged."""
    lines = ["," + ",".join(columns)]
    lines += [",".join([str(i), *map(_csv_field, row)]) for i, row in enumerate(rows)]
    lines += [f"{len(rows) + i},{line}" for i, line in enumerate(raw_lines)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="")


def _product_csv_rows(export: Export) -> list[list[str]]:
    """The product rows with stray whitespace around a few ids and categories."""
    rows = []
    for i, row in enumerate(export.products):
        row = list(row)
        if i % 17 == 1:
            row[0] = f" {row[0]}"
        if i % 7 == 2:
            row[2] = f"{row[2]}  "
        rows.append(row)
    return rows


def _image_csv_rows(export: Export, rng: np.random.Generator) -> list[list[str]]:
    rows = []
    for i, image in enumerate(export.images):
        created = f"2022-03-{1 + i % 28:02d} {int(rng.integers(24)):02d}:{int(rng.integers(60)):02d}:00"
        rows.append([image.id, image.product_id, f"{BUCKET}/{image.id}.jpg", _uuid(rng), created])
    return rows


def _photo_size(rng: np.random.Generator) -> tuple[int, int]:
    """Mixed sizes: long side log-uniform in 90..900 px, aspect ratio 0.6..1.67."""
    long_side = int(np.exp(rng.uniform(np.log(90), np.log(900))))
    short_side = int(long_side * rng.uniform(0.6, 1.0))
    return (long_side, short_side) if rng.random() < 0.5 else (short_side, long_side)


def encode_photo(photo: Image.Image, mask: np.ndarray, kind: str, quality: int) -> bytes:
    """Encode an RGB photo as the file ``kind`` (see :data:`SPECIAL_KINDS`)."""
    buffer = io.BytesIO()
    if kind == "rgba_png":
        # A cut-out product shot: the background is transparent black, so a decoder that drops
        # the alpha channel instead of compositing on white shows a black background.
        pixels = np.asarray(photo) * mask[:, :, None]  # (H, W, 3)
        alpha = np.where(mask, 255, 0)[:, :, None]  # (H, W, 1)
        Image.fromarray(np.concatenate([pixels, alpha], axis=2).astype(np.uint8), "RGBA").save(
            buffer, "PNG")
    elif kind == "p_png":
        photo.quantize(64).save(buffer, "PNG")
    elif kind in ("p_gif", "p_gif_transparent"):
        palette = photo.quantize(64)
        extra = {"transparency": palette.getpixel((0, 0))} if kind == "p_gif_transparent" else {}
        palette.save(buffer, "GIF", **extra)
    elif kind == "grey_jpeg":
        photo.convert("L").save(buffer, "JPEG", quality=quality)
    elif kind == "cmyk_jpeg":
        photo.convert("CMYK").save(buffer, "JPEG", quality=quality)
    elif kind == "exif_jpeg":
        # Stored as a camera does: sideways pixels plus Orientation 6 ("rotate 90 clockwise").
        exif = Image.Exif()
        exif[0x0112] = 6
        photo.transpose(Image.Transpose.ROTATE_90).save(buffer, "JPEG", quality=quality,
                                                        exif=exif.tobytes())
    elif kind == "not_image":
        return NOT_AN_IMAGE
    else:
        photo.save(buffer, "JPEG", quality=quality)
    data = buffer.getvalue()
    return data[: len(data) // 2] if kind == "truncated" else data


def _write_images(export: Export, image_dir: Path, seed: int) -> int:
    image_dir.mkdir(parents=True, exist_ok=True)
    styles = {name: category_style(i, len(ROOT_CATEGORIES)) for i, name in enumerate(ROOT_CATEGORIES)}
    written: set[str] = set()
    for index, image in enumerate(export.images):
        if image.kind == "missing" or image.id in written:
            continue  # no file for a missing one; a duplicated row shares the first one's file
        rng = np.random.default_rng([seed, index])  # each photo reproducible on its own
        photo, mask = draw_listing_photo(rng, styles[image.category], *_photo_size(rng))
        data = encode_photo(photo, mask, image.kind, quality=int(rng.integers(55, 93)))
        (image_dir / f"{image.id}.jpg").write_bytes(data)
        written.add(image.id)
    return len(written)


def write_samples(sample_dir: Path, seed: int) -> dict[str, str]:
    """Write the demo photos (clear pictures at realistic sizes); return file name -> category."""
    sample_dir.mkdir(parents=True, exist_ok=True)
    index = {name: i for i, name in enumerate(ROOT_CATEGORIES)}
    listing = {}
    for n, (category, file_name, width, height, fmt) in enumerate(SAMPLES):
        rng = np.random.default_rng([seed, 1_000_000 + n])
        style = category_style(index[category], len(ROOT_CATEGORIES))
        photo, mask = draw_listing_photo(rng, style, width, height, easy=True)
        if fmt == "PNG":
            data = encode_photo(photo, mask, "rgba_png", quality=0)
        else:
            data = encode_photo(photo, mask, "jpeg", quality=88)
        (sample_dir / file_name).write_bytes(data)
        listing[file_name] = category
    (sample_dir / "samples.json").write_text(json.dumps(listing, indent=2) + "\n", encoding="utf-8")
    return listing


def generate(out: Path, seed: int = 0, per_category: int = 75) -> Export:
    """Write the whole demo export into ``out``; return the :class:`Export` that was written."""
    out = Path(out)
    export = build_export(seed, per_category)
    export.out = out
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 2**31])  # create times, image_ref values
    _write_csv(out / "Products.csv", PRODUCT_COLUMNS, _product_csv_rows(export),
               export.bad_csv_lines)
    _write_csv(out / "Images.csv", IMAGE_COLUMNS, _image_csv_rows(export, rng))
    export.files_written = _write_images(export, out / "images", seed)
    write_samples(out / "samples", seed)
    return export


def main(args: argparse.Namespace) -> Export:
    start = time.perf_counter()
    export = generate(args.out, args.seed, args.images_per_category)
    print(f"wrote {len(export.products) + len(export.bad_csv_lines)} product rows, "
          f"{len(export.images)} image rows and {export.files_written} image files to {args.out} "
          f"({len(export.usable)} usable images, {len(SAMPLES)} samples) "
          f"in {time.perf_counter() - start:.1f} s")
    return export


if __name__ == "__main__":
    run(main, get_args_parser())
