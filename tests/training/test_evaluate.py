"""``python -m training.evaluate`` reproduces the test metrics a run recorded."""

import json
import shutil
from pathlib import Path

import pytest

from tests.support.data import make_clean_dataset
from training import evaluate, train
from common.cli import UserError


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clean_dataset(tmp_path_factory.mktemp("clean"), num_classes=4,
                              products_per_class=8, images_per_product=2, size=40)


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory: pytest.TempPathFactory, data: Path) -> Path:
    """A 3-epoch CNN run, loaded by one DataLoader worker (the multi-process path)."""
    out = tmp_path_factory.mktemp("runs") / "cnn"
    train.main(train.get_args_parser().parse_args(
        ["--model", "cnn", "--data", str(data), "--out", str(out), "--epochs", "3",
         "--batch-size", "8", "--workers", "1"]))
    return out


def run_evaluate(*argv: str) -> dict:
    return evaluate.main(evaluate.get_args_parser().parse_args(list(argv)))


def test_evaluate_reproduces_the_recorded_test_metrics(cnn_run: Path, data: Path,
                                                       tmp_path: Path) -> None:
    recorded = json.loads((cnn_run / "metrics.json").read_text())
    out = tmp_path / "eval.json"
    metrics = run_evaluate("--run", str(cnn_run), "--data", str(data), "--out", str(out),
                           "--workers", "0")
    assert metrics["accuracy"] == pytest.approx(recorded["test_accuracy"])
    assert metrics["confusion_matrix"] == recorded["confusion_matrix"]
    assert metrics["num_images"] == recorded["counts"]["test"]["total"]
    assert metrics["loss"] == pytest.approx(recorded["test_loss"], rel=1e-5)
    assert json.loads(out.read_text())["accuracy"] == metrics["accuracy"]


def test_evaluate_writes_into_the_run_by_default(cnn_run: Path, data: Path, tmp_path: Path
                                                 ) -> None:
    run_dir = shutil.copytree(cnn_run, tmp_path / "run")
    metrics = run_evaluate("--run", str(run_dir), "--data", str(data), "--split", "val",
                           "--workers", "0")
    saved = json.loads((run_dir / "eval_metrics.json").read_text())
    assert saved["split"] == "val" and saved["accuracy"] == metrics["accuracy"]
    assert metrics["num_images"] == len(json.loads((run_dir / "split.json").read_text())["val"])


def test_evaluate_refuses_a_dir_that_is_not_a_run(data: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="is not a training run: split.json is missing"):
        run_evaluate("--run", str(tmp_path), "--data", str(data))


def test_evaluate_refuses_a_run_without_model(cnn_run: Path, data: Path, tmp_path: Path) -> None:
    run_dir = shutil.copytree(cnn_run, tmp_path / "run")
    (run_dir / "model.pt").unlink()
    with pytest.raises(UserError, match="model.pt is missing"):
        run_evaluate("--run", str(run_dir), "--data", str(data))


def test_evaluate_refuses_data_with_other_classes(cnn_run: Path, tmp_path: Path) -> None:
    other = make_clean_dataset(tmp_path / "other", num_classes=3, products_per_class=3, size=32)
    with pytest.raises(UserError, match="evaluate with the run's dataset"):
        run_evaluate("--run", str(cnn_run), "--data", str(other))
