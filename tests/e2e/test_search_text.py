"""End to end, a text index: the real TorchServe (archives of real runs) embeds the query text,
the real proxy fuses it with BM25; the served embeddings equal the in-process ones (the text
model's, and the image + text model's for a photo with text)."""

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from search import evaluate
from search.embedders import ListingEmbedder, TextEmbedder
from search.engine import SearchEngine
from serving import ctl
from tests.support import e2e

pytestmark = pytest.mark.e2e

START_TIMEOUT_S = 180.0


@pytest.fixture(scope="module")
def text_index(search_index: Path, serving_runs: dict[str, Path],
               tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The e2e listings dataset indexed by the serving text run."""
    return e2e.index_of_run(search_index, serving_runs["text"],
                            tmp_path_factory.mktemp("search_text_e2e") / "index")


@pytest.fixture(scope="module")
def stack(serving_model_store: Path, text_index: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[ctl.Stack]:
    with e2e.running_stack(tmp_path_factory.mktemp("serve_search_text"), serving_model_store,
                           START_TIMEOUT_S, {"AICORE_SEARCH_INDEX": str(text_index)}) as stack:
        yield stack


def served(stack: ctl.Stack, model: str, **body: object) -> np.ndarray:
    response = e2e.predict_listing_direct(stack, model, **body)
    assert response.status_code == 200, response.text
    return np.asarray(response.json()["embedding"], dtype=np.float32)


def test_served_text_embedding_equals_the_index_build_and_the_query(stack, text_index,
                                                                   serving_runs):
    engine = SearchEngine.open(text_index)
    record = engine.get("prod-07-002")

    listing = served(stack, "text", json={"title": record["title"],
                                          "description": record["description"],
                                          "embedding": True})
    query = served(stack, "text", json={"title": "vintage guitar", "embedding": True})

    stored = np.asarray(engine.vectors.vectors[engine.position("prod-07-002")])
    assert listing.shape == stored.shape == (engine.vectors.dim,)
    np.testing.assert_allclose(listing, stored, atol=1e-5)
    in_process = TextEmbedder(serving_runs["text"]).embed_query(text="vintage guitar")
    np.testing.assert_allclose(query, in_process, atol=1e-5)


def test_served_listing_embedding_of_photo_and_text_equals_in_process(stack, text_index,
                                                                      serving_runs):
    photo = SearchEngine.open(text_index).image_path("prod-07-002").read_bytes()

    vector = served(stack, "listing", files={"title": (None, "vintage guitar"),
                                             "embedding": (None, "true"),
                                             "image": ("image", photo)})

    in_process = ListingEmbedder(serving_runs["listing"]).embed_query(text="vintage guitar",
                                                                      image=photo)
    np.testing.assert_allclose(vector, in_process, atol=1e-5)


def test_proxy_text_search_embeds_the_query_and_fuses(stack, text_index, serving_runs):
    with e2e.http() as session:
        response = session.get(f"{stack.proxy_url}/search", params={"q": "guitar", "k": 5},
                               timeout=60)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["embedded_by"] == "text" and body["retriever"] == "fused"
    engine = SearchEngine.open(text_index)
    query = TextEmbedder(serving_runs["text"]).embed_query(text="guitar")
    dense = [hit for hit in body["results"] if hit["dense_score"] is not None]
    assert dense, body
    for hit in dense:  # TorchServe's query vector is the in-process one
        stored = engine.vectors.vectors[engine.position(hit["id"])]
        assert hit["dense_score"] == pytest.approx(float(stored @ query), abs=1e-4)


def test_evaluate_text_index_through_the_proxy(stack, text_index):
    report = evaluate.main(evaluate.get_args_parser().parse_args(
        ["--index", str(text_index), "--proxy", stack.proxy_url]))

    assert [(r["query"], r["retriever"]) for r in report["results"]] == [
        ("text", "dense"), ("text", "lexical"), ("text", "fused")]
    assert [row["route"] for row in report["proxy"]] == ["GET /search"]
