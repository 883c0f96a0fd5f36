"""End to end, an image index with text vectors (``search.build --run`` of the serving CNN, the
listings' text embedded by the pretrained encoder too): the real proxy embeds ``/search?q=`` with
the real TorchServe's ``query`` model and a photo with ``cnn``; the served text vector equals the
in-process one, so the text-dense scores are the index build's cosines."""

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from search.encoder import text_encoder_embedder
from search.engine import SearchEngine
from serving import ctl
from tests.support import e2e

pytestmark = pytest.mark.e2e

START_TIMEOUT_S = 180.0


@pytest.fixture(scope="module")
def multimodal_index(search_index: Path, serving_runs: dict[str, Path],
                     tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The e2e listings dataset indexed by the serving CNN with the text encoder's vectors."""
    return e2e.index_of_run(search_index, serving_runs["cnn"],
                            tmp_path_factory.mktemp("search_multimodal_e2e") / "index")


@pytest.fixture(scope="module")
def stack(serving_model_store: Path, multimodal_index: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[ctl.Stack]:
    with e2e.running_stack(tmp_path_factory.mktemp("serve_search_multimodal"), serving_model_store,
                           START_TIMEOUT_S, {"AICORE_SEARCH_INDEX": str(multimodal_index)}) as stack:
        yield stack


def test_text_search_is_embedded_by_the_query_model_as_in_process(stack, multimodal_index):
    engine = SearchEngine.open(multimodal_index)
    in_process = text_encoder_embedder(engine.meta).embed_query(text="vintage guitar")

    with e2e.http() as session:
        response = session.get(f"{stack.proxy_url}/search",
                               params={"q": "vintage guitar", "k": 10}, timeout=60)
    served = e2e.predict_listing_direct(stack, "query", json={"title": "vintage guitar",
                                                              "embedding": True})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["embedded_by"] == "query" and body["retriever"] == "fused"
    assert served.status_code == 200
    np.testing.assert_allclose(np.asarray(served.json()["embedding"], np.float32), in_process,
                               atol=1e-5)
    scored = [hit for hit in body["results"] if hit["text_dense_score"] is not None]
    assert scored and all(hit["dense_rank"] is None for hit in body["results"])  # no photo
    for hit in scored:  # the proxy's query vector against the build's text vectors
        stored = np.asarray(engine.text_vectors.vectors[engine.position(hit["id"])])
        assert hit["text_dense_score"] == pytest.approx(float(stored @ in_process), abs=1e-5)


def test_photo_and_text_search_asks_the_cnn_and_the_query_model(stack, multimodal_index):
    engine = SearchEngine.open(multimodal_index)
    photo = engine.image_path("prod-07-002").read_bytes()

    with e2e.http() as session:
        response = session.post(f"{stack.proxy_url}/search", params={"k": 5},
                                data={"q": "guitar"}, files={"image": ("q.png", photo)},
                                timeout=60)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["embedded_by"] == "cnn+query" and body["retriever"] == "fused"
    assert {name for hit in body["results"] for name in hit["matched"]} == {
        "dense", "lexical", "text_dense"}


def test_published_listing_is_found_by_its_text_vector(stack, multimodal_index):
    # A seller's listing on this index gets its title + description embedded by the real
    # `query` model at publish (what the build does for every listing), so the text-dense
    # retriever finds it like a built one, with the build's cosine.
    from aicore.sentence import listing_text
    from tests.support.market import jpeg_with_gps, publish, register

    engine = SearchEngine.open(multimodal_index)
    encoder = text_encoder_embedder(engine.meta)
    title, description = "Harpsichord in walnut", "A small baroque keyboard, tuned last spring"
    url = stack.proxy_url
    with e2e.http() as session:
        published = publish(session, url, register(url), [jpeg_with_gps()], title=title,
                            description=description)
        assert published.status_code == 201, published.text
        response = session.get(f"{url}/search", params={"q": "baroque keyboard instrument",
                                                        "retriever": "text_dense", "k": 5},
                               timeout=60)

    assert response.status_code == 200, response.text
    hits = {hit["id"]: hit for hit in response.json()["results"]}
    assert published.json()["id"] in hits
    listing_vector = encoder.embed_query(text=listing_text(title, description))
    query_vector = encoder.embed_query(text="baroque keyboard instrument")
    assert hits[published.json()["id"]]["text_dense_score"] == pytest.approx(
        float(listing_vector @ query_vector), abs=1e-4)


def test_reembed_gives_a_listing_without_a_text_vector_the_encoders(stack, multimodal_index):
    # A listing as a store of before text vectors holds it (none) is found by text-dense only
    # after `python -m proxy.reembed`, run beside the serving proxy against the real TorchServe,
    # and then with the build's cosine; the proxy sees it through the change feed.
    import os
    import sqlite3
    import subprocess
    import sys

    from aicore.sentence import listing_text
    from serving.process import proxy_env
    from tests.support.market import publish, register

    encoder = text_encoder_embedder(SearchEngine.open(multimodal_index).meta)
    title, description = "Theremin kit", "Build your own electronic instrument, soldering needed"
    query = {"q": "electronic music instrument to solder", "retriever": "text_dense", "k": 5}
    url = stack.proxy_url
    with e2e.http() as session:
        published = publish(session, url, register(url), title=title, description=description)
        assert published.status_code == 201, published.text
        listing_id = published.json()["id"]
        db = sqlite3.connect(Path(os.environ["AICORE_STATE_DIR"]) / "market.db")
        with db:  # as an earlier release left it, announced like any write
            db.execute("UPDATE listings SET text_vector = NULL, text_model = NULL WHERE id = ?",
                       (listing_id,))
            db.execute("INSERT INTO changes (listing_id) VALUES (?)", (listing_id,))
        db.close()
        before = session.get(f"{url}/search", params=query, timeout=60).json()["results"]

        done = subprocess.run([sys.executable, "-m", "proxy.reembed"], capture_output=True,
                              text=True, timeout=120, env={**os.environ, **proxy_env(stack)})
        after = session.get(f"{url}/search", params=query, timeout=60).json()["results"]

    assert listing_id not in [hit["id"] for hit in before]
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["behind"] >= 1 and report["text_vectors"] == report["behind"]
    hits = {hit["id"]: hit for hit in after}
    assert listing_id in hits
    expected = encoder.embed_query(text=listing_text(title, description)) @ encoder.embed_query(
        text=query["q"])
    assert hits[listing_id]["text_dense_score"] == pytest.approx(float(expected), abs=1e-4)
