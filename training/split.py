"""The train/validation/test split: stratified by category, grouped by product, seeded.

All images of one product land in one split: a listing's photos are near-duplicates, so spreading
them over splits would leak test images into training and inflate the test accuracy.

Within each category the products (sorted by id, then shuffled by a generator seeded from the seed
and the category name) are divided by product count: ``round(0.15 n)`` to validation,
``round(0.15 n)`` to test, the rest to training, with at least one product in each split. A
category therefore needs :data:`MIN_PRODUCTS` products; smaller ones are refused with a message
naming them rather than silently missing from the test set. Nothing depends on Python's hash
randomisation or set order, so the split is the same on every machine.
"""

import json
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from common.atomic import atomic_write_text
from common.cli import UserError

SPLITS = ("train", "val", "test")
FRACTIONS = {"val": 0.15, "test": 0.15}  # the rest, 70 %, trains
MIN_PRODUCTS = len(SPLITS)  # one product per split


def split_dataset(manifest: pd.DataFrame, seed: int, categories: list[str] | None = None
                  ) -> dict[str, list[str]]:
    """Split image ids 70/15/15, stratified by category and grouped by product.

    Args:
        manifest: rows with ``image_id``, ``product_id``, ``category``.
        seed: the same seed gives the same split anywhere.
        categories: every class; one absent from ``manifest`` is refused as too small.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}`` image ids, each list sorted.

    Raises:
        UserError: if a product spans categories or a category has fewer than 3 products.
    """
    products = _product_categories(manifest)
    _check_category_sizes(products, categories or sorted(products.unique()))
    split_of_product: dict[str, str] = {}
    for category in sorted(products.unique()):
        ids = sorted(products.index[products == category])
        split_of_product.update(_split_products(ids, _category_rng(seed, category)))
    assigned = manifest["product_id"].map(split_of_product)
    return {name: sorted(manifest.loc[assigned == name, "image_id"]) for name in SPLITS}


def _product_categories(manifest: pd.DataFrame) -> pd.Series:
    """product_id -> category; a product listed under two categories cannot be stratified."""
    per_product = manifest.groupby("product_id", sort=True)["category"].unique()
    mixed = per_product[per_product.map(len) > 1]
    if not mixed.empty:
        raise UserError(f"product {mixed.index[0]!r} has images in several categories "
                       f"{sorted(mixed.iloc[0])}; each product must have one category")
    return per_product.map(lambda cats: cats[0])


def _check_category_sizes(products: pd.Series, categories: list[str]) -> None:
    counts = products.value_counts()
    small = {c: int(counts.get(c, 0)) for c in categories if counts.get(c, 0) < MIN_PRODUCTS}
    if small:
        listed = ", ".join(f"{c!r} ({n})" for c, n in sorted(small.items()))
        raise UserError(f"categories with fewer than {MIN_PRODUCTS} products (one each for train, "
                       f"val and test): {listed}; add images or drop them in training.prepare")


def _category_rng(seed: int, category: str) -> np.random.Generator:
    # crc32, not hash(): Python salts str hashes per process.
    return np.random.default_rng([seed, zlib.crc32(category.encode("utf-8"))])


def _split_products(ids: list[str], rng: np.random.Generator) -> dict[str, str]:
    n = len(ids)
    n_val = max(1, round(FRACTIONS["val"] * n))
    n_test = max(1, round(FRACTIONS["test"] * n))
    order = [ids[i] for i in rng.permutation(n)]
    split = {pid: "val" for pid in order[:n_val]}
    split.update({pid: "test" for pid in order[n_val:n_val + n_test]})
    split.update({pid: "train" for pid in order[n_val + n_test:]})
    return split


def save_split(split: dict[str, list[str]], seed: int, path: Path) -> None:
    """Write ``split.json``: the image ids of each split and the seed that drew them."""
    payload = {"seed": seed, **{name: split[name] for name in SPLITS}}
    atomic_write_text(Path(path), json.dumps(payload, indent=1) + "\n")


def load_split(path: Path) -> dict[str, list[str]]:
    """Read ``split.json``.

    Raises:
        UserError: if it is missing or malformed.
    """
    path = Path(path)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read the run's split {path}: {exc}") from None
    if not isinstance(payload, dict) or not all(isinstance(payload.get(s), list) for s in SPLITS):
        raise UserError(f"{path} must hold lists 'train', 'val' and 'test' of image ids")
    return {name: [str(i) for i in payload[name]] for name in SPLITS}


def limit_ids(ids: list[str], limit: int | None, seed: int) -> list[str]:
    """A seeded random subset of ``limit`` ids (all of them when ``limit`` is None)."""
    if limit is None or limit >= len(ids):
        return list(ids)
    rng = np.random.default_rng([seed, limit])
    return sorted(ids[i] for i in rng.choice(len(ids), size=limit, replace=False))
