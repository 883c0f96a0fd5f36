"""The training loop's parts: device choice, seeds, loaders, one epoch and one evaluation pass."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from common.cli import UserError
from common.runs import RunConfig
from training import engine

CPU = torch.device("cpu")


def _config(seed: int = 3, batch_size: int = 4) -> RunConfig:
    return RunConfig(model="cnn", data=Path("unused"), seed=seed, epochs=1, batch_size=batch_size,
                     workers=0, image_size=8, num_classes=2)


def test_resolve_device_auto_and_refuses_missing_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    assert engine.resolve_device("auto") == CPU
    assert engine.resolve_device("cpu") == CPU
    with pytest.raises(UserError, match="--device cuda was asked for but no CUDA GPU"):
        engine.resolve_device("cuda")


def test_epoch_seed_is_stable_and_differs_by_epoch():
    seeds = [engine.epoch_seed(7, epoch) for epoch in range(3)]

    assert seeds == [engine.epoch_seed(7, epoch) for epoch in range(3)]
    assert len(set(seeds)) == 3 and engine.epoch_seed(8, 0) != seeds[0]
    assert seeds[0] == int(np.random.SeedSequence([7, 0]).generate_state(1)[0])
    assert all(0 <= s < 2**32 for s in seeds)


@pytest.mark.parametrize("n, shuffled, drop_last", [(9, True, True), (8, True, False),
                                                    (9, False, False), (1, True, False)])
def test_make_loader_drops_only_a_last_batch_of_one_when_training(n, shuffled, drop_last):
    dataset = TensorDataset(torch.arange(n))
    generator = torch.Generator().manual_seed(0) if shuffled else None

    loader = engine.make_loader(dataset, 4, 0, CPU, generator=generator)

    assert loader.drop_last is drop_last
    assert sum(len(batch) for (batch,) in loader) == (n - 1 if drop_last else n)


def test_make_loader_uses_the_dataset_collate():
    class Collating(TensorDataset):
        def collate(self, batch):
            return "collated", len(batch)

    loader = engine.make_loader(Collating(torch.arange(5)), 2, 0, CPU)

    assert list(loader) == [("collated", 2), ("collated", 2), ("collated", 1)]


def _order(loader) -> list[int]:
    return [int(i) for (batch,) in loader for i in batch]


def test_epoch_loader_order_depends_only_on_seed_and_epoch():
    dataset = TensorDataset(torch.arange(20))

    first = _order(engine.epoch_loader(dataset, _config(), CPU, epoch=2))
    torch.manual_seed(999)  # a resumed process's global RNG state does not matter
    again = _order(engine.epoch_loader(dataset, _config(), CPU, epoch=2))
    other = _order(engine.epoch_loader(dataset, _config(), CPU, epoch=3))

    assert first == again and sorted(first) == list(range(20))
    assert other != first


class _Fixed(nn.Module):
    """Logits = the input itself, plus one trainable bias so the optimiser has a parameter."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bias


def test_evaluate_matches_hand_computed_loss_and_accuracy():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
    labels = torch.tensor([0, 0, 0])
    loader = engine.make_loader(TensorDataset(logits, labels), 2, 0, CPU)

    result = engine.evaluate(_Fixed(), loader, CPU)

    expected = torch.nn.functional.cross_entropy(logits, labels).item()
    assert result["loss"] == pytest.approx(expected)
    assert result["accuracy"] == pytest.approx(2 / 3)
    assert (result["y_true"], result["y_pred"]) == ([0, 0, 0], [0, 1, 0])


def test_evaluate_of_an_empty_loader_is_zero():
    empty = engine.make_loader(TensorDataset(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long)), 2, 0, CPU)

    assert engine.evaluate(_Fixed(), empty, CPU) == {"loss": 0.0, "accuracy": 0.0, "y_true": [], "y_pred": []}


def test_train_one_epoch_counts_every_sample_and_steps_each_batch():
    torch.manual_seed(0)
    x = torch.randn(10, 3)
    y = (x[:, 0] > 0).long()
    model = nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    loader = engine.make_loader(TensorDataset(x, y), 4, 0, CPU)  # batches of 4, 4, 2
    before = engine.evaluate(model, loader, CPU)["loss"]

    result = engine.train_one_epoch(model, nn.CrossEntropyLoss(), optimizer, scheduler, loader, CPU, "t")

    assert result["images"] == 10 and result["seconds"] >= 0
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.5 * 0.5**3)  # stepped per batch
    assert 0.0 <= result["accuracy"] <= 1.0 and result["loss"] > 0
    assert engine.evaluate(model, loader, CPU)["loss"] < before


def test_cpu_state_dict_detaches_every_tensor():
    model = nn.Linear(2, 1)

    state = engine.cpu_state_dict(model)

    assert set(state) == {"weight", "bias"}
    assert all(not t.requires_grad and t.device == CPU for t in state.values())
    assert torch.equal(state["weight"], model.weight.detach())


def test_cpu_state_dict_is_a_snapshot_that_training_does_not_move():
    """WiSE-FT keeps the starting weights this way: on the CPU, ``.cpu()`` returns the same
    tensor, so without a copy the "start" followed every optimiser step and WiSE-FT averaged the
    best epoch with the last one instead of with the probe."""
    model = nn.Linear(2, 1)
    state = engine.cpu_state_dict(model)
    before = state["weight"].clone()

    with torch.no_grad():
        model.weight.add_(1.0)  # what optimizer.step() does, in place

    assert torch.equal(state["weight"], before)


def test_mix_up_blends_each_picture_with_the_one_whose_label_it_returns():
    torch.manual_seed(0)
    images, labels = torch.randn(6, 3, 4, 4), torch.arange(6)

    mixed, other, lam = engine.mix_up(images, labels, 0.4)

    assert 0 < lam < 1 and sorted(other.tolist()) == list(range(6))  # a permutation of the batch
    assert torch.allclose(mixed, lam * images + (1 - lam) * images[other])


def test_train_one_epoch_with_mixup_blends_the_losses_of_both_labels(monkeypatch):
    torch.manual_seed(0)
    x, y = torch.randn(4, 3), torch.tensor([0, 1, 0, 1])
    model = nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1)
    loader = engine.make_loader(TensorDataset(x, y), 4, 0, CPU)
    flipped = torch.tensor([1, 0, 1, 0])  # every picture mixed with one of the other class
    monkeypatch.setattr(engine, "mix_up", lambda images, labels, alpha: (images, flipped, 0.75))

    result = engine.train_one_epoch(model, nn.CrossEntropyLoss(), optimizer, scheduler, loader, CPU,
                                    "t", mixup=0.4)

    with torch.no_grad():
        logits = model(x)
        expected = 0.75 * F.cross_entropy(logits, y) + 0.25 * F.cross_entropy(logits, flipped)
    assert result["loss"] == pytest.approx(expected.item(), rel=1e-5)
