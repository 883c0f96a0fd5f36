"""A cleaned dataset directory (:mod:`common.dataset_format`) as a PyTorch dataset."""

from collections.abc import Callable, Iterable

import torch
from PIL import Image

from common.cli import UserError
from common.dataset_format import MANIFEST_FILE, CleanDataset


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
                raise UserError(f"{len(unknown)} image id(s) are not in {data.root / MANIFEST_FILE}, "
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
