"""Ranking: fused scores computed by hand for both fusion methods, validation, and the stored form."""

import numpy as np
import pytest

from search.ranking import DEFAULT_BM25, Ranking, fuse


def _list(positions, scores):
    return np.array(positions, dtype=np.int64), np.array(scores, dtype=np.float32)


def test_fuse_rrf_sums_reciprocal_ranks_of_both_lists():
    found = fuse(Ranking(), dense=_list([5, 3], [0.9, 0.8]), lexical=_list([3, 7], [12.0, 4.0]))

    assert found[5]["fused"] == pytest.approx(1 / 61)
    assert found[3]["fused"] == pytest.approx(1 / 62 + 1 / 61)
    assert found[7]["fused"] == pytest.approx(1 / 62)
    assert found[3]["dense"] == (2, pytest.approx(0.8)) and found[3]["lexical"] == (1, 12.0)
    assert "lexical" not in found[5] and "dense" not in found[7]


def test_fuse_rrf_applies_k_and_retriever_weights():
    ranking = Ranking(rrf_k=10.0, dense_weight=2.0, lexical_weight=0.5)

    found = fuse(ranking, dense=_list([1, 2], [0.5, 0.4]), lexical=_list([2], [3.0]))

    assert found[1]["fused"] == pytest.approx(2 / 11)
    assert found[2]["fused"] == pytest.approx(2 / 12 + 0.5 / 11)


def test_fuse_score_min_max_normalises_each_list():
    ranking = Ranking(fusion="score", dense_weight=2.0, lexical_weight=0.5)

    found = fuse(ranking, dense=_list([1, 2, 3], [0.9, 0.5, 0.1]), lexical=_list([3], [7.0]))

    # dense normalised to 1, 0.5, 0; a one-result list counts fully
    assert found[1]["fused"] == pytest.approx(2.0)
    assert found[2]["fused"] == pytest.approx(1.0)
    assert found[3]["fused"] == pytest.approx(0.5)


def test_fuse_score_of_equal_scores_counts_each_fully():
    found = fuse(Ranking(fusion="score"), dense=_list([4, 8], [0.3, 0.3]), lexical=None)

    assert {pos: entry["fused"] for pos, entry in found.items()} == {4: 1.0, 8: 1.0}


def test_fuse_without_results_is_empty():
    assert fuse(Ranking(fusion="score"), dense=_list([], []), lexical=None) == {}
    assert fuse(Ranking(), dense=None, lexical=None) == {}


@pytest.mark.parametrize("changes, message", [
    ({"fusion": "max"}, "fusion 'max' is not one of rrf, score"),
    ({"bm25_weights": (1.0, 2.0)}, "bm25_weights needs 4 values"),
    ({"personal_weight": 1.5}, "personal_weight 1.5 is outside 0..1"),
])
def test_ranking_refuses_bad_values_naming_them(changes, message):
    with pytest.raises(ValueError, match=message):
        Ranking(**changes)


def test_ranking_json_round_trips_and_keeps_bm25_a_tuple():
    ranking = Ranking(fusion="score", dense_weight=1.5, bm25_weights=(3.0, 1.0, 1.0, 0.5),
                      personal_dense_weight=2.0)

    stored = ranking.to_json()

    assert stored["bm25_weights"] == [3.0, 1.0, 1.0, 0.5]
    assert Ranking.from_json(stored) == ranking


def test_ranking_from_json_keeps_defaults_and_ignores_unknown_keys():
    assert Ranking.from_json(None) == Ranking()
    assert Ranking.from_json({}) == Ranking()
    loaded = Ranking.from_json({"rrf_k": 20, "bm25_weights": [1, 1, 1, 1], "tuned_on": "dev"})

    assert loaded == Ranking(rrf_k=20, bm25_weights=(1.0, 1.0, 1.0, 1.0))
    assert Ranking().bm25_weights == DEFAULT_BM25


def test_personalised_swaps_in_the_personal_dense_weight():
    assert Ranking(dense_weight=1.0).personalised() == Ranking(dense_weight=1.0)
    tuned = Ranking(dense_weight=1.0, personal_dense_weight=3.0)

    assert tuned.personalised().dense_weight == 3.0
    assert tuned.but(lexical_weight=0.2).lexical_weight == 0.2 and tuned.lexical_weight == 1.0


def test_fuse_weighs_the_text_dense_list_as_a_third_retriever():
    ranking = Ranking(rrf_k=10.0, dense_weight=0.5, lexical_weight=1.0, text_dense_weight=2.0)

    found = fuse(ranking, dense=_list([1], [0.9]), lexical=_list([2, 1], [5.0, 4.0]),
                 text_dense=_list([1, 3], [0.8, 0.7]))

    assert found[1]["fused"] == pytest.approx(0.5 / 11 + 1 / 12 + 2 / 11)
    assert found[3]["fused"] == pytest.approx(2 / 12)
    assert found[1]["text_dense"] == (1, pytest.approx(0.8)) and "text_dense" not in found[2]


def test_a_stored_two_weight_ranking_loads_with_the_third_weight_at_its_default():
    """meta.json written before the text-dense retriever existed."""
    old = {"fusion": "score", "dense_weight": 1.0, "lexical_weight": 0.5, "rrf_k": 60.0,
           "bm25_weights": [1.0, 0.5, 4.0, 1.0], "personal_weight": 0.8, "decay": 1.0,
           "personal_dense_weight": 2.0, "depth": 200}

    loaded = Ranking.from_json(old)

    assert loaded.weight("dense") == 1.0 and loaded.weight("lexical") == 0.5
    assert loaded.text_dense_weight == 1.0 and loaded.personal_text_dense_weight is None
    assert loaded.personalised().dense_weight == 2.0 and loaded.depth == 200
    assert Ranking.from_json(loaded.to_json()) == loaded


def test_personalised_swaps_each_dense_retrievers_personal_weight():
    ranking = Ranking(dense_weight=1.0, text_dense_weight=0.5, personal_dense_weight=0.1,
                      personal_text_dense_weight=4.0)

    personal = ranking.personalised()

    assert (personal.dense_weight, personal.text_dense_weight) == (0.1, 4.0)
    assert personal.lexical_weight == 1.0
    assert ranking.single().text_dense_weight == 1.0
    assert ranking.single().personal_text_dense_weight is None
