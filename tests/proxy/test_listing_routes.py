"""POST /predict/text and /predict/listing: the real proxy and TorchServeClient against a fake
TorchServe (tests.support.torchserve.TorchServeHTTP) that records what it was sent."""

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from common.codec import ModelRequest, decode
from proxy.app import create_app
from proxy.settings import Settings
from tests.support.torchserve import TorchServeHTTP, handler_row

PROBABILITIES = {"Appliances": 0.1, "Home & Garden": 0.7, "Video Games & Consoles": 0.2}
ANSWER = {"category": "Home & Garden", "probabilities": PROBABILITIES}
LIMIT = 4096


@pytest.fixture
def recorder() -> TorchServeHTTP:
    return TorchServeHTTP(httpx.Response(200, json=ANSWER))


@pytest.fixture
def client(tmp_path: Path, recorder: TorchServeHTTP) -> Iterator[TestClient]:
    settings = Settings(key_file=tmp_path / "key_file.json", max_upload_bytes=LIMIT,
                        models=["cnn", "resnet50", "text", "listing"])
    with TestClient(create_app(settings, transport=httpx.MockTransport(recorder))) as test_client:
        yield test_client


def test_predict_text_forwards_json_to_the_text_model(client, recorder):
    response = client.post("/predict/text", json={"title": "Ikea desk lamp",
                                                  "description": "barely used 😊"})
    assert response.status_code == 200
    assert response.json() == {**ANSWER, "model": "text"}
    [sent] = recorder.predictions
    assert sent.url.path == "/predictions/text"
    assert json.loads(sent.content) == {"title": "Ikea desk lamp", "description": "barely used 😊"}


def test_predict_text_missing_field_defaults_to_empty(client, recorder):
    assert client.post("/predict/text", json={"title": "sofa"}).status_code == 200
    assert json.loads(recorder.predictions[0].content) == {"title": "sofa", "description": ""}


@pytest.mark.parametrize("body", [{"title": 5}, {"title": "x", "price": 3}, ["x"]])
def test_predict_text_malformed_json_is_422(client, recorder, body):
    response = client.post("/predict/text", json=body)
    assert response.status_code == 422
    assert recorder.predictions == []


def test_predict_text_handler_refusal_is_400_with_its_reason(client, recorder):
    recorder.answers = [httpx.Response(400, json={"error": "empty listing: it has no words"})]
    response = client.post("/predict/text", json={"title": "", "description": ""})
    assert response.status_code == 400
    assert response.json() == {"detail": "empty listing: it has no words"}


@pytest.mark.parametrize(("answer", "code"), [
    (lambda: httpx.Response(404, json={"message": "Model not found"}), 404),
    (lambda: httpx.Response(503, json={"message": "No worker"}), 503),
    (lambda: httpx.Response(500, text="boom"), 502),
    (lambda: httpx.Response(200, json={"unexpected": True}), 502),
])
def test_predict_text_torchserve_errors_map_like_images(client, recorder,
                                                        answer: Callable, code: int):
    recorder.answers = [answer()]
    response = client.post("/predict/text", json={"title": "sofa"})
    assert response.status_code == code
    assert response.json()["detail"]


def test_predict_listing_forwards_photo_and_text_as_multipart(client, recorder):
    response = client.post("/predict/listing", files={"image": ("p.jpg", b"\xff\xd8jpeg", "image/jpeg")},
                           data={"title": "PS4 with games", "description": "très bon état"})
    assert response.status_code == 200
    assert response.json() == {**ANSWER, "model": "listing"}
    [sent] = recorder.predictions
    assert sent.url.path == "/predictions/listing"
    assert decode("listing", handler_row(sent)) == ModelRequest(
        image=b"\xff\xd8jpeg", title="PS4 with games", description="très bon état")


def test_predict_listing_without_photo_sends_text_only(client, recorder):
    response = client.post("/predict/listing", data={"title": "sofa"})
    assert response.status_code == 200
    assert handler_row(recorder.predictions[0]) == {"body": {"title": "sofa", "description": ""}}


def test_predict_listing_empty_file_chosen_is_no_photo(client, recorder):
    # what a browser form sends when no file was chosen
    response = client.post("/predict/listing", files={"image": ("", b"", "application/octet-stream")},
                           data={"title": "sofa"})
    assert response.status_code == 200
    assert decode("listing", handler_row(recorder.predictions[0])) == ModelRequest(title="sofa")


def test_predict_listing_named_empty_file_is_400(client, recorder):
    response = client.post("/predict/listing", files={"image": ("p.jpg", b"", "image/jpeg")})
    assert response.status_code == 400
    assert "empty" in response.json()["detail"]
    assert recorder.predictions == []


def test_predict_listing_oversized_photo_is_413(client, recorder):
    response = client.post("/predict/listing",
                           files={"image": ("p.jpg", b"x" * (LIMIT + 1), "image/jpeg")})
    assert response.status_code == 413
    assert recorder.predictions == []


@pytest.mark.parametrize("name", ["text", "listing"])
def test_predict_image_refuses_text_models_with_the_right_route(client, recorder, name):
    response = client.post(f"/predict/image?model={name}",
                           files={"image": ("p.jpg", b"\xff\xd8jpeg", "image/jpeg")})
    assert response.status_code == 404
    assert f"/predict/{name}" in response.json()["detail"]
    assert recorder.predictions == []


def test_docs_describe_the_listing_routes(client):
    schema = client.get("/openapi.json").json()
    text = schema["paths"]["/predict/text"]["post"]
    listing = schema["paths"]["/predict/listing"]["post"]
    assert {"200", "400", "404", "503", "504"} <= set(text["responses"])
    assert "multipart/form-data" in listing["requestBody"]["content"]
    assert "examples" in json.dumps(schema["components"]["schemas"]["TextListing"])
