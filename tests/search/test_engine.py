"""The search engine over a real built index (session fixture ``search_index``)."""

import json
import os
import shutil

import numpy as np
import pytest

from search import layout
from search.engine import DECAY, RRF_K, SearchEngine, SearchRequest
from search.holder import EngineHolder
from search.limits import FUSION_DEPTH
from search.errors import BadRequest, IndexUnavailable, NotFound


@pytest.fixture(scope="module")
def engine(search_index) -> SearchEngine:
    return SearchEngine.open(search_index["index"])


def vector_of(engine: SearchEngine, listing_id: str) -> np.ndarray:
    return np.asarray(engine.vectors.vectors[engine.position(listing_id)])


def test_search_text_finds_the_category_of_the_word(engine):
    result = engine.search(SearchRequest(text="kettle", k=6))

    assert result.retriever == "lexical"
    assert [hit.category for hit in result.hits] == ["Appliances"] * 6
    assert all(hit.matched == ["lexical"] and hit.lexical_rank for hit in result.hits)


def test_search_vector_finds_the_listing_itself_first(engine):
    result = engine.search(SearchRequest(vector=vector_of(engine, "prod-01-002"), k=3))

    assert result.retriever == "dense"
    assert result.hits[0].id == "prod-01-002"
    assert result.hits[0].dense_score == pytest.approx(1.0, abs=1e-5)
    assert result.hits[0].matched == ["dense"]


def test_search_text_and_vector_fuses_by_reciprocal_rank(engine):
    result = engine.search(SearchRequest(text="pram", vector=vector_of(engine, "prod-01-002"), k=5))

    assert result.retriever == "fused"
    top = result.hits[0]
    assert top.id == "prod-01-002" and top.matched == ["dense", "lexical"]
    assert top.score == pytest.approx(1 / (RRF_K + top.dense_rank) + 1 / (RRF_K + top.lexical_rank))
    assert [hit.score for hit in result.hits] == sorted((hit.score for hit in result.hits), reverse=True)


@pytest.mark.parametrize("retriever", ["dense", "lexical", "fused"])
def test_search_each_retriever_stays_selectable(engine, retriever):
    request = SearchRequest(text="pram", vector=vector_of(engine, "prod-01-002"), k=4,
                            retriever=retriever)
    result = engine.search(request)

    assert result.retriever == retriever
    if retriever != "fused":
        assert all(hit.matched == [retriever] for hit in result.hits)


@pytest.mark.parametrize("retriever", ["dense", "lexical"])
def test_search_price_range_filters_before_ranking(engine, retriever):
    request = SearchRequest(text="kettle pram trainers", vector=vector_of(engine, "prod-00-000"),
                            k=20, min_price=20, max_price=40, retriever=retriever)
    hits = engine.search(request).hits

    # prices are 10..50 per category plus one unpriced listing: 20, 30, 40 in 3 categories
    assert len(hits) == 9
    assert all(hit.price is not None and 20 <= hit.price <= 40 for hit in hits)


def test_search_category_filter_ignores_case(engine):
    hits = engine.search(SearchRequest(vector=vector_of(engine, "prod-00-000"), k=20,
                                       category="baby & kids stuff")).hits

    assert len(hits) == 6 and {hit.category for hit in hits} == {"Baby & Kids Stuff"}


@pytest.mark.parametrize(("near", "towns"), [
    ("London", {"Hackney, London", "Camden, London"}),  # a region: all its towns
    ("camden", {"Camden, London"}),  # a town, any case
    ("Zurich", {"Zürich, Switzerland"}),  # accents ignored
    ("Leeds, West  Yorkshire", {"Leeds, West Yorkshire"}),  # town, region
])
def test_search_near_matches_town_or_region(engine, near, towns):
    hits = engine.search(SearchRequest(text="kettle pram trainers", k=50, near=near)).hits

    assert hits and {hit.location for hit in hits} == towns


def test_search_unknown_place_is_refused_with_suggestions(engine):
    with pytest.raises(BadRequest, match="unknown place near='Londn'.*'london'"):
        engine.search(SearchRequest(text="kettle", near="Londn"))


@pytest.mark.parametrize(("request_kwargs", "message"), [
    ({}, "empty query"),
    ({"text": "   "}, "empty query"),
    ({"text": "?!"}, "no words"),
    ({"text": "kettle", "k": 0}, "k=0 is out of range"),
    ({"text": "kettle", "k": 101}, "k=101 is out of range"),
    ({"text": "kettle", "min_price": 50, "max_price": 10}, "min_price=50 is above max_price=10"),
    ({"text": "kettle", "min_price": -1}, "min_price=-1 must be"),
    ({"text": "kettle", "category": "Boats"}, "unknown category 'Boats'"),
    ({"text": "kettle", "retriever": "magic"}, "unknown retriever"),
    ({"text": "kettle", "retriever": "dense"}, "dense retrieval needs a query embedding"),
    ({"vector": np.ones(3, np.float32)}, "shape"),
    ({"text": "kettle", "viewed": ["nope"]}, "viewed listing"),
    ({"text": "x" * 501}, "limit is 500"),
])
def test_search_bad_request_names_the_problem(engine, request_kwargs, message):
    with pytest.raises(BadRequest, match=message):
        engine.search(SearchRequest(**request_kwargs))


def test_personalisation_cold_user_gets_the_plain_query(engine):
    plain = engine.search(SearchRequest(text="vintage", k=5))
    cold = engine.search(SearchRequest(text="vintage", k=5, viewed=[]))

    assert not cold.personalised
    assert [h.id for h in cold.hits] == [h.id for h in plain.hits]


def test_personalisation_viewed_listings_lift_their_category(engine):
    # "vintage" is one listing per category; the user looked at clothes.
    viewed = ["prod-02-003", "prod-02-004"]
    plain = engine.search(SearchRequest(text="vintage", k=3))
    personal = engine.search(SearchRequest(text="vintage", k=3, viewed=viewed))

    assert personal.personalised and personal.retriever == "fused"
    assert personal.hits[0].category == "Clothes, Footwear & Accessories"
    assert {h.id for h in personal.hits} == {h.id for h in plain.hits}  # re-ranked, same matches


def test_user_vector_weights_recent_views_more(engine):
    a, b = vector_of(engine, "prod-00-000"), vector_of(engine, "prod-02-000")
    user = engine.user_vector(["prod-00-000", "prod-02-000"])

    expected = (a + DECAY * b) / np.linalg.norm(a + DECAY * b)
    assert user == pytest.approx(expected, abs=1e-5)


def test_similar_leaves_the_listing_out(engine):
    result = engine.similar("prod-01-002", k=5)

    assert len(result.hits) == 5
    assert "prod-01-002" not in [hit.id for hit in result.hits]


def test_get_and_image_path_of_a_listing(engine, search_index):
    record = engine.get("prod-01-002")

    assert record["title"] == "Pram - brand new" and record["price"] == 30.0
    assert record["image_ids"] == ["img-01-002-0", "img-01-002-1"]
    assert engine.image_path("prod-01-002", 1) == search_index["data"] / "images/img-01-002-1.png"


def test_unknown_listing_is_not_found(engine):
    with pytest.raises(NotFound, match="no listing 'nope'"):
        engine.get("nope")
    with pytest.raises(NotFound, match="has 2 photo"):
        engine.image_path("prod-01-002", 2)


def test_open_without_index_says_what_to_run(tmp_path):
    with pytest.raises(IndexUnavailable, match="make index"):
        SearchEngine.open(tmp_path / "none")


def test_open_while_building_says_retry(tmp_path):
    with layout.build_lock(tmp_path), pytest.raises(IndexUnavailable,
                                                    match=f"being built \\(pid {os.getpid()}") as caught:
        EngineHolder(tmp_path).get()
    assert caught.value.retry_after_s


def test_holder_swaps_to_a_new_generation_and_old_engine_keeps_answering(search_index, tmp_path):
    index = tmp_path / "index"
    shutil.copytree(search_index["index"], index)
    holder = EngineHolder(index)
    old = holder.get()
    new_generation = index / "gen-29990101T000000-abcdef"
    shutil.copytree(old.generation, new_generation)
    layout.publish(index, new_generation)

    new = holder.get()
    assert new.generation == new_generation and new is not old
    assert old.search(SearchRequest(text="kettle", k=1)).hits  # in-flight users are unharmed
    assert holder.get() is new  # loaded once


def test_holder_keeps_the_old_engine_when_a_generation_is_broken(search_index, tmp_path):
    index = tmp_path / "index"
    shutil.copytree(search_index["index"], index)
    holder = EngineHolder(index)
    old = holder.get()
    broken = index / "gen-29990101T000000-badbad"
    broken.mkdir()
    (index / layout.CURRENT_FILE).write_text(broken.name)

    assert holder.get() is old


def test_fusion_depth_bounds_each_retriever(engine):
    assert FUSION_DEPTH >= 10
    result = engine.search(SearchRequest(text="kettle", vector=vector_of(engine, "prod-00-000"),
                                         k=100))
    assert len(result.hits) == len(engine)  # every listing is reachable through one retriever


def test_common_words_are_left_out_of_a_query_with_other_words(engine):
    from search.records import fts_query

    assert "for" in engine.records.common  # "A <noun> for sale" in every description
    assert fts_query("kettle for sale", engine.records.common) == '"kettle"'
    assert fts_query("for sale", engine.records.common) == '"for" OR "sale"'  # nothing else left


@pytest.mark.parametrize("retriever", ["dense", "lexical", "fused"])
def test_viewed_listings_are_not_returned_again(engine, retriever):
    viewed = ["prod-00-001", "prod-00-002"]
    request = SearchRequest(text="kettle", vector=vector_of(engine, "prod-00-001"), k=10,
                            retriever=retriever, viewed=viewed)

    ids = [hit.id for hit in engine.search(request).hits]

    assert ids and not set(viewed) & set(ids)


def test_a_search_times_each_of_its_steps(engine):
    result = engine.search(SearchRequest(text="kettle", vector=vector_of(engine, "prod-00-000"),
                                         k=5))

    assert list(result.stages_ms) == ["prepare", "dense", "lexical", "fuse", "hydrate"]
    assert all(ms >= 0 for ms in result.stages_ms.values())
    assert sum(result.stages_ms.values()) == pytest.approx(result.took_ms, rel=0.05, abs=0.05)


# --- an image index with text vectors: three retrievers (dense, lexical, text_dense) ----------

@pytest.fixture(scope="module")
def multimodal(multimodal_search_index):
    from search.encoder import text_encoder_embedder

    engine = SearchEngine.open(multimodal_search_index["index"])
    return engine, text_encoder_embedder(engine.meta)


def test_text_query_on_a_multimodal_index_fuses_text_dense_and_lexical(multimodal):
    engine, encoder = multimodal
    text_vector = encoder.embed_query(text="kettle")

    result = engine.search(SearchRequest(text="kettle", text_vector=text_vector, k=5))

    assert result.retriever == "fused"
    top = result.hits[0]
    assert top.category == "Appliances" and top.matched == ["lexical", "text_dense"]
    stored = engine.text_vectors.vectors[engine.position(top.id)]
    assert top.text_dense_score == pytest.approx(float(stored @ text_vector), abs=1e-5)
    assert top.score == pytest.approx(1 / (RRF_K + top.text_dense_rank) + 1 / (RRF_K + top.lexical_rank))
    assert top.dense_rank is None  # a text query has no image vector


def test_photo_and_text_on_a_multimodal_index_fuses_all_three(multimodal):
    engine, encoder = multimodal
    request = SearchRequest(text="pram", vector=vector_of(engine, "prod-01-002"),
                            text_vector=encoder.embed_query(text="pram"), k=5)

    result = engine.search(request)

    assert result.retriever == "fused"
    top = result.hits[0]
    assert top.id == "prod-01-002" and top.matched == ["dense", "lexical", "text_dense"]
    assert top.score == pytest.approx(sum(1 / (RRF_K + rank) for rank in
                                          (top.dense_rank, top.lexical_rank, top.text_dense_rank)))


@pytest.mark.parametrize("retriever", ["dense", "lexical", "text_dense"])
def test_each_of_three_retrievers_stays_selectable(multimodal, retriever):
    engine, encoder = multimodal
    request = SearchRequest(text="pram", vector=vector_of(engine, "prod-01-002"),
                            text_vector=encoder.embed_query(text="pram"), k=4, retriever=retriever)

    result = engine.search(request)

    assert result.retriever == retriever
    assert all(hit.matched == [retriever] for hit in result.hits)


def test_personalisation_has_a_user_vector_per_vector_set(multimodal):
    engine, encoder = multimodal
    viewed = ["prod-02-000", "prod-02-001"]
    user_text = engine.user_vector(viewed, 0.5, vector_set="text_dense")
    expected = engine.text_vectors.vectors[[engine.position(v) for v in viewed]].T @ [1.0, 0.5]

    assert user_text == pytest.approx(expected / np.linalg.norm(expected), abs=1e-5)
    assert user_text.shape == (engine.text_vectors.dim,) != engine.user_vector(viewed).shape
    result = engine.search(SearchRequest(text="kettle", text_vector=encoder.embed_query(text="kettle"),
                                         viewed=viewed, k=18))
    assert result.personalised and result.retriever == "fused"
    # the image user vector joins as the dense side: all three retrievers ran
    assert {name for hit in result.hits for name in hit.matched} == {"dense", "lexical",
                                                                     "text_dense"}
    assert not set(viewed) & {hit.id for hit in result.hits}


def test_text_dense_needs_text_vectors_and_query_text(engine, multimodal):
    with pytest.raises(BadRequest, match="no text vectors, so no text_dense retriever"):
        engine.search(SearchRequest(text="pram", k=3, retriever="text_dense"))
    with pytest.raises(BadRequest, match="this index has no text vectors"):
        engine.search(SearchRequest(text="pram", text_vector=np.ones(384, np.float32) / 384 ** 0.5))
    multimodal_engine, _ = multimodal
    with pytest.raises(BadRequest, match="text_dense retrieval needs query text"):
        multimodal_engine.search(SearchRequest(vector=vector_of(multimodal_engine, "prod-01-002"),
                                               retriever="text_dense"))
    with pytest.raises(BadRequest, match="query text embedding has shape \\(3,\\)"):
        multimodal_engine.search(SearchRequest(text="pram", text_vector=np.ones(3, np.float32)))


def test_an_index_whose_meta_has_two_weights_loads_and_ranks_by_them(search_index, tmp_path):
    """meta.json written before the third retriever: "ranking" with dense/lexical weights only."""
    from search.ranking import Ranking

    index = tmp_path / "index"
    shutil.copytree(search_index["index"], index)
    generation = layout.current_generation(index)
    meta = layout.read_meta(generation)
    meta["ranking"] = {"fusion": "score", "dense_weight": 0.25, "lexical_weight": 2.0,
                       "rrf_k": 60.0, "bm25_weights": [4.0, 1.0, 2.0, 1.0],
                       "personal_weight": 0.3, "decay": 0.7, "personal_dense_weight": 3.0,
                       "depth": 100}
    (generation / layout.META_FILE).write_text(json.dumps(meta))

    engine = SearchEngine.open(index)

    assert engine.ranking == Ranking(fusion="score", dense_weight=0.25, lexical_weight=2.0,
                                     personal_dense_weight=3.0)
    assert engine.text_vectors is None and engine.ranking.text_dense_weight == 1.0
    result = engine.search(SearchRequest(text="pram", vector=vector_of(engine, "prod-01-002"), k=3))
    # score fusion, each list min-max scaled to 0..1: at most 0.25 + 2.0, BM25's best >= 2.0
    assert result.retriever == "fused" and max(hit.score for hit in result.hits) <= 2.25 + 1e-6
    assert next(hit for hit in result.hits if hit.lexical_rank == 1).score >= 2.0 - 1e-6
