"""training.config.TrainConfig and search.build.BuildConfig: one typed field per command-line
option, with the parser's defaults, so the programmatic API cannot drift from the command line."""

import dataclasses
from pathlib import Path

from search.build import BuildConfig
from search.build import get_args_parser as build_parser
from training.config import TrainConfig
from training.train import get_args_parser


def test_train_config_has_every_option_with_its_default():
    parsed = get_args_parser().parse_args(["--model", "cnn", "--data", "d"])
    config = TrainConfig(model="cnn", data=Path("d"))

    assert {f.name for f in dataclasses.fields(TrainConfig)} == set(vars(parsed))
    assert config.to_args() == parsed


def test_train_config_round_trips_a_command_line():
    parsed = get_args_parser().parse_args(
        ["--model", "multimodal", "--data", "d", "--out", "o", "--epochs", "3", "--lr", "0.1",
         "--image-init", "runs/cnn", "--no-nesterov", "--limit-train", "7"])
    config = TrainConfig.from_args(parsed)
    assert (config.epochs, config.lr, config.nesterov, config.limit_train) == (3, 0.1, False, 7)
    assert config.to_args() == parsed


def test_build_config_has_every_option_with_its_default():
    parsed = build_parser().parse_args(["--data", "d", "--run", "r", "--out", "o"])
    config = BuildConfig(data=Path("d"), run=Path("r"), out=Path("o"))
    assert config.to_args() == parsed
