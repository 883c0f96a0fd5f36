"""search.significance: the paired randomization test of two rankers on the same queries."""

import pytest

from search import judged, significance


def _scores(values):
    return {f"q{i}": float(v) for i, v in enumerate(values)}


def test_paired_test_of_identical_rankers_is_p_one():
    a = _scores([0.1, 0.5, 0.9, 0.3])

    got = significance.paired_test(a, dict(a))

    assert got == {"diff": 0.0, "p": 1.0, "significant": False, "queries": 4}


def test_paired_test_finds_a_consistent_gain_significant():
    # every one of 30 queries 0.05 better: only the observed assignment (and its mirror) is as extreme
    a = _scores([0.2 + 0.02 * i for i in range(30)])
    b = {q: v - 0.05 for q, v in a.items()}

    got = significance.paired_test(a, b)

    assert got["diff"] == pytest.approx(0.05)
    assert got["p"] < 0.001 and got["significant"] is True


def test_paired_test_calls_a_gain_of_one_query_in_many_noise():
    # 40 ties and one query +0.08: mean +0.002, the size of the MiniLM fused-vs-dense MAP gap;
    # swapping that one pair is half of all assignments, so p is ~1
    a = _scores([0.3] * 40 + [0.38])
    b = _scores([0.3] * 41)

    got = significance.paired_test(a, b)

    assert got["diff"] == pytest.approx(0.08 / 41, abs=1e-4)
    assert got["p"] > 0.9 and got["significant"] is False


def test_paired_test_is_reproducible_with_its_seed():
    a = _scores([0.1, 0.4, 0.2, 0.8, 0.5, 0.3, 0.9, 0.6])
    b = _scores([0.2, 0.3, 0.2, 0.6, 0.6, 0.1, 0.7, 0.6])

    assert significance.paired_test(a, b, seed=3) == significance.paired_test(a, b, seed=3)


def test_paired_test_refuses_different_queries():
    with pytest.raises(ValueError, match="different queries"):
        significance.paired_test(_scores([0.1, 0.2]), _scores([0.1]))


def test_compare_tests_every_metric_of_judged_per_query_values():
    qrels = {"q1": {"a": 2, "b": 1}, "q2": {"c": 1}, "q3": {"d": 1}}
    better = judged.per_query(qrels, {"q1": ["a", "b"], "q2": ["c"], "q3": ["d"]})
    worse = judged.per_query(qrels, {"q1": ["x", "a"], "q2": [], "q3": ["y", "d"]})

    got = significance.compare(better, worse)

    assert set(got) == set(judged.METRICS)
    assert got["ndcg@10"]["diff"] > 0 and got["ndcg@10"]["queries"] == 3
    # recall: q1 1 vs 1/2 (b missed), q2 1 vs 0 (nothing ranked), q3 1 vs 1
    assert got["recall@100"]["diff"] == pytest.approx((0.5 + 1 + 0) / 3, abs=1e-4)
