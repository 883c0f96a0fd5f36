"""search.metrics on rankings whose values are known by hand."""

import math

import pytest

from search.metrics import map_at_r, ndcg_at_k, percentiles_ms, precision_at_k


def test_precision_at_k_counts_missing_results_as_misses():
    assert precision_at_k([True, False, True], 10) == pytest.approx(0.2)


def test_map_at_r_is_one_only_for_a_perfect_top_r():
    assert map_at_r([True, True, False], 2) == 1.0
    # R = 3: relevant at ranks 1 and 3 -> (1/1 + 2/3) / 3
    assert map_at_r([True, False, True, True], 3) == pytest.approx((1 + 2 / 3) / 3)
    assert map_at_r([False, True], 0) == 0.0


def test_ndcg_at_k_against_the_ideal_order():
    ideal = 1 + 1 / math.log2(3)
    assert ndcg_at_k([True, True], 10, 2) == pytest.approx(1.0)
    assert ndcg_at_k([False, True, True], 10, 2) == pytest.approx(
        (1 / math.log2(3) + 1 / math.log2(4)) / ideal)


def test_percentiles_in_milliseconds():
    stats = percentiles_ms([0.001] * 99 + [0.1])
    assert stats["p50"] == 1.0 and stats["p99"] == pytest.approx(1.99, abs=0.01)
