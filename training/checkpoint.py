"""The training checkpoint: written atomically (:mod:`common.atomic`), loaded on the CPU.

A run killed at any moment keeps either the previous checkpoint or the new one, never half of one.
"""

import pickle
from pathlib import Path

import torch

from common.atomic import atomic_write
from common.cli import UserError

CHECKPOINT_FILE = "checkpoint.pt"
CHECKPOINT_KEYS = ("model", "optimizer", "scheduler", "epoch", "best_val_acc", "model_args",
                   "config")


def atomic_torch_save(obj: object, path: Path) -> None:
    """``torch.save`` ``obj`` to ``path`` atomically (see the module docstring)."""
    atomic_write(path, lambda f: torch.save(obj, f))


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint written by :func:`training.train.save_checkpoint`, on the CPU.

    Raises:
        UserError: if the file is missing, unreadable or not a training checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist (expected RUN/{CHECKPOINT_FILE})")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, KeyError, ValueError, pickle.UnpicklingError) as exc:
        raise UserError(f"cannot load checkpoint {path}: {str(exc).splitlines()[0]}") from None
    missing = [k for k in CHECKPOINT_KEYS if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise UserError(f"{path} is not a training checkpoint: it lacks {missing}")
    return ckpt
