"""Reading a cleaned dataset directory (written by ``training.prepare``) as a PyTorch dataset.

A cleaned directory holds ``manifest.csv`` (image_id, product_id, category, path), ``dataset.json``
(image_size, categories, ...) and the images themselves, already cleaned to ``image_size`` px.
"""

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from PIL import Image

from aicore.categories import index_to_name
from training.cli import CLIError

MANIFEST_FILE = "manifest.csv"
DATASET_FILE = "dataset.json"
MANIFEST_COLUMNS = ("image_id", "product_id", "category", "path")


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

    @property
    def index_to_name(self) -> dict[str, str]:
        """TorchServe's ``{"0": name, ...}``, written as ``index_to_name.json`` with every run."""
        return index_to_name(self.class_names)


def read_clean_dir(root: Path) -> CleanDataset:
    """Read and check a cleaned dataset directory.

    Raises:
        CLIError: if ``root`` is not a cleaned directory, is empty, or its files disagree.
    """
    root = Path(root)
    for name in (MANIFEST_FILE, DATASET_FILE):
        if not (root / name).is_file():
            raise CLIError(f"{root} is not a cleaned dataset directory: {name} is missing "
                           "(create one with python -m training.prepare)")
    info = _read_dataset_json(root / DATASET_FILE)
    manifest = _read_manifest(root / MANIFEST_FILE)
    categories = sorted(set(info["categories"]))
    unknown = sorted(set(manifest["category"]) - set(categories))
    if unknown:
        raise CLIError(f"{root / MANIFEST_FILE} has categories {unknown} that {DATASET_FILE} does "
                       f"not list (it lists {categories}); re-run training.prepare")
    _check_files_exist(root, manifest["path"])
    return CleanDataset(root, manifest, list(index_to_name(categories).values()),
                        int(info["image_size"]))


def _read_dataset_json(path: Path) -> dict:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CLIError(f"cannot read {path}: {exc}") from None
    if not isinstance(info, dict) or not isinstance(info.get("categories"), list) \
            or not isinstance(info.get("image_size"), int):
        raise CLIError(f"{path} must be an object with 'image_size' (int) and 'categories' (list)")
    if not info["categories"]:
        raise CLIError(f"{path} lists no categories: the dataset is empty")
    return info


def _read_manifest(path: Path) -> pd.DataFrame:
    try:
        manifest = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise CLIError(f"cannot read {path}: {exc}") from None
    missing = [c for c in MANIFEST_COLUMNS if c not in manifest.columns]
    if missing:
        raise CLIError(f"{path} lacks column(s) {missing}; expected {list(MANIFEST_COLUMNS)}")
    if manifest.empty:
        raise CLIError(f"{path} has no rows: the dataset is empty")
    duplicated = manifest["image_id"][manifest["image_id"].duplicated()]
    if not duplicated.empty:
        raise CLIError(f"{path} repeats image_id {duplicated.iloc[0]!r} "
                       f"({duplicated.size} duplicate row(s)); every image_id must be unique")
    return manifest.loc[:, list(MANIFEST_COLUMNS)].reset_index(drop=True)


def _check_files_exist(root: Path, paths: Iterable[str]) -> None:
    missing = [p for p in paths if not (root / p).is_file()]
    if missing:
        raise CLIError(f"{len(missing)} image(s) listed in {root / MANIFEST_FILE} are missing, "
                       f"e.g. {root / missing[0]}")


class MarketplaceImageDataset(torch.utils.data.Dataset):
    """Images of a cleaned directory with integer labels.

    Args:
        data: the cleaned directory.
        image_ids: which images (in this order); ``None`` takes every image of the manifest.
        transform: picture -> ``(3, S, S)`` tensor: ``TrainPreset`` for training samples,
            ``EvalPreset`` for validation and test.
    """

    def __init__(self, data: CleanDataset, image_ids: Iterable[str] | None,
                 transform: Callable[[Image.Image], torch.Tensor]) -> None:
        rows = data.manifest
        if image_ids is not None:
            by_id = rows.set_index("image_id", drop=False)
            ids = [str(i) for i in image_ids]
            unknown = [i for i in ids if i not in by_id.index]
            if unknown:
                raise CLIError(f"{len(unknown)} image id(s) are not in {data.root / MANIFEST_FILE}, "
                               f"e.g. {unknown[0]!r}: was the dataset prepared differently?")
            rows = by_id.loc[ids].reset_index(drop=True)
        to_idx = data.class_to_idx
        self.paths = [data.root / p for p in rows["path"]]
        self.labels = [to_idx[c] for c in rows["category"]]
        self.image_ids = list(rows["image_id"])
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        with Image.open(self.paths[index]) as img:
            img.load()
            return self.transform(img), self.labels[index]  # (3, S, S), class index
