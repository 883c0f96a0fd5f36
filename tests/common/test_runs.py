"""common.runs: a run's config.json read back typed, as training writes it."""

import json
from pathlib import Path

import pytest

from common.runs import RUN_CONFIG_FILE, RunConfig, read_run_config

WRITTEN = {"model": "cnn", "data": "data/demo/clean", "out": "runs/cnn", "epochs": 3,
           "batch_size": 16, "seed": 0, "workers": 0, "device": "auto", "limit_train": 40,
           "image_size": 128, "num_classes": 13, "recipe": "default", "lr": 0.08,
           "augment": "flip", "label_smoothing": 0.1, "patience": 5}


def test_run_config_reads_what_training_wrote(tmp_path: Path):
    (tmp_path / RUN_CONFIG_FILE).write_text(json.dumps(WRITTEN))

    config = read_run_config(tmp_path)

    assert config == RunConfig(model="cnn", data=Path("data/demo/clean"), seed=0, epochs=3,
                               batch_size=16, workers=0, image_size=128, num_classes=13,
                               limit_train=40, augment="flip", label_smoothing=0.1, patience=5)


def test_run_config_without_data_is_refused(tmp_path: Path):
    (tmp_path / RUN_CONFIG_FILE).write_text(json.dumps({k: v for k, v in WRITTEN.items()
                                                        if k != "data"}))
    with pytest.raises(KeyError):
        read_run_config(tmp_path)


def test_a_training_run_writes_a_readable_config(search_index):
    config = read_run_config(search_index["run"])
    assert config.model == "cnn" and config.data == search_index["data"]
    assert (config.epochs, config.batch_size, config.image_size) == (1, 8, 48)
