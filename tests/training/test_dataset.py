"""The image dataset over a cleaned directory: tensors, labels, order, presets."""

from pathlib import Path
import pytest
import torch
from aicore.presets import EvalPreset, TrainPreset
from common.cli import UserError
from common.dataset_format import read_clean_dir
from training.dataset import MarketplaceImageDataset



def test_dataset_returns_tensor_and_int_label(clean_dir: Path) -> None:
    data = read_clean_dir(clean_dir)
    ds = MarketplaceImageDataset(data, None, EvalPreset(48))
    assert len(ds) == 36
    image, label = ds[5]
    assert isinstance(image, torch.Tensor) and image.dtype == torch.float32
    assert image.shape == (3, 48, 48)
    assert isinstance(label, int)
    assert data.class_names[label] == data.manifest.loc[5, "category"]


def test_dataset_keeps_the_order_of_given_ids(clean_dir: Path) -> None:
    data = read_clean_dir(clean_dir)
    ids = list(data.manifest["image_id"])[::-7]
    ds = MarketplaceImageDataset(data, ids, EvalPreset(48))
    assert ds.image_ids == ids
    assert len(ds) == len(ids)


def test_dataset_refuses_unknown_ids(clean_dir: Path) -> None:
    data = read_clean_dir(clean_dir)
    with pytest.raises(UserError, match="'nope'"):
        MarketplaceImageDataset(data, ["nope"], EvalPreset(48))


def test_dataset_train_transform_is_random_eval_is_not(clean_dir: Path) -> None:
    data = read_clean_dir(clean_dir)
    train = MarketplaceImageDataset(data, None, TrainPreset(48))
    evaluation = MarketplaceImageDataset(data, None, EvalPreset(48))
    torch.manual_seed(0)
    draws = [train[0][0] for _ in range(4)]
    assert any(not torch.equal(draws[0], d) for d in draws[1:])
    assert torch.equal(evaluation[0][0], evaluation[0][0])


def test_dataset_resizes_to_the_preset_size(clean_dir: Path) -> None:
    ds = MarketplaceImageDataset(read_clean_dir(clean_dir), None, EvalPreset(32))
    assert ds[0][0].shape == (3, 32, 32)
