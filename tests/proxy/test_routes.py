"""The proxy's routes against a fake TorchServe client (dependency override): predict, health,
models, docs."""

import pytest
from fastapi.testclient import TestClient
from proxy.app import create_app
from tests.support.proxy import png_bytes, post_image
from tests.support.torchserve import PROBABILITIES, describe
from proxy.errors import (
    InvalidImage,
    ModelNotFound,
    NoWorkerReady,
    TorchServeTimeout,
    TorchServeUnreachable,
    UnexpectedAnswer,
)
from common.codec import ModelRequest
from proxy.deps import get_torchserve
from proxy.settings import REPO_ROOT, Settings



def test_predict_returns_category_probabilities_and_model(client, fake):
    image = png_bytes()
    response = post_image(client, image)
    assert response.status_code == 200
    assert response.json() == {"category": "Home & Garden", "probabilities": PROBABILITIES,
                               "model": "resnet50"}
    assert fake.calls == [("resnet50", ModelRequest(image=image))]  # the exact bytes go on


def test_predict_uses_requested_model(client, fake):
    response = post_image(client, png_bytes(), model="cnn")
    assert response.status_code == 200
    assert response.json()["model"] == "cnn"
    assert fake.calls[0][0] == "cnn"


def test_predict_without_file_is_422(client, fake):
    response = client.post("/predict/image")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "image"]
    assert fake.calls == []


def test_predict_empty_file_is_400(client, fake):
    response = post_image(client, b"")
    assert response.status_code == 400
    assert "empty" in response.json()["detail"]
    assert fake.calls == []


def test_predict_not_an_image_passes_torchserve_400_through(client, fake):
    fake.error = InvalidImage("cannot decode the image: cannot identify image file")
    response = post_image(client, b"this is text, not a photo")
    assert response.status_code == 400
    assert response.json() == {"detail": "cannot decode the image: cannot identify image file"}


def test_predict_unknown_model_is_404_listing_known(client, fake):
    response = post_image(client, png_bytes(), model="vgg")
    assert response.status_code == 404
    detail = response.json()["detail"]
    assert "'vgg'" in detail and "cnn" in detail and "resnet50" in detail
    assert fake.calls == []


# The caller reads TorchServe's address as the setting that holds it (proxy/redact.py).
@pytest.mark.parametrize(("error", "status", "detail"), [
    (ModelNotFound("TorchServe has no model 'cnn' registered"), 404, None),
    (TorchServeUnreachable("TorchServe is not reachable at http://127.0.0.1:8080"), 503,
     "TorchServe is not reachable at <AICORE_INFERENCE_URL>"),
    (NoWorkerReady("TorchServe has no worker ready for model 'cnn'"), 503, None),
    (TorchServeTimeout("TorchServe at http://127.0.0.1:8080 did not answer within 60 s"), 504,
     "TorchServe at <AICORE_INFERENCE_URL> did not answer within 60 s"),
    (UnexpectedAnswer("TorchServe answered 500 for model 'cnn': boom"), 502, None),
])
def test_predict_torchserve_error_maps_to_status(client, fake, error, status, detail):
    fake.error = error
    response = post_image(client, png_bytes(), model="cnn")
    assert response.status_code == status
    assert response.json() == {"detail": detail or error.detail}


def test_predict_unexpected_exception_is_500_without_traceback(settings, fake):
    fake.error = RuntimeError("a bug in the proxy")
    app = create_app(settings)
    app.dependency_overrides[get_torchserve] = lambda: fake
    with TestClient(app, raise_server_exceptions=False) as test_client:
        response = post_image(test_client, png_bytes())
    assert response.status_code == 500
    assert "RuntimeError" in response.json()["detail"]
    assert "Traceback" not in response.text


def test_health_all_ready_is_200(client):
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["ready"] is True
    assert body["torchserve"]["status"] == "Healthy"
    by_name = {m["name"]: m for m in body["models"]}
    assert by_name["resnet50"]["workers_ready"] == 2 and by_name["cnn"]["version"] == "1.0"


def test_health_model_without_ready_worker_is_503(client, fake):
    fake.descriptions["cnn"] = describe("cnn", ["UNLOADING"])
    response = client.get("/health")
    assert response.status_code == 503
    by_name = {m["name"]: m for m in response.json()["models"]}
    assert by_name["cnn"]["ready"] is False and "UNLOADING" in by_name["cnn"]["detail"]
    assert by_name["resnet50"]["ready"] is True


def test_health_unregistered_model_is_503(client, fake):
    del fake.descriptions["resnet50"]
    response = client.get("/health")
    assert response.status_code == 503
    by_name = {m["name"]: m for m in response.json()["models"]}
    assert "not registered" in by_name["resnet50"]["detail"]


def test_health_torchserve_down_is_503_with_same_shape(client, fake):
    fake.ping_error = TorchServeUnreachable("TorchServe is not reachable at http://x")
    response = client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert set(body) == {"ready", "torchserve", "models"}
    assert body["ready"] is False and body["torchserve"]["status"] is None
    assert body["torchserve"]["detail"] == "TorchServe is not reachable at <internal address>"
    assert [m["ready"] for m in body["models"]] == [False] * 5  # the catalogue's five


def test_models_lists_versions_kinds_and_servable(client):
    response = client.get("/models")
    assert response.status_code == 200
    body = response.json()
    assert body["default_model"] == "resnet50"
    assert body["models"] == [
        {"name": "cnn", "versions": ["1.0"], "kind": "image", "servable": True},
        {"name": "listing", "versions": ["1.0"], "kind": "listing", "servable": True},
        {"name": "old", "versions": ["0.9", "1.0"], "kind": None, "servable": False},
        {"name": "query", "versions": ["1.0"], "kind": "query", "servable": True},
        {"name": "resnet50", "versions": ["1.0"], "kind": "image", "servable": True},
        {"name": "text", "versions": ["1.0"], "kind": "text", "servable": True},
    ]


def test_models_kinds_come_from_the_catalogue_not_the_names(tmp_path, fake):
    # A config whose image model is called "text-like": the kind is the snapshot's, not the name's.
    config = (REPO_ROOT / "config.properties").read_text()
    config = config.replace('"cnn": {"from-archive": {"marName": "cnn.mar"',
                            '"textlike": {"from-archive": {"marName": "cnn.mar"')
    (tmp_path / "config.properties").write_text(config)
    fake.descriptions["textlike"] = describe("textlike", ["READY"])
    app = create_app(Settings(key_file=tmp_path / "k.json", torchserve_config=tmp_path /
                              "config.properties", default_model="textlike"))
    app.dependency_overrides[get_torchserve] = lambda: fake
    with TestClient(app) as test_client:
        models = {m["name"]: m["kind"] for m in test_client.get("/models").json()["models"]}
        predicted = post_image(test_client, png_bytes())
    assert models["textlike"] == "image"
    assert predicted.status_code == 200 and predicted.json()["model"] == "textlike"


def test_docs_and_openapi_show_predict_schema(client):
    assert client.get("/docs").status_code == 200
    response = client.get("/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    predict = spec["paths"]["/predict/image"]["post"]
    form_ref = predict["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
    form = spec["components"]["schemas"][form_ref.rsplit("/", 1)[1]]
    assert form["required"] == ["image"]
    assert {"400", "404", "413", "422", "502", "503", "504"} <= set(predict["responses"])
    result = spec["components"]["schemas"]["PredictResponse"]
    assert result["examples"][0]["category"] == "Home & Garden"
    assert {"/health", "/models"} <= set(spec["paths"])
