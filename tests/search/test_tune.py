"""Weighted fusion (search.ranking) and search.tune storing the chosen ranking with the index."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from common.trec import Query
from search import build, judged, layout, tune
from search.engine import SearchEngine, SearchRequest
from search.ranking import Ranking, fuse


def test_rrf_weights_each_retriever():
    dense = (np.array([7, 3]), np.array([0.9, 0.5]))
    lexical = (np.array([3]), np.array([12.0]))

    found = fuse(Ranking(dense_weight=0.5, lexical_weight=2.0, rrf_k=10), dense, lexical)

    assert found[7]["fused"] == pytest.approx(0.5 / 11)
    assert found[3]["fused"] == pytest.approx(0.5 / 12 + 2.0 / 11)
    assert found[3]["dense"] == (2, 0.5) and found[3]["lexical"] == (1, 12.0)


def test_score_fusion_min_max_normalises_each_list():
    dense = (np.array([1, 2, 3]), np.array([0.8, 0.6, 0.4]))
    lexical = (np.array([3, 4]), np.array([10.0, 5.0]))

    found = fuse(Ranking(fusion="score", dense_weight=1.0, lexical_weight=0.5), dense, lexical)

    assert found[1]["fused"] == pytest.approx(1.0)
    assert found[2]["fused"] == pytest.approx(0.5)
    assert found[3]["fused"] == pytest.approx(0.0 + 0.5 * 1.0)
    assert found[4]["fused"] == pytest.approx(0.0)


def test_ranking_round_trips_and_refuses_an_unknown_fusion():
    ranking = Ranking(fusion="score", dense_weight=0.3, bm25_weights=(1.0, 0.5, 4.0, 1.0))

    assert Ranking.from_json(ranking.to_json()) == ranking
    assert Ranking.from_json(None) == Ranking()
    with pytest.raises(ValueError, match="'borda' is not one of rrf, score"):
        Ranking(fusion="borda")


def test_engine_fuses_with_the_requested_weights(text_search_index):
    engine = SearchEngine.open(text_search_index["index"])
    vector = np.asarray(engine.vectors.vectors[engine.position("prod-01-002")])
    ranking = Ranking(dense_weight=0.25, lexical_weight=1.0, rrf_k=5)

    result = engine.search(SearchRequest(text="pram", vector=vector, k=5, ranking=ranking))

    top = result.hits[0]
    assert top.score == pytest.approx(0.25 / (5 + top.dense_rank) + 1.0 / (5 + top.lexical_rank))


def tune_a_copy(source: Path, tmp_path: Path, *options: str) -> tuple[Path, dict]:
    """``search.tune`` of a copy of the index ``source`` on two dev queries; (copy, report)."""
    index = tmp_path / "index"
    shutil.copytree(source, index)
    # "kettle" wants the kettles; "vintage" (one per category) was asked by a clothes shopper
    (tmp_path / "dev.tsv").write_text("k\tkettle\t\nv\tvintage\tprod-02-003,prod-02-004\n")
    (tmp_path / "dev.qrels").write_text("".join(f"k 0 prod-00-{p:03d} 2\n" for p in range(6))
                                        + "v 0 prod-02-001 2\n")
    args = tune.get_args_parser().parse_args(
        ["--index", str(index), "--queries", str(tmp_path / "dev.tsv"),
         "--qrels", str(tmp_path / "dev.qrels"), *options])
    return index, tune.main(args)


@pytest.fixture
def tuned_index(text_search_index, tmp_path):
    index, report = tune_a_copy(text_search_index["index"], tmp_path,
                                "--json", str(tmp_path / "tune.json"))
    return index, report, text_search_index


def test_tune_stores_the_chosen_ranking_in_a_new_generation(tuned_index):
    index, chosen, source = tuned_index
    engine = SearchEngine.open(index)

    assert engine.ranking == chosen
    assert engine.meta["tuned"]["objective"] == "ndcg@10"
    steps = {step["step"]: step for step in engine.meta["tuned"]["steps"]}
    assert set(steps) == {"bm25 fields", "fusion", "personalisation", "never loses"}
    assert steps["bm25 fields"]["after"]["ndcg@10"] >= steps["bm25 fields"]["before"]["ndcg@10"]
    fusion = steps["fusion"]  # chosen among the candidates that never lose, when any does
    assert fusion["never_loses"]["candidates"] == 0 or \
        tune.never_loses(fusion["after"], fusion["never_loses"]["floor"])
    assert SearchEngine.open(source["index"]).ranking == Ranking()  # the source index untouched
    assert len([p for p in index.iterdir() if p.name.startswith(layout.GENERATION_PREFIX)]) == 2


def test_the_stored_fusion_never_loses_to_a_single_retriever_on_every_dev_query(tuned_index):
    index, chosen, _ = tuned_index
    final = {step["step"]: step for step in SearchEngine.open(index).meta["tuned"]["steps"]}[
        "never loses"]

    # measured as search.evaluate measures: every dev query, personalised where it has views
    assert final["queries"] == 2 and final["chosen"] == chosen.to_json()
    assert final["never_loses"]["candidates"] > 0  # dense alone is a candidate: one always is
    assert tune.never_loses(final["after"], final["never_loses"]["floor"])
    assert chosen.depth in tune.DEPTHS


def test_single_retrievers_rank_without_the_fusion_settings():
    fused = Ranking(fusion="score", dense_weight=0.3, lexical_weight=2.0, depth=400,
                    personal_dense_weight=4.0, bm25_weights=(1.0, 2.0, 0.0, 1.0), decay=0.5)

    single = fused.single()

    assert single == Ranking(bm25_weights=(1.0, 2.0, 0.0, 1.0), decay=0.5)


@pytest.mark.parametrize("depth", [0, 401])
def test_ranking_refuses_a_depth_out_of_range(depth):
    with pytest.raises(ValueError, match=f"depth {depth} is outside 1..400"):
        Ranking(depth=depth)


def test_fusion_reads_each_retriever_to_the_ranking_s_depth(text_search_index):
    engine = SearchEngine.open(text_search_index["index"])
    vector = np.asarray(engine.vectors.vectors[engine.position("prod-01-002")])

    def ranks(depth: int) -> list[int]:
        result = engine.search(SearchRequest(text="vintage", vector=vector, k=3,
                                             ranking=Ranking(depth=depth)))
        return [r for h in result.hits for r in (h.dense_rank, h.lexical_rank) if r is not None]

    assert max(ranks(3)) <= 3  # only each retriever's top 3 reach fusion
    assert max(ranks(100)) > 3  # (what the default depth lets in on this query)


def test_rebuild_with_the_same_model_keeps_the_tuned_ranking(tuned_index):
    index, chosen, source = tuned_index
    build.main(build.get_args_parser().parse_args(
        ["--data", str(source["data"]), "--run", str(source["run"]), "--out", str(index),
         "--no-progress", "--no-text-encoder"]))

    engine = SearchEngine.open(index)
    assert engine.ranking == chosen and "tuned" in engine.meta


def test_search_query_ranks_with_the_stored_weights(text_search_index, tmp_path):
    from search import query

    index = tmp_path / "index"
    shutil.copytree(text_search_index["index"], index)
    stored = Ranking(dense_weight=0.25, lexical_weight=1.0, rrf_k=5)
    tune.store(index, SearchEngine.open(index), stored, {"queries": "q", "qrels": "r", "steps": []})

    result = query.main(query.get_args_parser().parse_args(
        ["--index", str(index), "--text", "vintage kettle", "-k", "5", "--json"]))

    both = [h for h in result.hits if h.dense_rank and h.lexical_rank]
    assert result.retriever == "fused" and both
    for hit in both:
        assert hit.score == pytest.approx(0.25 / (5 + hit.dense_rank) + 1.0 / (5 + hit.lexical_rank))


def test_a_personalised_query_fuses_with_its_own_dense_weight(text_search_index):
    engine = SearchEngine.open(text_search_index["index"])
    ranking = Ranking(dense_weight=0.1, personal_dense_weight=3.0, rrf_k=5)

    result = engine.search(SearchRequest(text="vintage", k=5, viewed=["prod-02-003"], ranking=ranking))

    both = [h for h in result.hits if h.dense_rank and h.lexical_rank]
    assert result.personalised and both
    for hit in both:
        assert hit.score == pytest.approx(3.0 / (5 + hit.dense_rank) + 1.0 / (5 + hit.lexical_rank))


# --- an image index with text vectors: three retrievers ------------------------------------------

@pytest.fixture
def tuned_multimodal_index(multimodal_search_index, tmp_path):
    index, report = tune_a_copy(multimodal_search_index["index"], tmp_path,
                                "--dry-run", "--json", str(tmp_path / "t.json"))
    return index, report, json.loads((tmp_path / "t.json").read_text())


def test_tune_of_three_retrievers_weighs_text_dense_and_never_loses_to_any(tuned_multimodal_index):
    index, chosen, report = tuned_multimodal_index
    steps = {step["step"]: step for step in report["steps"]}

    assert set(steps) == {"bm25 fields", "fusion", "personalisation", "never loses"}
    final = steps["never loses"]
    assert final["never_loses"]["candidates"] > 0
    assert tune.never_loses(final["after"], final["never_loses"]["floor"])
    assert SearchEngine.open(index).ranking == Ranking()  # --dry-run: nothing stored
    assert chosen.dense_weight == 1.0  # a photo query's weight: no judged query has a photo
    # image-dense for a personalised query: among the candidates, or left as it was
    assert chosen.personal_dense_weight in (None, *tune.PERSONAL_IMAGE_WEIGHTS)


def test_tuner_floor_of_three_retrievers_is_the_best_single_one(multimodal_search_index):
    engine = SearchEngine.open(multimodal_search_index["index"])
    queries = [Query("k", "kettle"), Query("v", "vintage", ("prod-02-003",))]
    qrels = {"k": {f"prod-00-{p:03d}": 2 for p in range(6)}, "v": {"prod-02-001": 2}}
    vectors, _ = judged.embed_all(judged.query_encoder(engine), queries)
    tuner = tune.Tuner(engine, queries, qrels, vectors)

    floor = tuner.floor(Ranking(), queries, plain=False)

    assert tuner.singles == ["dense", "lexical", "text_dense"] and tuner.main == "text_dense"
    alone = [tuner.measure(Ranking(), r, queries, False) for r in tuner.singles]
    assert floor == {m: max(a[m] for a in alone) for m in judged.METRICS}
    assert tuner.weights(0.3, 1.0) == {"text_dense_weight": 0.3, "lexical_weight": 1.0}
