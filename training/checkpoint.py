"""Atomic writes and the training checkpoint.

Every file a run depends on is written to a temporary file in the same directory, flushed and
fsynced, then renamed over the target with ``os.replace`` (atomic on POSIX and Windows): a run
killed at any moment leaves either the previous file or the new one, never half of one.
"""

import os
import pickle
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO

import torch

from training.cli import CLIError

CHECKPOINT_FILE = "checkpoint.pt"
CHECKPOINT_KEYS = ("model", "optimizer", "scheduler", "epoch", "best_val_acc", "model_args",
                   "config")


def _atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    path = Path(path)
    # Same directory, so os.replace is a rename within one filesystem; "x" refuses to reuse a name.
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "xb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:  # also KeyboardInterrupt: never leave the temp file behind
        Path(tmp).unlink(missing_ok=True)
        raise


def _fsync_dir(directory: Path) -> None:
    """Persist the rename itself (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories; the rename is still atomic
    finally:
        os.close(fd)


def atomic_torch_save(obj: object, path: Path) -> None:
    """``torch.save`` ``obj`` to ``path`` atomically (see the module docstring)."""
    _atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    _atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint written by :func:`training.train.save_checkpoint`, on the CPU.

    Raises:
        CLIError: if the file is missing, unreadable or not a training checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CLIError(f"checkpoint {path} does not exist (expected RUN/{CHECKPOINT_FILE})")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, KeyError, ValueError, pickle.UnpicklingError) as exc:
        raise CLIError(f"cannot load checkpoint {path}: {str(exc).splitlines()[0]}") from None
    missing = [k for k in CHECKPOINT_KEYS if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise CLIError(f"{path} is not a training checkpoint: it lacks {missing}")
    return ckpt
