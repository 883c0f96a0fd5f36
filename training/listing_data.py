"""Datasets of listings for every model: images, text, or both, chosen by the model's arch.

One sample is one row of the cleaned dataset's ``manifest.csv`` (an image, or a product in a
text-only dataset), so every model is trained and tested on the same split and the same rows; the
text of a row is its product's ``product_name`` and ``product_description`` from ``products.csv``.
Text goes through :meth:`aicore.text.TextFeaturizer.encode` -- the featuriser of the model being
trained, rebuilt by the handler from ``model_args.json`` -- so training and serving hash alike.
"""

from collections.abc import Iterable

import pandas as pd
import torch
from PIL import Image

from aicore.models import IMAGE_ARCHITECTURES
from aicore.presets import EvalPreset, TrainPreset
from aicore.text import TextFeaturizer, collate_ids
from aicore.text_models import ListingBatch
from common.cli import UserError
from common.dataset_format import MANIFEST_FILE, PRODUCTS_FILE, CleanDataset
from training.dataset import MarketplaceImageDataset


TITLE_COLUMN, DESCRIPTION_COLUMN = "product_name", "product_description"
# Training only: how often a multimodal sample hides its photo or its text, so the model learns to
# classify listings that arrive without one (serving accepts either alone).
DROP_IMAGE_P = 0.15
DROP_TEXT_P = 0.15


def has_images(data: CleanDataset) -> bool:
    """False for a text-only dataset (``prepare --products`` alone: no image paths)."""
    return bool((data.manifest["path"] != "").all())


def read_listing_text(data: CleanDataset) -> dict[str, tuple[str, str]]:
    """product_id -> (title, description) from the dataset's ``products.csv``.

    Raises:
        UserError: if the dataset has no ``products.csv`` (prepared from an image folder) or lacks
            the text columns.
    """
    path = data.root / PRODUCTS_FILE
    if not path.is_file():
        raise UserError(f"{data.root} has no listing text ({PRODUCTS_FILE} is missing: it was "
                       "prepared from an image folder); prepare an export with "
                       "python -m training.prepare --products Products.csv ...")
    try:
        products = pd.read_csv(path, dtype=str, keep_default_na=False, lineterminator="\n")
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None
    missing = [c for c in ("id", TITLE_COLUMN, DESCRIPTION_COLUMN) if c not in products.columns]
    if missing:
        raise UserError(f"{path} lacks column(s) {missing}: re-run training.prepare")
    return {pid: (title, description) for pid, title, description in
            zip(products["id"], products[TITLE_COLUMN], products[DESCRIPTION_COLUMN], strict=True)}


def _rows(data: CleanDataset, ids: Iterable[str] | None) -> pd.DataFrame:
    rows = data.manifest
    if ids is None:
        return rows
    by_id = rows.set_index("image_id", drop=False)
    ids = [str(i) for i in ids]
    unknown = [i for i in ids if i not in by_id.index]
    if unknown:
        raise UserError(f"{len(unknown)} id(s) are not in {data.root / MANIFEST_FILE}, e.g. "
                       f"{unknown[0]!r}: was the dataset prepared differently?")
    return by_id.loc[ids].reset_index(drop=True)


class ListingTextDataset(torch.utils.data.Dataset):
    """The text of each row as feature ids, with its label (featurised once, up front)."""

    def __init__(self, data: CleanDataset, ids: Iterable[str] | None,
                 featurizer: TextFeaturizer) -> None:
        rows = _rows(data, ids)
        text = read_listing_text(data)
        missing = sorted(set(rows["product_id"]) - set(text))
        if missing:
            raise UserError(f"{len(missing)} product(s) of {data.root / MANIFEST_FILE} are not in "
                           f"{PRODUCTS_FILE}, e.g. {missing[0]!r}: re-run training.prepare")
        encoded = {pid: featurizer.encode(*text[pid]) for pid in set(rows["product_id"])}
        self.features = [encoded[pid] for pid in rows["product_id"]]
        to_idx = data.class_to_idx
        self.labels = [to_idx[c] for c in rows["category"]]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[list[int], int]:
        return self.features[index], self.labels[index]

    @staticmethod
    def collate(samples: list[tuple[list[int], int]]) -> tuple:
        ids, labels = zip(*samples, strict=True)
        return collate_ids(ids), torch.tensor(labels, dtype=torch.int64)


class ListingDataset(torch.utils.data.Dataset):
    """Photo + text of each row for the multimodal model.

    Args:
        augment: training samples with this augmentation (see ``aicore.presets``), which also
            hides the photo (``DROP_IMAGE_P``) or the text (``DROP_TEXT_P``) of some samples,
            never both, drawn from torch's generator (seeded per epoch and DataLoader worker);
            ``None`` for evaluation.
    """

    def __init__(self, data: CleanDataset, ids: Iterable[str] | None,
                 featurizer: TextFeaturizer, image_size: int, augment: str | None) -> None:
        self.text = ListingTextDataset(data, ids, featurizer)
        rows = _rows(data, ids)
        self.paths = [data.root / p if p else None for p in rows["path"]]
        self.transform = preset(image_size, augment)
        self.image_size = image_size
        self.train = augment is not None

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, float, list[int], int]:
        ids, label = self.text[index]
        path = self.paths[index]
        drop = torch.rand(1).item() if self.train else 1.0
        if path is None or drop < DROP_IMAGE_P:
            image, has_image = torch.zeros(3, self.image_size, self.image_size), 0.0
        else:
            with Image.open(path) as img:
                img.load()
                image, has_image = self.transform(img), 1.0  # (3, S, S)
            if DROP_IMAGE_P <= drop < DROP_IMAGE_P + DROP_TEXT_P:
                ids = []
        return image, has_image, ids, label

    @staticmethod
    def collate(samples: list[tuple]) -> tuple:
        images, has_image, ids, labels = zip(*samples, strict=True)
        text = collate_ids(ids)
        batch = ListingBatch(torch.stack(images), torch.tensor(has_image, dtype=torch.float32),
                             text.ids, text.offsets)
        return batch, torch.tensor(labels, dtype=torch.int64)


def build_dataset(data: CleanDataset, ids: Iterable[str] | None, model: torch.nn.Module,
                  margs: dict, augment: str | None) -> torch.utils.data.Dataset:
    """The dataset a model of ``margs["arch"]`` reads: training samples with ``augment``
    (see ``aicore.presets.AUGMENTATIONS``), evaluation samples when it is ``None``.

    Raises:
        UserError: for an image model on a text-only dataset, or a text model on one without text.
    """
    arch = margs["arch"]
    if arch == "text":
        return ListingTextDataset(data, ids, model.featurizer)
    if not has_images(data) and (arch in IMAGE_ARCHITECTURES):
        raise UserError(f"{data.root} is a text-only dataset (prepared from Products.csv alone): "
                       f"--model {arch} needs images; train --model text on it")
    size = int(margs["image_size"])
    if arch == "multimodal":
        return ListingDataset(data, ids, model.featurizer, size, augment)
    return MarketplaceImageDataset(data, ids, preset(size, augment))


def preset(image_size: int, augment: str | None) -> TrainPreset | EvalPreset:
    """The training preset with ``augment``, or the evaluation preset when it is ``None``."""
    return EvalPreset(image_size) if augment is None else TrainPreset(image_size, augment=augment)
