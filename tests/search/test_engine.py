"""The search engine over a real built index (session fixture ``search_index``)."""

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
