"""bench.int8_recipes: one recipe measured against eager fp32 on a tiny real run's test split."""

import json
from pathlib import Path

import pytest

from bench.int8_recipes import get_args_parser, main
from tests.support.data import make_clean_dataset
from training import train


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("int8bench")
    data = make_clean_dataset(root / "clean", num_classes=3, products_per_class=6, size=32)
    run_dir = root / "run"
    train.main(train.get_args_parser().parse_args(
        ["--model", "cnn", "--data", str(data), "--out", str(run_dir), "--epochs", "1",
         "--workers", "0", "--batch-size", "8"]))
    return run_dir


def test_int8_recipes_reports_fp32_then_each_recipe(cnn_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    rows = main(get_args_parser().parse_args(
        ["--run", str(cnn_run), "--recipes", "all", "conv-only", "--calibration", "8",
         "--out", str(out)]))
    assert [(r["recipe"], r["calibration_images"]) for r in rows] == \
        [("fp32", None), ("all", 8), ("conv-only", 8)]
    assert rows[0]["agreement"] == 1.0 and rows[0]["passes_gate"]  # fp32 export answers as eager
    assert all(0 <= r["agreement"] <= 1 and r["images_per_second"] > 0 for r in rows)
    assert json.loads(out.read_text())["rows"] == rows
