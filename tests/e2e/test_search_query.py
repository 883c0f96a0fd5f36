"""End to end, an index of the pretrained text encoder: the real TorchServe serves the query
encoder (query.mar) and the real proxy embeds ``/search?q=`` with it; the served vector equals the
in-process one and the index build's."""

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from aicore.sentence import listing_text
from search import build, layout
from search.encoder import index_embedder
from search.engine import SearchEngine
from serving import ctl
from tests.support import e2e

pytestmark = pytest.mark.e2e

START_TIMEOUT_S = 180.0


@pytest.fixture(scope="module")
def encoder_index(search_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The e2e listings dataset indexed by the default encoder (no --run)."""
    data = layout.read_meta(layout.current_generation(search_index))["data"]
    out = tmp_path_factory.mktemp("search_query_e2e") / "index"
    build.main(build.get_args_parser().parse_args(["--data", data, "--out", str(out), "--no-progress"]))
    return out


@pytest.fixture(scope="module")
def stack(serving_model_store: Path, encoder_index: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[ctl.Stack]:
    with e2e.running_stack(tmp_path_factory.mktemp("serve_search_query"), serving_model_store,
                           START_TIMEOUT_S, {"AICORE_SEARCH_INDEX": str(encoder_index)}) as stack:
        yield stack


def served(stack: ctl.Stack, text: str) -> np.ndarray:
    response = e2e.predict_listing_direct(stack, "query", json={"title": text, "embedding": True})
    assert response.status_code == 200, response.text
    return np.asarray(response.json()["embedding"], dtype=np.float32)


def test_served_query_vector_equals_the_index_build_and_in_process(stack, encoder_index):
    engine = SearchEngine.open(encoder_index)
    record = engine.get("prod-07-002")

    listing = served(stack, listing_text(record["title"], record["description"]))
    query = served(stack, "vintage guitar")

    stored = np.asarray(engine.vectors.vectors[engine.position("prod-07-002")])
    assert listing.shape == stored.shape == (384,)
    np.testing.assert_allclose(listing, stored, atol=1e-5)
    in_process = index_embedder(engine.meta).embed_query(text="vintage guitar")
    np.testing.assert_allclose(query, in_process, atol=1e-5)


def test_query_model_refuses_a_request_without_text(stack):
    response = e2e.predict_listing_direct(stack, "query", json={"title": " ", "description": ""})

    assert response.status_code == 400
    assert "no words to embed" in response.json()["error"]


def test_proxy_text_search_embeds_the_query_with_the_query_model(stack, encoder_index):
    with e2e.http() as session:
        response = session.get(f"{stack.proxy_url}/search", params={"q": "guitar", "k": 5},
                               timeout=60)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["embedded_by"] == "query" and body["retriever"] == "fused"
    assert any("dense" in hit["matched"] for hit in body["results"])
