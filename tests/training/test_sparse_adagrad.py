"""training.sparse_adagrad: torch's Adagrad, step for step, and the text encoder's gradient."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from aicore.text import collate_ids
from aicore.text_models import TextEncoder
from training.sparse_adagrad import SparseAdagrad


class Tiny(nn.Module):
    """A sparse embedding bag (repeated ids, as a text batch has) and a dense head."""

    def __init__(self) -> None:
        super().__init__()
        self.bag = nn.EmbeddingBag(50, 4, mode="mean", sparse=True)
        self.head = nn.Linear(4, 3)

    def forward(self, ids, offsets):
        return self.head(self.bag(ids, offsets))


def _batches(steps: int):
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        ids = torch.randint(0, 20, (30,), generator=gen)  # 30 ids over 20 rows: repeats
        yield ids, torch.tensor([0, 7, 19]), torch.randint(0, 3, (3,), generator=gen)


def _train(optimizer_class, steps: int = 6, **kwargs) -> tuple[Tiny, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = Tiny()
    optimizer = optimizer_class(model.parameters(), lr=0.3, **kwargs)
    for ids, offsets, labels in _batches(steps):
        optimizer.zero_grad()
        F.cross_entropy(model(ids, offsets), labels).backward()
        optimizer.step()
    return model, optimizer


@pytest.mark.parametrize("kwargs", [{}, {"lr_decay": 0.1, "initial_accumulator_value": 0.5}])
def test_step_matches_torch_adagrad(kwargs):
    ours, ours_opt = _train(SparseAdagrad, **kwargs)
    theirs, theirs_opt = _train(torch.optim.Adagrad, **kwargs)
    assert ours.bag.weight.grad.is_sparse  # the sparse path was the one tested
    for (name, a), b in zip(ours.state_dict().items(), theirs.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    for p_ours, p_theirs in zip(ours.parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(ours_opt.state[p_ours]["sum"], theirs_opt.state[p_theirs]["sum"])
    # rows no id touched keep their initial weights and accumulator
    assert torch.equal(ours_opt.state[ours.bag.weight]["sum"][20:],
                       torch.full((30, 4), kwargs.get("initial_accumulator_value", 0.0)))


def test_state_dict_loads_into_torch_adagrad_and_back():
    model, optimizer = _train(SparseAdagrad, steps=3)
    restored = torch.optim.Adagrad(model.parameters(), lr=0.3)
    restored.load_state_dict(optimizer.state_dict())
    again = SparseAdagrad(model.parameters(), lr=0.3)
    again.load_state_dict(restored.state_dict())
    for p in model.parameters():
        assert again.state[p]["step"].item() == 3
        torch.testing.assert_close(again.state[p]["sum"], optimizer.state[p]["sum"])


def test_step_on_distinct_rows_matches_torch_adagrad():
    """The text encoder's training path (one gradient row per touched row) steps like torch."""
    results = []
    for optimizer_class in (SparseAdagrad, torch.optim.Adagrad):
        torch.manual_seed(0)
        encoder = TextEncoder(buckets=64, dim=5).train()
        optimizer = optimizer_class(encoder.parameters(), lr=0.3)
        for ids, _, _ in _batches(4):
            optimizer.zero_grad()
            encoder(collate_ids([ids[:7].tolist(), ids[7:].tolist()])).pow(2).sum().backward()
            optimizer.step()
        results.append((encoder.bag.weight.detach(), optimizer.state[encoder.bag.weight]["sum"]))
    torch.testing.assert_close(results[0], results[1])


def test_sparse_gradient_with_weight_decay_is_refused():
    model = Tiny()
    optimizer = SparseAdagrad(model.bag.parameters(), lr=0.1, weight_decay=0.01)
    model(torch.tensor([1, 2]), torch.tensor([0])).sum().backward()
    with pytest.raises(RuntimeError, match="weight_decay"):
        optimizer.step()


def test_text_encoder_trains_on_distinct_rows_with_embeddingbags_values():
    torch.manual_seed(0)
    encoder = TextEncoder(buckets=64, dim=5)
    batch = collate_ids([[3, 3, 9, 1], [], [9, 60, 3]])
    encoder.eval()
    expected = encoder(batch)  # the plain EmbeddingBag (serving's path)
    expected.pow(2).sum().backward()
    bag_grad = encoder.bag.weight.grad.coalesce()
    encoder.bag.weight.grad = None
    encoder.train()
    got = encoder(batch)
    torch.testing.assert_close(got, expected)
    got.pow(2).sum().backward()
    grad = encoder.bag.weight.grad
    assert grad.is_sparse
    assert grad._indices()[0].tolist() == [1, 3, 9, 60]  # each touched row once, sorted
    torch.testing.assert_close(grad.to_dense(), bag_grad.to_dense())


def test_idf_weighted_encoder_is_the_weighted_mean_on_both_paths():
    torch.manual_seed(0)
    encoder = TextEncoder(buckets=64, dim=5, idf=True)
    document_frequency = torch.zeros(64)
    document_frequency[[3, 9]] = torch.tensor([9.0, 1.0])  # 3 is common, 9 rare, the rest unseen
    encoder.set_idf(document_frequency, documents=9)
    idf = torch.log(torch.tensor(10.0) / (1 + document_frequency)) + 1
    assert idf[3] == pytest.approx(1.0) and idf[9] > idf[3]  # in every listing -> weight 1
    batch = collate_ids([[3, 3, 9, 1], [], [9, 60, 3]])
    table = encoder.bag.weight.detach()
    expected = torch.stack([
        (idf[[3, 3, 9, 1], None] * table[[3, 3, 9, 1]]).sum(0) / idf[[3, 3, 9, 1]].sum(),
        torch.zeros(5),  # an empty listing encodes to zeros, not NaN
        (idf[[9, 60, 3], None] * table[[9, 60, 3]]).sum(0) / idf[[9, 60, 3]].sum()])
    encoder.eval()
    served = encoder(batch)
    served.pow(2).sum().backward()
    served_grad = encoder.bag.weight.grad.to_dense()
    encoder.bag.weight.grad = None
    encoder.train()
    trained = encoder(batch)
    trained.pow(2).sum().backward()
    torch.testing.assert_close(served, expected)
    torch.testing.assert_close(trained, expected)
    assert encoder.bag.weight.grad.is_sparse
    torch.testing.assert_close(encoder.bag.weight.grad.to_dense(), served_grad)
    assert not torch.allclose(served[0], table[[3, 3, 9, 1]].mean(0))  # not the plain mean
