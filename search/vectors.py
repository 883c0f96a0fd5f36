"""The vector index: FAISS inner product over L2-normalised embeddings (= cosine similarity).

Which index, by the number of vectors ``N``:

- ``N <= EXACT_MAX_VECTORS`` (20,000): ``IndexFlatIP``, exact. A scan of 20,000 vectors costs
  1.3 M multiply-adds at 64-d (the CNN) and 41 M at 2048-d (ResNet-50): milliseconds at most.
- above: ``IndexIVFFlat`` with ``nlist`` from :func:`nlist_for` (4,096 at one million),
  trained on ``TRAIN_PER_LIST`` vectors per list, and ``nprobe`` chosen at build time:
  the smallest power of two whose recall@10 against the exact search, on ``TUNE_QUERIES`` sampled
  listings, reaches ``TARGET_RECALL``. The measured recall is saved with the index. HNSW answers
  a little faster but took ~10x longer to build on the 2-core machine (126 s for 200,000 64-d
  vectors against 71 s for IVF at one million), so IVF is the default here.

Filtered searches (price, category, place, an evaluation's candidate set) scan the allowed
vectors exactly when there are few of them (``EXACT_FILTER_BUDGET`` multiply-adds), else ask FAISS
with an ``IDSelectorBitmap``, so a filter never loses results to the approximate index's cut.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

EXACT_MAX_VECTORS = 20_000
TRAIN_PER_LIST = 64  # FAISS warns below 39 training points per centroid
TUNE_QUERIES = 500
TARGET_RECALL = 0.95
LISTS_PER_SQRT = 4
MIN_TRAIN_PER_LIST = 39  # FAISS warns below 39 training points per centroid
MAX_PROBED_SHARE = 4  # nprobe stops at a quarter of the lists: beyond, exact search is as cheap
EXACT_FILTER_BUDGET = 1 << 23  # multiply-adds (8.4 M): ~2 ms on one core
RECALL_K = 10


@dataclass(frozen=True)
class IndexSpec:
    """What was built: saved in ``meta.json`` so a reader rebuilds the same search parameters."""

    kind: str  # "flat" or "ivf"
    nlist: int = 0
    nprobe: int = 0
    recall_at_10: float = 1.0  # against exact search, on sampled listings (1.0: it is exact)

    def to_json(self) -> dict:
        return {"kind": self.kind, "nlist": self.nlist, "nprobe": self.nprobe,
                "recall_at_10": self.recall_at_10}

    @classmethod
    def from_json(cls, data: dict) -> IndexSpec:
        return cls(str(data["kind"]), int(data.get("nlist", 0)), int(data.get("nprobe", 0)),
                   float(data.get("recall_at_10", 1.0)))


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm, float32 and C-contiguous (what FAISS takes); zero rows stay 0."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


def nlist_for(n: int) -> int:
    """IVF lists for ``n`` vectors: the power of two nearest ``LISTS_PER_SQRT`` x sqrt(n) (4,096
    at one million), halved while a list would train on fewer than ``MIN_TRAIN_PER_LIST``
    vectors, at least 16. Measured at one million 64-d vectors whose clusters overlap
    (``bench.search --noise 1.0``): 1,024 lists needed nprobe 256 for recall 0.97 at p99 7.5 ms,
    4,096 lists nprobe 512 for 0.965 at p99 4.3 ms (smaller lists, fewer vectors scanned)."""
    nlist = max(16, 2 ** round(math.log2(LISTS_PER_SQRT * math.sqrt(n))))
    while nlist > 16 and n < MIN_TRAIN_PER_LIST * nlist:
        nlist //= 2
    return nlist


def build_index(vectors: np.ndarray, seed: int = 0, progress=None):  # -> (faiss.Index, IndexSpec)
    """Build the index the size of ``vectors`` calls for (see the module docstring).

    Args:
        vectors: ``(N, D)`` unit rows, float32.
        seed: seeds the training sample and the tuning queries.
        progress: optional callable ``(message)`` told about the slow steps.
    """
    import faiss

    n, dim = vectors.shape
    if n <= EXACT_MAX_VECTORS:
        index = faiss.IndexFlatIP(dim)
        index.add(vectors)
        return index, IndexSpec("flat")
    rng = np.random.default_rng(seed)
    nlist = nlist_for(n)
    train = vectors[np.sort(rng.choice(n, size=min(n, TRAIN_PER_LIST * nlist), replace=False))]
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    if progress:
        progress(f"training IVF: {nlist} lists on {len(train)} vectors")
    index.train(train)
    if progress:
        progress(f"adding {n} vectors")
    index.add(vectors)
    nprobe, recall = tune_nprobe(index, vectors, rng)
    index.nprobe = nprobe
    return index, IndexSpec("ivf", nlist, nprobe, recall)


def tune_nprobe(index, vectors: np.ndarray, rng: np.random.Generator) -> tuple[int, float]:
    """The smallest power-of-two ``nprobe`` reaching :data:`TARGET_RECALL`, and its recall@10."""
    queries = rng.choice(len(vectors), size=min(TUNE_QUERIES, len(vectors)), replace=False)
    truth = exact_neighbours(vectors, vectors[queries], RECALL_K + 1)
    nprobe, recall = 1, 0.0
    while True:
        index.nprobe = nprobe
        _, found = index.search(vectors[queries], RECALL_K + 1)
        recall = recall_at_k(found, truth, RECALL_K, exclude=queries)
        if recall >= TARGET_RECALL or nprobe >= max(1, index.nlist // MAX_PROBED_SHARE):
            return nprobe, recall
        nprobe *= 2


def exact_neighbours(vectors: np.ndarray, queries: np.ndarray, k: int,
                     chunk: int = 262_144) -> np.ndarray:
    """Exact top-``k`` inner-product neighbours, ``(Q, k)`` positions, scanning in chunks."""
    best_scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_ids = np.zeros((len(queries), 0), dtype=np.int64)
    for start in range(0, len(vectors), chunk):
        scores = queries @ np.asarray(vectors[start:start + chunk]).T  # (Q, chunk)
        take = min(k, scores.shape[1])
        top = np.argpartition(-scores, take - 1, axis=1)[:, :take]  # (Q, k), unordered
        best_scores = np.concatenate([best_scores, np.take_along_axis(scores, top, axis=1)], axis=1)
        best_ids = np.concatenate([best_ids, top + start], axis=1)
        keep = np.argsort(-best_scores, axis=1, kind="stable")[:, :k]  # (Q, <= 2k) sorted
        best_scores = np.take_along_axis(best_scores, keep, axis=1)
        best_ids = np.take_along_axis(best_ids, keep, axis=1)
    return best_ids


def recall_at_k(found: np.ndarray, truth: np.ndarray, k: int,
                exclude: np.ndarray | None = None) -> float:
    """Mean share of the true top-``k`` found in the top-``k``; ``exclude[i]`` (the query's own
    position, when queries are indexed vectors) is dropped from both lists first."""
    total = 0.0
    for i in range(len(truth)):
        skip = -1 if exclude is None else exclude[i]
        want = [p for p in truth[i] if p != skip][:k]
        got = [p for p in found[i] if p != skip and p >= 0][:k]
        total += len(set(got).intersection(want)) / max(1, len(want))
    return total / max(1, len(truth))


class VectorIndex:
    """A loaded FAISS index with its vectors (for filtered exact scans and listing look-ups)."""

    def __init__(self, index, vectors: np.ndarray, spec: IndexSpec) -> None:
        self.index = index
        self.vectors = vectors  # (N, D) float32, position = listing's pos
        self.spec = spec
        if spec.kind == "ivf":
            index.nprobe = spec.nprobe

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    @classmethod
    def load(cls, directory: Path, spec: IndexSpec, index_file: str, vectors_file: str) -> VectorIndex:
        import faiss

        vectors = np.load(directory / vectors_file, mmap_mode="r")
        return cls(faiss.read_index(str(directory / index_file)), vectors, spec)

    def search(self, query: np.ndarray, depth: int, allowed: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """The ``depth`` nearest listings to the unit vector ``query``, ``(positions, scores)``.

        Args:
            query: ``(D,)`` float32, unit length.
            allowed: optional ``(N,)`` bool mask; only those positions may be returned.
        """
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        if allowed is None:
            scores, ids = self.index.search(query, min(depth, len(self)))
            return _valid(ids[0], scores[0])
        positions = np.flatnonzero(allowed)
        if len(positions) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        if self.spec.kind == "flat" or len(positions) * self.dim <= EXACT_FILTER_BUDGET:
            return self._scan(query[0], positions, depth)
        return self._search_selected(query, allowed, depth)

    def _scan(self, query: np.ndarray, positions: np.ndarray, depth: int
              ) -> tuple[np.ndarray, np.ndarray]:
        scores = np.asarray(self.vectors[positions]) @ query  # (M,)
        depth = min(depth, len(positions))
        top = np.argpartition(-scores, depth - 1)[:depth]
        top = top[np.argsort(-scores[top], kind="stable")]
        return positions[top].astype(np.int64), scores[top].astype(np.float32)

    def _search_selected(self, query: np.ndarray, allowed: np.ndarray, depth: int
                         ) -> tuple[np.ndarray, np.ndarray]:
        import faiss

        bitmap = np.packbits(allowed.astype(np.uint8), bitorder="little")
        selector = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bitmap))
        nprobe = filtered_nprobe(self.spec, float(allowed.mean()))
        params = faiss.SearchParametersIVF(sel=selector, nprobe=nprobe)
        scores, ids = self.index.search(query, min(depth, int(allowed.sum())), params=params)
        return _valid(ids[0], scores[0])

    def save(self, directory: Path, index_file: str, vectors_file: str) -> None:
        import faiss

        faiss.write_index(self.index, str(directory / index_file))
        np.save(directory / vectors_file, np.asarray(self.vectors, dtype=np.float32))


def filtered_nprobe(spec: IndexSpec, share: float) -> int:
    """The lists a filtered search probes when ``share`` of the vectors pass the filter.

    More the fewer pass, so about as many candidates are scored as without a filter -- but never
    more than a quarter of the lists (or the build's own nprobe, if larger): one query must not
    make the index scan everything (a filter narrow enough to need more is scanned exactly,
    ``EXACT_FILTER_BUDGET``, before it gets here).
    """
    wanted = math.ceil(spec.nprobe / max(share, 1e-9))
    return max(1, min(wanted, max(spec.nprobe, spec.nlist // MAX_PROBED_SHARE)))


def _valid(ids: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = ids >= 0  # FAISS pads with -1 when fewer than depth were found
    return ids[keep].astype(np.int64), scores[keep].astype(np.float32)
