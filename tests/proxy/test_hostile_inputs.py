"""Malformed and hostile request bodies: every one gets a 4xx with a JSON body naming what to fix,
never a 500, and nothing over a documented limit is forwarded to TorchServe.

The real proxy and TorchServeClient against a fake TorchServe (httpx.MockTransport) that records
what reached it; ``raise_server_exceptions=False`` so a 500 is seen as the client would see it.
"""

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from common.codec import MAX_DESCRIPTION_CHARS, MAX_TITLE_CHARS
from proxy.app import create_app
from proxy.settings import Settings

ANSWER = {"category": "Home & Garden", "probabilities": {"Home & Garden": 1.0}}


@pytest.fixture
def forwarded() -> list[httpx.Request]:
    return []


@pytest.fixture
def client(tmp_path: Path, forwarded: list[httpx.Request]) -> Iterator[TestClient]:
    def torchserve(request: httpx.Request) -> httpx.Response:
        request.read()
        if request.url.path.startswith("/predictions/"):
            forwarded.append(request)
        return httpx.Response(200, json=ANSWER)

    settings = Settings(key_file=tmp_path / "key_file.json", max_upload_bytes=4096,
                        models=["cnn", "resnet50", "text", "listing"], default_model="resnet50",
                        search_index=tmp_path / "no-index")
    app = create_app(settings, transport=httpx.MockTransport(torchserve))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


# Raw JSON bodies the validators refuse; each once made the proxy answer 500 (or crash in the
# encoder that forwards it): json.dumps cannot write NaN, Infinity or 1e400 (= inf) back in the
# 422 that echoes them, UTF-8 cannot encode a lone surrogate, json.loads cannot parse an integer
# of more than 4,300 digits.
HOSTILE_BODIES = {
    "lone surrogate": b'{"title": "\\ud800"}',
    "surrogate in description": b'{"title": "lamp", "description": "a\\udfffb"}',
    "NaN": b'{"title": NaN}',
    "Infinity": b'{"title": -Infinity}',
    "number past a float": b'{"title": 1e400}',
    "integer of 5,000 digits": b'{"title": 1' + b"0" * 5000 + b"}",
    "nested NaN": b'{"title": [NaN, {"x": Infinity}]}',
    "not an object": b"[1, 2, NaN]",
    "truncated": b'{"title": "lamp"',
    "not UTF-8": b'{"title": "\xff\xfe"}',
    "unknown field": b'{"title": "lamp", "price": NaN}',
}


@pytest.mark.parametrize("body", HOSTILE_BODIES.values(), ids=HOSTILE_BODIES.keys())
def test_predict_text_hostile_json_is_4xx_json_and_never_forwarded(client, forwarded, body):
    response = client.post("/predict/text", content=body,
                           headers={"content-type": "application/json"})

    assert 400 <= response.status_code < 500, response.text
    assert "detail" in response.json()
    assert forwarded == []


def test_predict_text_lone_surrogate_names_the_field(client):
    response = client.post("/predict/text", content=HOSTILE_BODIES["surrogate in description"],
                           headers={"content-type": "application/json"})

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "description"]
    assert "unicode" in error["msg"]
    assert error["input"] == "a\\udfffb"  # echoed, escaped


@pytest.mark.parametrize(("field", "cap"), [("title", MAX_TITLE_CHARS),
                                            ("description", MAX_DESCRIPTION_CHARS)])
def test_predict_text_field_over_its_cap_is_refused_before_forwarding(client, forwarded, field, cap):
    response = client.post("/predict/text", json={field: "x" * (cap + 1)})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", field]
    assert forwarded == []
    assert client.post("/predict/text", json={field: "x" * cap}).status_code == 200


@pytest.mark.parametrize(("field", "cap"), [("title", MAX_TITLE_CHARS),
                                            ("description", MAX_DESCRIPTION_CHARS)])
def test_predict_listing_form_field_over_its_cap_is_refused_before_forwarding(client, forwarded,
                                                                              field, cap):
    response = client.post("/predict/listing", data={field: "x" * (cap + 1)})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", field]
    assert forwarded == []


# Every route that reads a query parameter or a form: echoed odd values stay writable.
@pytest.mark.parametrize(("method", "path", "kwargs"), [
    ("get", "/search", {"params": {"q": "lamp", "k": "1e400"}}),
    ("get", "/search", {"params": {"q": "lamp", "min_price": "nan"}}),
    ("get", "/search", {"params": {"q": "lamp", "max_price": "-inf"}}),
    ("post", "/search", {"params": {"k": "NaN"}, "data": {"q": "lamp"}}),
    ("get", "/listings/x/image", {"params": {"n": "9" * 5000}}),
    ("post", "/predict/image", {"files": {"image": ("a.png", b"\x89PNG")},
                                "params": {"model": "%ED%A0%80\r\nX: y"}}),
])
def test_odd_query_values_are_4xx_json(client, method, path, kwargs):
    response = getattr(client, method)(path, **kwargs)

    assert 400 <= response.status_code < 500 or response.status_code == 503, response.text
    assert "detail" in response.json()


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_a_listing_id_with_a_newline_is_not_found_by_any_method(client, method):
    """Every /listings/{id} route takes ids the same way. When the write routes matched a newline
    and the read routes did not, a GET of such an id answered an undocumented 405 (found by the
    fuzz test)."""
    response = getattr(client, method)("/listings/a%0Ab")

    assert response.status_code == 404, response.text
