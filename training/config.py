"""``python -m training.train``'s options as a typed config, for callers that are not a shell.

    from training.config import TrainConfig
    from training.train import train

    metrics = train(TrainConfig(model="cnn", data=Path("data/demo/clean"), out=Path("runs/cnn"),
                                epochs=2, workers=0))

Each field is one command-line option (``batch_size`` is ``--batch-size``) with the same default;
``None`` for a recipe option means "the recipe's" (:mod:`training.recipes`).
``tests/training/test_config.py`` checks the fields against the parser, so they cannot drift.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
from pathlib import Path

from aicore.text import DEFAULT_BUCKETS
from training.engine import DEFAULT_WORKERS


@dataclass
class TrainConfig:
    """One training run (or the resume of one)."""

    model: str  # an architecture of aicore.models.ARCHITECTURES
    data: Path  # a cleaned dataset directory (training.prepare)
    out: Path | None = None  # the run directory to create (required unless resume)
    epochs: int | None = None  # None: the recipe's (6 for finetune, else 10)
    batch_size: int = 32
    seed: int = 0
    workers: int = DEFAULT_WORKERS
    device: str = "auto"
    resume: Path | None = None  # RUN/checkpoint.pt to continue
    pretrained: bool | str = False  # True: the model's default weights; or a path, or "timm"
    freeze_backbone: bool = False
    limit_train: int | None = None
    image_size: int | None = None  # None: the dataset's
    # the recipe (training.recipes): None takes the recipe's value
    recipe: str | None = None  # None: finetune for a --pretrained efficientnet_lite0, else default
    optimizer: str | None = None
    lr: float | None = None
    momentum: float | None = None
    nesterov: bool | None = None
    weight_decay: float | None = None
    label_smoothing: float | None = None
    schedule: str | None = None
    warmup_epochs: int | None = None
    step_size: int | None = None
    gamma: float | None = None
    augment: str | None = None
    patience: int | None = None
    backbone_lr_scale: float | None = None
    head_init: str | None = None
    frozen_bn: bool | None = None
    wise_ft: bool | None = None
    freeze_blocks: int | None = None
    mixup: float | None = None
    # text and multimodal
    image_arch: str = "cnn"
    image_init: Path | None = None
    text_init: Path | None = None
    buckets: int = DEFAULT_BUCKETS

    def to_args(self) -> argparse.Namespace:
        """The namespace ``get_args_parser().parse_args`` would give for the same options."""
        return argparse.Namespace(**asdict(self))

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> TrainConfig:
        return cls(**vars(args))
