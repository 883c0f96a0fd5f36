"""Judged-query scoring's parts on a real index: missing judgments, retrievers, empty and refused
queries. The metrics against hand-computed values and the command end to end are in
tests/search/test_evaluate.py."""

import numpy as np
import pytest

from common.cli import UserError
from common.trec import Query
from search import judged
from search.engine import SearchEngine
from search.limits import RETRIEVERS


@pytest.fixture(scope="module")
def image_engine(search_index) -> SearchEngine:
    return SearchEngine.open(search_index["index"])


def test_missing_judged_counts_listings_judgments_and_relevant_ones(image_engine):
    qrels = {"q1": {"prod-00-000": 2, "ghost": 1, "gone": 0}, "q2": {"ghost": 2, "prod-01-000": 0}}

    assert judged.missing_judged(image_engine, qrels) == {
        "listings": 2, "of": 4, "judgments": 3, "relevant_judgments": 2, "examples": ["ghost", "gone"]}


def test_an_image_index_is_judged_lexically_without_a_query_encoder(image_engine):
    assert judged.retrievers_for(image_engine) == ["lexical"]
    assert judged.query_encoder(image_engine) is None
    vectors, seconds = judged.embed_all(None, [Query("a", "sofa"), Query("b", "pram")])
    assert vectors == {"a": None, "b": None} and len(seconds) == 2


def test_a_text_index_embeds_queries_as_unit_vectors(text_search_index):
    engine = SearchEngine.open(text_search_index["index"])

    encode = judged.query_encoder(engine)
    vectors, _ = judged.embed_all(encode, [Query("k", "kettle")])

    assert judged.retrievers_for(engine) == ["fused", "dense", "lexical"]  # no text vectors
    assert np.linalg.norm(vectors["k"].vector) == pytest.approx(1.0, abs=1e-5)
    assert vectors["k"].text_vector is None


def test_a_multimodal_index_embeds_query_text_with_its_text_encoder(multimodal_search_index):
    engine = SearchEngine.open(multimodal_search_index["index"])

    vectors, _ = judged.embed_all(judged.query_encoder(engine), [Query("k", "kettle")])

    assert judged.retrievers_for(engine) == list(RETRIEVERS)  # the image-dense one included
    assert vectors["k"].vector is None  # the CNN reads no text
    assert vectors["k"].text_vector.shape == (engine.text_vectors.dim,)
    assert np.linalg.norm(vectors["k"].text_vector) == pytest.approx(1.0, abs=1e-5)


def test_rank_all_on_a_multimodal_index_ranks_text_by_its_text_vectors(multimodal_search_index):
    engine = SearchEngine.open(multimodal_search_index["index"])
    queries = [Query("k", "kettle"), Query("v", "kettle", ("prod-01-000",))]
    vectors, _ = judged.embed_all(judged.query_encoder(engine), queries)

    text_dense, _ = judged.rank_all(engine, queries, vectors, "text_dense")
    image_dense, _ = judged.rank_all(engine, queries, vectors, "dense")

    assert text_dense["k"][:3] and all(doc.startswith("prod-00-") for doc in text_dense["k"][:3])
    # a text query reaches the image vectors only through a viewed listing's (user vector)
    assert image_dense["k"] == [] and image_dense["v"]


def test_rank_all_scores_a_wordless_query_as_an_empty_ranking(image_engine):
    queries = [Query("k", "kettle"), Query("x", "?!")]

    rankings, seconds = judged.rank_all(image_engine, queries, {}, "lexical")

    assert rankings["x"] == [] and len(seconds) == 1  # only answered queries are timed
    assert rankings["k"] and all(doc.startswith("prod-00-") for doc in rankings["k"])


def test_rank_all_names_the_query_the_engine_refuses(image_engine):
    with pytest.raises(UserError, match="query 'v': viewed listing\\(s\\) not in the index: 'nope'"):
        judged.rank_all(image_engine, [Query("v", "kettle", ("nope",))], {}, "lexical")


def test_rank_all_plain_leaves_viewed_listings_out_without_personalising(image_engine):
    viewed = Query("k", "kettle", ("prod-00-000",))

    plain, _ = judged.rank_all(image_engine, [viewed], {}, "lexical", plain=True)
    everything, _ = judged.rank_all(image_engine, [Query("k", "kettle")], {}, "lexical")

    assert plain["k"] == [doc for doc in everything["k"] if doc != "prod-00-000"]
