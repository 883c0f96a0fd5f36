"""Is the difference between two rankers on the same judged queries more than chance?

A mean over 41 queries moves by a few thousandths when one query's list changes, so "fused is
0.002 below dense on MAP" says nothing until it is tested. The test is IR's usual one (Smucker,
Allan & Carterette, CIKM 2007: "A comparison of statistical significance tests for information
retrieval evaluation"): a **paired randomization (permutation) test** of the mean per-query
difference — under the null hypothesis the two rankers are interchangeable, so each query's pair
of scores may be swapped; the p-value is the share of random swaps whose mean difference is at
least as far from zero as the one observed. scipy does the resampling (``permutation_type=
"samples"`` is the paired form).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

RESAMPLES = 10_000  # the p-value's resolution; its standard error at p = 0.05 is ~0.002
ALPHA = 0.05  # the level the reports mark a difference "significant" at


def paired_test(a: dict[str, float], b: dict[str, float], resamples: int = RESAMPLES,
                seed: int = 0) -> dict[str, float | bool]:
    """Mean of ``a - b`` over their common queries, and the two-sided p-value of the paired
    randomization test; ``significant`` when p < :data:`ALPHA`. The same seed gives the same p.

    Raises:
        ValueError: the two do not score the same queries (a paired test needs pairs).
    """
    if set(a) != set(b):
        only = sorted(set(a) ^ set(b))[:5]
        raise ValueError(f"paired test over different queries (e.g. {only})")
    qids = sorted(a)
    x = np.array([a[q] for q in qids], dtype=np.float64)  # (Q,)
    y = np.array([b[q] for q in qids], dtype=np.float64)  # (Q,)
    diff = float(np.mean(x - y)) if qids else 0.0
    if not qids or np.allclose(x, y):  # nothing differs: no swap can change the mean
        return {"diff": round(diff, 4), "p": 1.0, "significant": False, "queries": len(qids)}
    result = stats.permutation_test((x, y), _mean_difference, permutation_type="samples",
                                    vectorized=True, n_resamples=resamples,
                                    alternative="two-sided", rng=np.random.default_rng(seed))
    p = float(result.pvalue)
    return {"diff": round(diff, 4), "p": round(p, 4), "significant": p < ALPHA,
            "queries": len(qids)}


def compare(per_query_a: dict[str, dict[str, float]], per_query_b: dict[str, dict[str, float]],
            seed: int = 0) -> dict[str, dict[str, float | bool]]:
    """:func:`paired_test` of every metric two rankers share (``{metric: {qid: value}}`` each,
    as :func:`search.judged.per_query` gives them)."""
    return {metric: paired_test(per_query_a[metric], per_query_b[metric], seed=seed)
            for metric in per_query_a if metric in per_query_b}


def _mean_difference(x: np.ndarray, y: np.ndarray, axis: int) -> np.ndarray:
    return np.mean(x - y, axis=axis)
