"""training.probe: frozen ImageNet features + logistic regression, cached per picture."""

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from tests.support.data import make_clean_dataset
from training.probe import fold_into_linear, get_args_parser, main


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


@pytest.mark.parametrize("classes", [(0, 1, 3), (0, 2)])
def test_fold_into_linear_computes_the_probes_scores(classes: tuple[int, ...]) -> None:
    """The head started from a probe scores like the probe (standardisation folded in), one row
    per class index; a class the probe never saw (and the binary case's first class) scores 0."""
    rng = np.random.default_rng(0)
    y = np.array(classes * 20)
    x = rng.normal(3.0, 2.0, (len(y), 6)) + y[:, None] * np.array([1, -2, 0, 0, 1, 0.5])
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0)).fit(x, y)
    linear = nn.Linear(6, 4)
    fold_into_linear(probe, linear)
    with torch.no_grad():
        logits = linear(torch.as_tensor(x, dtype=torch.float32)).numpy().astype(np.float64)
    scores = probe.decision_function(x)
    if len(classes) == 2:
        np.testing.assert_allclose(logits[:, 2] - logits[:, 0], scores, rtol=1e-4, atol=1e-4)
    else:
        np.testing.assert_allclose(logits[:, list(classes)], scores, rtol=1e-4, atol=1e-4)
    assert not logits[:, [c for c in range(4) if c not in classes]].any()
    assert (logits.argmax(1) == probe.predict(x)).all()
