"""What a training run carries from its start (or resume) to its end."""

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from common.dataset_format import CleanDataset
from common.runs import RunConfig
from training.distributed import SINGLE, Dist


@dataclass
class RunState:
    """Everything a run needs between its start (or resume) and its end."""

    run_dir: Path
    config: dict  # the resolved options, as config.json and the checkpoint hold them
    data: CleanDataset
    split: dict[str, list[str]]
    model: nn.Module
    model_args: dict
    optimizer: torch.optim.Optimizer | None = None  # built once the model is on its device
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
    start_epoch: int = 1
    best_val_acc: float = -1.0  # below any accuracy, so epoch 1 always writes model.pt
    best_epoch: int = 0
    history: list[dict] = field(default_factory=list)
    resumed_from: dict | None = None  # the checkpoint, holding the optimizer state
    dist: Dist = SINGLE  # this process's rank under torchrun
    start_weights: dict | None = None  # what fine-tuning started from (--wise-ft), this process only
    wise: dict | None = None  # the WiSE-FT choice (training.wise), for metrics.json

    @property
    def run(self) -> RunConfig:
        """:attr:`config` typed (what the epoch loop and the end of the run read)."""
        return RunConfig.from_dict(self.config)
