"""A training run directory's ``config.json``, typed: written by ``training.train``, read by
training's epoch loop and by the archive builder (which dataset a run was trained on).

The file holds every resolved option (the recipe's values filled in, ``image_size`` and
``num_classes`` from the data); :class:`RunConfig` is what code reads of it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

RUN_CONFIG_FILE = "config.json"


@dataclass(frozen=True)
class RunConfig:
    """The resolved options a run was trained with, as read back."""

    model: str  # the architecture
    data: Path  # the cleaned dataset
    seed: int
    epochs: int
    batch_size: int
    workers: int
    image_size: int
    num_classes: int
    limit_train: int | None = None
    augment: str | None = None
    label_smoothing: float = 0.0
    patience: int | None = None  # epochs without a better validation accuracy before stopping
    text_init: str | None = None
    frozen_bn: bool = False  # every batch norm in eval mode while training
    mixup: float = 0.0  # the Beta parameter of mixup; 0 is off

    @classmethod
    def from_dict(cls, config: dict) -> RunConfig:
        """From the resolved config dict (the other keys are the recipe's and the model's).

        Raises:
            KeyError, TypeError: if a required option is missing.
        """
        names = {f.name for f in fields(cls)}
        values = {key: value for key, value in config.items() if key in names}
        return cls(**{**values, "data": Path(values["data"])})


def read_run_config(run_dir: Path) -> RunConfig:
    """The ``config.json`` of the run in ``run_dir``.

    Raises:
        OSError, ValueError, KeyError, TypeError: if it is missing or not a run's config.
    """
    text = (Path(run_dir) / RUN_CONFIG_FILE).read_text(encoding="utf-8")
    return RunConfig.from_dict(json.loads(text))
