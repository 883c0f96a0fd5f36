"""Builders of trained-model folders for tests: the files ``make train`` leaves, untrained weights."""

from pathlib import Path

import torch

from aicore.categories import ROOT_CATEGORIES
from aicore.models import build_model, model_args, save_trained

CATEGORIES = sorted(ROOT_CATEGORIES)


def make_model_dir(model_dir: Path, arch: str = "cnn", class_names: list[str] | None = None,
                   image_size: int = 64, seed: int = 0) -> Path:
    """``model_dir`` (created) holding model.pt, model_args.json and index_to_name.json."""
    class_names = sorted(class_names or CATEGORIES)
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = build_model(arch, len(class_names), image_size)
    save_trained(model_dir, model, class_names, model_args(arch, len(class_names), image_size))
    return model_dir


def make_run(run_dir: Path, arch: str = "cnn", seed: int = 0, image_size: int = 64,
             class_names: list[str] | None = None) -> Path:
    """The files `make train` leaves in a run directory that the archive needs (+ one it skips)."""
    make_model_dir(run_dir, arch, class_names or CATEGORIES[:4], image_size, seed)
    (run_dir / "metrics.json").write_text("{}")  # not archived
    return run_dir
