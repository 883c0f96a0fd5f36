"""training.wise: WiSE-FT's weight averaging."""

import torch

from training.wise import interpolate


def test_interpolate_mixes_float_tensors_and_keeps_counters_from_the_fine_tune() -> None:
    start = {"w": torch.zeros(3), "n": torch.tensor(5)}
    end = {"w": torch.tensor([4.0, 8.0, -4.0]), "n": torch.tensor(9)}
    mixed = interpolate(start, end, 0.25)
    assert torch.equal(mixed["w"], torch.tensor([1.0, 2.0, -1.0]))
    assert mixed["n"].item() == 9
    assert torch.equal(interpolate(start, end, 1.0)["w"], end["w"])
    assert torch.equal(interpolate(start, end, 0.0)["w"], start["w"])
