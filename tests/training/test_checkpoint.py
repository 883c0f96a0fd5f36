"""Atomic checkpoint writes: a save that fails half-way keeps the previous file."""

from pathlib import Path
import pytest

from tests.support.faults import partial_save
import torch
from training import checkpoint as checkpoint_module
from training.checkpoint import atomic_torch_save



def test_atomic_torch_save_keeps_the_previous_file(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "checkpoint.pt"
    atomic_torch_save({"epoch": 1}, target)
    monkeypatch.setattr(checkpoint_module.torch, "save", partial_save)
    with pytest.raises(OSError, match="No space left"):
        atomic_torch_save({"epoch": 2}, target)
    assert torch.load(target, weights_only=True) == {"epoch": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]
