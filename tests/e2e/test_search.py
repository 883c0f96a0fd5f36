"""End to end: the real TorchServe (archives of a real run) and the real proxy serve search over an
index built from that run; the served embedding equals the index build's, a rebuild swaps in
without a failed request, and the evaluation runs through the proxy.
"""

import concurrent.futures
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from aicore.runtime import ONNX_INT8, RUNTIMES
from common.torchserve import MANAGEMENT_KEY
from search import build, evaluate, layout
from search.engine import SearchEngine
from serving import ctl
from tests.support import e2e

pytestmark = pytest.mark.e2e

START_TIMEOUT_S = 180.0


@pytest.fixture(scope="module")
def index(search_index: Path) -> Path:
    return search_index


@pytest.fixture(scope="module")
def stack(serving_model_store: Path, index: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[ctl.Stack]:
    with e2e.running_stack(tmp_path_factory.mktemp("serve_search"), serving_model_store,
                           START_TIMEOUT_S, {"AICORE_SEARCH_INDEX": str(index)}) as stack:
        yield stack


def listing_photo(index: Path, listing_id: str) -> bytes:
    engine = SearchEngine.open(index)
    return engine.image_path(listing_id).read_bytes()


def test_served_embedding_equals_the_index_build(stack, index):
    engine = SearchEngine.open(index)
    listing_id = "prod-05-001"  # one photo: its listing vector is that photo's embedding
    with e2e.http() as session:  # a form field: TorchServe drops URL query parameters
        response = session.post(f"{stack.inference_url}/predictions/cnn", headers=e2e.auth(stack),
                                files={"data": listing_photo(index, listing_id)},
                                data={"embedding": "true"}, timeout=60)

    assert response.status_code == 200, response.text
    served = np.asarray(response.json()["embedding"], dtype=np.float32)
    stored = np.asarray(engine.vectors.vectors[engine.position(listing_id)])
    assert served.shape == stored.shape == (64,)
    if served_runtime(stack, "cnn") == ONNX_INT8:
        # The archive's runtime is the fastest that passes the accuracy gate; int8 weights give
        # the same direction (what search ranks by), not the same digits (measured: 3e-3 apart).
        assert float(served @ stored) == pytest.approx(1.0, abs=1e-4)
    else:  # eager and ONNX fp32 compute what the index build computed
        np.testing.assert_allclose(served, stored, atol=1e-5)


def served_runtime(stack: ctl.Stack, model: str) -> str:
    """The runtime of the served archive: its version ends ``-<runtime>`` (handler.archive)."""
    with e2e.http() as session:
        response = session.get(f"{stack.management_url}/models/{model}",
                               headers=e2e.auth(stack, MANAGEMENT_KEY), timeout=60)
    assert response.status_code == 200, response.text
    version = response.json()[0]["modelVersion"]
    return next(runtime for runtime in RUNTIMES if version.endswith(f"-{runtime}"))


def test_served_answer_without_the_flag_has_no_embedding(stack, index):
    response = e2e.predict_direct(stack, "cnn", listing_photo(index, "prod-05-001"))

    assert response.status_code == 200
    assert "embedding" not in response.json()


def test_proxy_photo_search_finds_the_listing_first(stack, index):
    with e2e.http() as session:
        response = session.post(f"{stack.proxy_url}/search", params={"k": 5},
                                files={"image": ("q.png", listing_photo(index, "prod-07-002"))},
                                timeout=60)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["embedded_by"] == "cnn" and body["retriever"] == "dense"
    assert body["results"][0]["id"] == "prod-07-002"
    assert body["results"][0]["dense_score"] == pytest.approx(1.0, abs=1e-4)


def test_proxy_photo_and_text_search_fuses(stack, index):
    with e2e.http() as session:
        response = session.post(f"{stack.proxy_url}/search", params={"k": 5, "near": "London"},
                                data={"q": "guitar"},
                                files={"image": ("q.png", listing_photo(index, "prod-07-002"))},
                                timeout=60)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["retriever"] == "fused"
    assert all(hit["location"].endswith("London") for hit in body["results"])


def test_proxy_corrupt_photo_is_400_from_the_handler(stack):
    with e2e.http() as session:
        response = session.post(f"{stack.proxy_url}/search",
                                files={"image": ("q.jpg", b"\xff\xd8\xff truncated")}, timeout=60)

    assert response.status_code == 400
    assert response.json()["detail"]


def test_rebuild_is_picked_up_without_a_failed_request(stack, index, serving_runs):
    data = Path(layout.read_meta(layout.current_generation(index))["data"])
    before = layout.current_generation(index)
    statuses: list[int] = []
    stop = threading.Event()

    def hammer() -> None:
        with e2e.http() as session:
            while not stop.is_set():
                statuses.append(session.get(f"{stack.proxy_url}/search",
                                            params={"q": "guitar"}, timeout=60).status_code)

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(hammer) for _ in range(2)]
        build.main(build.get_args_parser().parse_args(
            ["--data", str(data), "--run", str(serving_runs["cnn"]), "--out", str(index),
             "--no-progress", "--no-text-encoder"]))
        new = layout.current_generation(index).name
        # a request that finds the new generation loads it while the others (this one
        # included, if it comes then) are answered by the old: it is served once loaded
        with e2e.http() as session:
            e2e.seconds_until(lambda: session.get(f"{stack.proxy_url}/search", params={"q": "guitar"},
                                                  timeout=60).json()["index"] == new, timeout_s=30)
        stop.set()
        for future in futures:
            future.result()

    assert new != before.name
    assert statuses and set(statuses) == {200}


def test_evaluate_through_the_proxy(stack, index, capsys):
    report = evaluate.main(evaluate.get_args_parser().parse_args(
        ["--index", str(index), "--proxy", stack.proxy_url]))

    assert {(r["query"], r["retriever"]) for r in report["results"]} == {
        ("text", "lexical"), ("image", "dense"), ("text+image", "dense"),
        ("text+image", "lexical"), ("text+image", "fused")}
    assert {row["route"] for row in report["proxy"]} == {"GET /search", "POST /search"}
    assert json.loads((index / layout.EVAL_FILE).read_text())["queries"] == report["queries"]
    assert "precision" not in capsys.readouterr().err
