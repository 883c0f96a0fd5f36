"""A tiny cleaned dataset, written directly in the format ``training.prepare`` produces.

Each class is a hue (evenly spaced on the colour wheel) filling the picture, with a random pale
blob and pixel noise on top: easy enough for a few epochs of the CNN to learn, so tests can
assert accuracy well above chance, while no two pictures are identical.
"""

import colorsys
import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from aicore.categories import ROOT_CATEGORIES


def _picture(rng: np.random.Generator, hue: float, size: int) -> Image.Image:
    hue = (hue + rng.uniform(-0.01, 0.01)) % 1.0
    value = rng.uniform(0.75, 0.95)
    r, g, b = (int(255 * c) for c in colorsys.hsv_to_rgb(hue, 0.85, value))
    img = Image.new("RGB", (size, size), (r, g, b))
    x0, y0 = rng.integers(0, size // 2, size=2)
    side = int(rng.integers(size // 4, size // 2))
    ImageDraw.Draw(img).ellipse((x0, y0, x0 + side, y0 + side), fill=(235, 235, 235))
    noise = rng.normal(0, 8, size=(size, size, 3))
    arr = np.clip(np.asarray(img, dtype=np.float32) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def _product(product_id: str, category: str, index: int) -> dict[str, str]:
    """A products.csv row as prepare writes it; the text names the category (learnable), every
    third description is empty."""
    word = category.split(" ")[0].strip(",").lower()
    return {"id": product_id, "product_name": f"{word} item {index} | in Leeds | Gumtree",
            "category": f"{category} / Things", "root_category": category,
            "product_description": "" if index % 3 == 2 else f"A {word} thing, barely used.",
            "price": "5.0", "location": "Leeds, West Yorkshire"}


def make_clean_dataset(root: Path, num_classes: int = 3, products_per_class: int = 6,
                       images_per_product: int = 2, size: int = 48, seed: int = 0) -> Path:
    """Write ``root/{images/*.png, manifest.csv, products.csv, dataset.json}``; return ``root``.

    Class names are the first ``num_classes`` real root categories (commas and ampersands
    included, so CSV quoting is exercised); ids are unique per image and per product.
    """
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = sorted(ROOT_CATEGORIES[:num_classes])
    rows, products = [], []
    for c, name in enumerate(names):
        for p in range(products_per_class):
            product_id = f"prod-{c:02d}-{p:03d}"
            products.append(_product(product_id, name, p))
            for i in range(images_per_product):
                image_id = f"img-{c:02d}-{p:03d}-{i}"
                path = f"images/{image_id}.png"
                _picture(rng, c / num_classes, size).save(root / path)
                rows.append({"image_id": image_id, "product_id": product_id,
                             "category": name, "path": path})
    with open(root / "manifest.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["image_id", "product_id", "category", "path"])
        writer.writeheader()
        writer.writerows(rows)
    with open(root / "products.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(products[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(products)
    info = {"image_size": size, "source": "export", "num_images": len(rows), "categories": names}
    (root / "dataset.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    return root
