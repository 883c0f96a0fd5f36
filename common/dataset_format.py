"""The cleaned dataset directory: its files and columns, written and read here only.

``training.prepare`` writes it; training, evaluation, the archive's calibration and the search
index read it. A cleaned directory holds::

    images/<image_id>.png   every image, cleaned to image_size x image_size RGB
    manifest.csv            image_id, product_id, category, path (relative to the directory;
                            empty in a text-only dataset: one row per product, image_id=product_id)
    products.csv            (export only) the cleaned products, price as float64, root_category,
                            and each listing's text (product_name, product_description)
    report.json, report.txt rows kept and dropped by reason
    dataset.json            {"image_size", "source", "num_images", "categories"}; written last,
                            so its presence marks a complete set

pandas is imported inside the functions that need it, so importing this module stays cheap.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from common.atomic import atomic_write_text
from common.cli import UserError

if TYPE_CHECKING:
    import pandas as pd

# The image files the project accepts anywhere: a folder tree, the command-line client's folders.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")

IMAGES_DIR = "images"
MANIFEST_FILE = "manifest.csv"
DATASET_FILE = "dataset.json"
PRODUCTS_FILE = "products.csv"
REPORT_JSON = "report.json"
REPORT_TXT = "report.txt"
MANIFEST_COLUMNS = ("image_id", "product_id", "category", "path")
# A training run's split (written by training.split, read by search.evaluate and the archive's
# accuracy gate): {"seed", "train": [image ids], "val": [...], "test": [...]}, next to model.pt.
SPLIT_FILE = "split.json"
PREPARE_HINT = "create one with python -m training.prepare"


@dataclass(frozen=True)
class CleanDataset:
    """A validated cleaned directory: its root, its manifest and the class names in index order."""

    root: Path
    manifest: pd.DataFrame  # one row per image, every column as text, indexed 0..N-1
    class_names: list[str]  # alphabetical; the index of a name is its label
    image_size: int

    @property
    def class_to_idx(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.class_names)}


def image_path(image_id: str) -> str:
    """Where the cleaned image ``image_id`` lives, relative to the dataset directory."""
    return f"{IMAGES_DIR}/{image_id}.png"


def read_clean_dir(root: Path) -> CleanDataset:
    """Read and check a cleaned dataset directory.

    Raises:
        UserError: if ``root`` is not a cleaned directory, is empty, or its files disagree.
    """
    root = Path(root)
    for name in (MANIFEST_FILE, DATASET_FILE):
        if not (root / name).is_file():
            raise UserError(f"{root} is not a cleaned dataset directory: {name} is missing "
                            f"({PREPARE_HINT})")
    info = read_dataset_info(root / DATASET_FILE)
    manifest = _read_manifest(root / MANIFEST_FILE)
    categories = sorted(set(info["categories"]))
    unknown = sorted(set(manifest["category"]) - set(categories))
    if unknown:
        raise UserError(f"{root / MANIFEST_FILE} has categories {unknown} that {DATASET_FILE} does "
                        f"not list (it lists {categories}); re-run training.prepare")
    _check_files_exist(root, manifest["path"])
    return CleanDataset(root, manifest, categories, int(info["image_size"]))


def read_dataset_info(path: Path) -> dict:
    """``dataset.json``, checked to hold ``image_size`` (int) and a non-empty ``categories``."""
    try:
        info = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None
    if not isinstance(info, dict) or not isinstance(info.get("categories"), list) \
            or not isinstance(info.get("image_size"), int):
        raise UserError(f"{path} must be an object with 'image_size' (int) and 'categories' (list)")
    if not info["categories"]:
        raise UserError(f"{path} lists no categories: the dataset is empty")
    return info


def _read_manifest(path: Path) -> pd.DataFrame:
    import pandas as pd

    try:
        manifest = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None
    missing = [c for c in MANIFEST_COLUMNS if c not in manifest.columns]
    if missing:
        raise UserError(f"{path} lacks column(s) {missing}; expected {list(MANIFEST_COLUMNS)}")
    if manifest.empty:
        raise UserError(f"{path} has no rows: the dataset is empty")
    duplicated = manifest["image_id"][manifest["image_id"].duplicated()]
    if not duplicated.empty:
        raise UserError(f"{path} repeats image_id {duplicated.iloc[0]!r} "
                        f"({duplicated.size} duplicate row(s)); every image_id must be unique")
    return manifest.loc[:, list(MANIFEST_COLUMNS)].reset_index(drop=True)


def _check_files_exist(root: Path, paths: Iterable[str]) -> None:
    # An empty path is a product without a photo (a text-only dataset from Products.csv alone).
    missing = [p for p in paths if p and not (root / p).is_file()]
    if missing:
        raise UserError(f"{len(missing)} image(s) listed in {root / MANIFEST_FILE} are missing, "
                        f"e.g. {root / missing[0]}")


def write_clean_dir(out: Path, rows: Iterable[tuple[str, str, str, str]], info: dict,
                    extra: dict[str, str]) -> None:
    """Publish a cleaned directory's tables: ``extra`` files, the manifest, ``dataset.json`` last.

    Args:
        out: the dataset directory (its images are already in place).
        rows: ``(image_id, product_id, category, path)`` per kept image.
        info: the content of ``dataset.json``.
        extra: file name -> text, e.g. ``products.csv`` and the report.

    Every file is written atomically; ``dataset.json`` comes last because it marks the set
    complete, so an interrupted write leaves the previous set readable.
    """
    import pandas as pd

    manifest = pd.DataFrame(list(rows), columns=list(MANIFEST_COLUMNS)).sort_values("image_id")
    contents = {**extra, MANIFEST_FILE: manifest.to_csv(index=False, lineterminator="\n"),
                DATASET_FILE: json.dumps(info, indent=2, ensure_ascii=False) + "\n"}
    for name, text in contents.items():
        atomic_write_text(out / name, text)
