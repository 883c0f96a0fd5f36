"""Retrieval metrics with binary relevance (same root category as the query listing).

Each function takes one query's ranked relevance flags (``relevant[i]`` for the result at rank
``i + 1``) and, where needed, ``R``: how many candidates are relevant in all. Also the timing
helpers the engine and the benchmarks share (:func:`percentiles_ms`, :class:`StageClock`).
"""

import time
from collections.abc import Sequence

import numpy as np


def precision_at_k(relevant: Sequence[bool], k: int) -> float:
    """Relevant results among the first ``k``, over ``k`` (missing results count as misses)."""
    return float(np.sum(relevant[:k])) / k


def map_at_r(relevant: Sequence[bool], r: int) -> float:
    """MAP@R (Musgrave et al. 2020): the mean over the first ``R`` ranks of precision at each
    relevant rank, divided by ``R``; 1.0 only when the top ``R`` are exactly the relevant ones."""
    if r <= 0:
        return 0.0
    flags = np.asarray(relevant[:r], dtype=float)
    hits = np.cumsum(flags)
    return float(np.sum(flags * hits / np.arange(1, len(flags) + 1))) / r


def ndcg_at_k(relevant: Sequence[bool], k: int, r: int) -> float:
    """nDCG@k with gains 1/0: DCG of the ranking over the DCG of ``min(k, R)`` relevant results
    first."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = float(np.sum(np.asarray(relevant[:k], dtype=float) * discounts[:len(relevant[:k])]))
    ideal = float(np.sum(discounts[:min(k, r)]))
    return dcg / ideal if ideal > 0 else 0.0


def percentiles_ms(seconds: Sequence[float]) -> dict[str, float]:
    """``{"p50": ..., "p99": ...}`` in milliseconds."""
    values = np.asarray(seconds, dtype=float) * 1000
    return {"p50": round(float(np.percentile(values, 50)), 3),
            "p99": round(float(np.percentile(values, 99)), 3), "n": int(len(values))}


class StageClock:
    """Milliseconds since the previous lap, per named step (the engine's ``stages_ms``)."""

    def __init__(self, started: float, first: str) -> None:
        self.stages_ms: dict[str, float] = {}
        self._last = started
        self.lap(first)

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.stages_ms[name] = (now - self._last) * 1000
        self._last = now
