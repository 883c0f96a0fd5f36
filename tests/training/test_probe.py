"""training.probe: frozen ImageNet features + logistic regression, cached per picture."""

from pathlib import Path

import numpy as np
import pytest

from tests.support.data import make_clean_dataset
from training.probe import get_args_parser, main


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 hues x 8 products x 2 images at 32 px: separable by colour alone."""
    return make_clean_dataset(tmp_path_factory.mktemp("probe"), num_classes=3, products_per_class=8,
                              images_per_product=2, size=32)


def probe(*argv: str) -> dict:
    return main(get_args_parser().parse_args(list(argv)))


def test_probe_learns_and_caches_every_pictures_features(data: Path, tmp_path: Path) -> None:
    cache = tmp_path / "f.npz"
    first = probe("--data", str(data), "--cache", str(cache), "--test")
    saved = np.load(cache)
    assert saved["x"].shape == (48, 1280) and int(saved["image_size"]) == 32
    assert first["val_accuracy"] > 0.5 and 0 <= first["test_accuracy"] <= 1  # chance is 1/3
    other_split = probe("--data", str(data), "--cache", str(cache), "--seed", "1")
    assert other_split["images"] == first["images"]  # same sizes, another draw, no backbone pass
    assert np.array_equal(np.load(cache)["x"], saved["x"])


def test_probe_recomputes_a_cache_of_another_size(data: Path, tmp_path: Path) -> None:
    cache = tmp_path / "f.npz"
    probe("--data", str(data), "--cache", str(cache))
    result = probe("--data", str(data), "--cache", str(cache), "--image-size", "40")
    assert result["image_size"] == 40 and int(np.load(cache)["image_size"]) == 40
