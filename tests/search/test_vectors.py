"""search.vectors: exact below the threshold, IVF tuned to the recall target above it."""

import numpy as np
import pytest

from search import vectors
from search.vectors import VectorIndex, build_index, exact_neighbours, normalise, recall_at_k


def clustered(n: int, dim: int = 16, clusters: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    return normalise(centres[rng.integers(0, clusters, n)] + 0.3 * rng.normal(size=(n, dim)))


def test_small_index_is_exact():
    data = clustered(500)
    index, spec = build_index(data)

    assert spec.kind == "flat" and spec.recall_at_10 == 1.0
    found = VectorIndex(index, data, spec).search(data[7], 10)[0]
    assert found.tolist() == exact_neighbours(data, data[7:8], 10)[0].tolist()


def test_large_index_is_ivf_tuned_to_the_recall_target(monkeypatch):
    monkeypatch.setattr(vectors, "EXACT_MAX_VECTORS", 1000)
    everything = clustered(4200)
    data, queries = everything[:4000], everything[4000:]  # unseen queries, same distribution

    index, spec = build_index(data)

    # 4·sqrt(4000) -> 256 lists, halved until each trains on >= 39 vectors: 64
    assert spec.kind == "ivf" and spec.nlist == 64
    assert spec.recall_at_10 >= vectors.TARGET_RECALL
    assert spec.nprobe & (spec.nprobe - 1) == 0  # a power of two
    loaded = VectorIndex(index, data, spec)
    found = np.stack([loaded.search(q, 10)[0] for q in queries])
    assert recall_at_k(found, exact_neighbours(data, queries, 10), 10) >= 0.9


@pytest.mark.parametrize("threshold", [10_000, 1000])
def test_filtered_search_returns_only_allowed_positions(monkeypatch, threshold):
    monkeypatch.setattr(vectors, "EXACT_MAX_VECTORS", threshold)
    monkeypatch.setattr(vectors, "EXACT_FILTER_BUDGET", 16 * 100)  # force the FAISS selector
    data = clustered(4000)
    index, spec = build_index(data)
    allowed = np.zeros(len(data), bool)
    allowed[::3] = True

    positions, scores = VectorIndex(index, data, spec).search(data[0], 10, allowed)

    assert len(positions) == 10 and allowed[positions].all()
    assert list(scores) == sorted(scores, reverse=True)
    exact = exact_neighbours(data[allowed], data[:1], 10)[0]
    assert len(set(np.flatnonzero(allowed)[exact]) & set(positions)) >= 8


def test_recall_at_k_drops_the_query_itself():
    truth = np.array([[5, 1, 2]])
    found = np.array([[5, 2, 9]])

    assert recall_at_k(found, truth, 2, exclude=np.array([5])) == 0.5
    assert recall_at_k(found, truth, 2) == 0.5


def test_filtered_search_never_probes_more_than_a_quarter_of_the_lists():
    from search.vectors import IndexSpec, filtered_nprobe

    spec = IndexSpec("ivf", 4096, 64)

    assert filtered_nprobe(spec, 1.0) == 64
    assert filtered_nprobe(spec, 0.5) == 128  # more lists the fewer vectors pass ...
    assert filtered_nprobe(spec, 1e-4) == 1024  # ... up to a quarter of them, not all 4,096
    assert filtered_nprobe(IndexSpec("ivf", 64, 32), 0.01) == 32  # the build's own, if larger
