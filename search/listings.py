"""The listings of a cleaned dataset: one record per product, its photos grouped under it.

A marketplace export (``products.csv`` present) gives each listing its title, description, price,
location and category path; an image-folder dataset (no ``products.csv``) makes every image a
listing of its folder's category, titled by its file name, with no price or place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from common.cli import UserError
from common.dataset_format import PRODUCTS_FILE, CleanDataset, read_clean_dir


@dataclass(frozen=True)
class Listing:
    """One searchable listing."""

    id: str  # the product id (image-folder datasets: the image id)
    title: str
    description: str
    price: float | None
    location: str
    category: str  # the root category: the relevance label of the evaluation
    category_path: str  # e.g. "Home & Garden / Dining / Chairs"; the root alone when unknown
    image_ids: tuple[str, ...]  # sorted; the first is the listing's main photo
    # the cleaned PNGs, absolute, in image_ids order; none in a text-only dataset, whose one
    # manifest row per product still gives the listing its id there (the run's split names it)
    image_paths: tuple[Path, ...]

    @property
    def text(self) -> str:
        """Title and description, what a text model reads."""
        return f"{self.title}\n{self.description}".strip()


def read_listings(data_dir: Path) -> tuple[list[Listing], CleanDataset]:
    """Every listing of the cleaned dataset ``data_dir``, sorted by id.

    Raises:
        UserError: if ``data_dir`` is not a cleaned dataset, or its products table lacks a column.
    """
    import pandas as pd

    data = read_clean_dir(Path(data_dir).resolve())  # absolute: the index records paths under it
    manifest = data.manifest.sort_values("image_id")
    photos: dict[str, list[tuple[str, Path]]] = {}
    categories: dict[str, str] = {}
    for row in manifest.itertuples(index=False):
        # a text-only dataset (prepare --products alone) has one row per product, without a path
        path = data.root / row.path if row.path else None
        photos.setdefault(row.product_id, []).append((row.image_id, path))
        categories[row.product_id] = row.category
    products_file = data.root / PRODUCTS_FILE
    products = None
    if products_file.is_file():
        try:
            products = pd.read_csv(products_file, dtype=str, keep_default_na=False,
                                   lineterminator="\n").set_index("id", drop=False)
        except (OSError, ValueError, KeyError, pd.errors.ParserError) as exc:
            raise UserError(f"cannot read {products_file}: {exc}") from None
    listings = [_listing(pid, categories[pid], photos[pid], products) for pid in sorted(photos)]
    return listings, data


def _listing(product_id: str, category: str, photos: list[tuple[str, Path | None]],
             products: object) -> Listing:
    image_ids = tuple(image_id for image_id, _ in photos)
    paths = tuple(path for _, path in photos if path is not None)
    if products is None or product_id not in products.index:  # type: ignore[attr-defined]
        # An image folder: the file's name is all the text there is ("sofas/red-sofa" -> "red sofa").
        stem = Path(product_id).name
        title = Path(stem).stem.replace("_", " ").replace("-", " ")
        return Listing(product_id, title, "", None, "", category, category, image_ids, paths)
    row = products.loc[product_id]  # type: ignore[attr-defined]
    return Listing(
        id=product_id,
        title=str(row.get("product_name", "")),
        description=str(row.get("product_description", "")),
        price=_price(row.get("price", "")),
        location=str(row.get("location", "")),
        category=category,
        category_path=str(row.get("category", "")) or category,
        image_ids=image_ids,
        image_paths=paths,
    )


def _price(text: object) -> float | None:
    try:
        value = float(str(text))
    except ValueError:
        return None
    return value if math.isfinite(value) else None
