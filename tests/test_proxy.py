"""The FastAPI proxy: routes against a fake TorchServe client (dependency override), and the real
TorchServeClient against fake TorchServes (httpx.MockTransport, a small loopback HTTP server)."""

import asyncio
import io
import json
import os
import secrets
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from proxy.app import create_app
from proxy.errors import (
    InvalidImage,
    ModelNotFound,
    NoWorkerReady,
    TorchServeError,
    TorchServeTimeout,
    TorchServeUnreachable,
    UnexpectedAnswer,
)
from proxy.routes import get_torchserve
from proxy.settings import REPO_ROOT, Settings
from proxy.torchserve import ModelDescription, Prediction
from proxy.upload import MULTIPART_OVERHEAD

CATEGORIES = ["Appliances", "Home & Garden", "Video Games & Consoles"]
PROBABILITIES = {"Appliances": 0.1, "Home & Garden": 0.7, "Video Games & Consoles": 0.2}
LIMIT = 4096  # bytes: a small upload limit keeps the oversize tests cheap


def png_bytes(size: int = 8) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def describe(name: str, statuses: list[str], version: str = "1.0") -> ModelDescription:
    return ModelDescription.model_validate({
        "modelName": name, "modelVersion": version,
        "workers": [{"id": str(9000 + i), "status": s} for i, s in enumerate(statuses)],
    })


class FakeTorchServe:
    """Stands in for TorchServeClient: canned answers, or the error a test sets."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes]] = []
        self.error: Exception | None = None
        self.ping_error: TorchServeError | None = None
        self.descriptions = {"cnn": describe("cnn", ["READY"]),
                             "resnet50": describe("resnet50", ["READY", "READY"])}

    async def predict(self, model: str, image: bytes) -> Prediction:
        self.calls.append((model, image))
        if self.error is not None:
            raise self.error
        return Prediction(category="Home & Garden", probabilities=PROBABILITIES)

    async def ping(self) -> str:
        if self.ping_error is not None:
            raise self.ping_error
        return "Healthy"

    async def model(self, name: str) -> ModelDescription:
        if name not in self.descriptions:
            raise ModelNotFound(f"TorchServe has no model {name!r} registered")
        return self.descriptions[name]

    async def models(self) -> dict[str, list[str]]:
        return {"cnn": ["1.0"], "old": ["0.9", "1.0"], "resnet50": ["1.0"]}


@pytest.fixture(autouse=True)
def _no_aicore_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's AICORE_* variables must not change what these tests see."""
    for name in list(os.environ):
        if name.startswith("AICORE_"):
            monkeypatch.delenv(name)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(key_file=tmp_path / "key_file.json", max_upload_bytes=LIMIT)


@pytest.fixture
def fake() -> FakeTorchServe:
    return FakeTorchServe()


@pytest.fixture
def client(settings: Settings, fake: FakeTorchServe) -> Iterator[TestClient]:
    app = create_app(settings)
    app.dependency_overrides[get_torchserve] = lambda: fake
    with TestClient(app) as test_client:  # a context manager, so the lifespan runs
        yield test_client


def post_image(client: TestClient, data: bytes, **params: str) -> httpx.Response:
    return client.post("/predict/image", params=params, files={"image": ("photo.png", data)})


# --- POST /predict/image --------------------------------------------------------------------


def test_predict_returns_category_probabilities_and_model(client, fake):
    image = png_bytes()
    response = post_image(client, image)
    assert response.status_code == 200
    assert response.json() == {"category": "Home & Garden", "probabilities": PROBABILITIES,
                               "model": "resnet50"}
    assert fake.calls == [("resnet50", image)]  # the exact bytes reach TorchServe


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


def test_predict_at_limit_is_accepted(client, fake):
    response = post_image(client, b"x" * LIMIT)
    assert response.status_code == 200
    assert len(fake.calls[0][1]) == LIMIT


def test_predict_oversize_is_413_with_limit(client, fake):
    response = post_image(client, b"x" * (LIMIT + 1))
    assert response.status_code == 413
    assert f"{LIMIT} bytes" in response.json()["detail"]
    assert fake.calls == []


def test_predict_oversize_content_length_is_refused_unread(client, fake):
    response = post_image(client, b"x" * (LIMIT + MULTIPART_OVERHEAD + 1))
    assert response.status_code == 413
    assert f"upload limit of {LIMIT} bytes" in response.json()["detail"]
    assert fake.calls == []


def run_asgi_upload(app, total_chunks: int, content_length: int | None) -> tuple[int, list[dict]]:
    """Send a multipart body of ``total_chunks`` 16 KiB chunks straight to the ASGI app.

    Returns:
        How many chunks the app pulled, and the messages it sent back.
    """
    boundary = "b0undary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; "
            f"filename=\"big.png\"\r\nContent-Type: image/png\r\n\r\n").encode()
    chunk = b"x" * 16384
    pulled = 0
    sent: list[dict] = []

    async def receive() -> dict:
        nonlocal pulled
        pulled += 1
        body = head if pulled == 1 else chunk
        return {"type": "http.request", "body": body, "more_body": pulled < total_chunks}

    async def send(message: dict) -> None:
        sent.append(message)

    length = [(b"content-length", str(content_length).encode())] if content_length else []
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/predict/image", "raw_path": b"/predict/image",
        "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1), "server": ("t", 80),
        "headers": [(b"content-type", f"multipart/form-data; boundary={boundary}".encode()),
                    *length],
    }
    asyncio.run(app(scope, receive, send))
    return pulled, sent


@pytest.mark.parametrize("declared", [False, True], ids=["chunked", "content-length"])
def test_upload_limit_stops_reading_an_oversize_body(settings, fake, declared):
    """A declared oversize body is refused unread; a streamed one is cut off past the limit."""
    app = create_app(settings)
    app.dependency_overrides[get_torchserve] = lambda: fake
    total_chunks = 200  # 3.2 MB if read to the end; the limit is LIMIT + 64 KiB
    pulled, sent = run_asgi_upload(app, total_chunks, total_chunks * 16384 if declared else None)
    assert sent[0]["status"] == 413
    assert f"{LIMIT} bytes" in json.loads(sent[1]["body"])["detail"]
    if declared:
        assert pulled == 0
    else:
        assert pulled <= (LIMIT + MULTIPART_OVERHEAD) // 16384 + 2
    assert fake.calls == []


def test_predict_unknown_model_is_404_listing_known(client, fake):
    response = post_image(client, png_bytes(), model="vgg")
    assert response.status_code == 404
    detail = response.json()["detail"]
    assert "'vgg'" in detail and "cnn" in detail and "resnet50" in detail
    assert fake.calls == []


@pytest.mark.parametrize(("error", "status"), [
    (ModelNotFound("TorchServe has no model 'cnn' registered"), 404),
    (TorchServeUnreachable("TorchServe is not reachable at http://127.0.0.1:8080"), 503),
    (NoWorkerReady("TorchServe has no worker ready for model 'cnn'"), 503),
    (TorchServeTimeout("TorchServe at http://127.0.0.1:8080 did not answer within 60 s"), 504),
    (UnexpectedAnswer("TorchServe answered 500 for model 'cnn': boom"), 502),
])
def test_predict_torchserve_error_maps_to_status(client, fake, error, status):
    fake.error = error
    response = post_image(client, png_bytes(), model="cnn")
    assert response.status_code == status
    assert response.json() == {"detail": error.detail}


def test_predict_unexpected_exception_is_500_without_traceback(settings, fake):
    fake.error = RuntimeError("a bug in the proxy")
    app = create_app(settings)
    app.dependency_overrides[get_torchserve] = lambda: fake
    with TestClient(app, raise_server_exceptions=False) as test_client:
        response = post_image(test_client, png_bytes())
    assert response.status_code == 500
    assert "RuntimeError" in response.json()["detail"]
    assert "Traceback" not in response.text


# --- GET /health and GET /models -----------------------------------------------------------


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
    assert body["torchserve"]["detail"] == "TorchServe is not reachable at http://x"
    assert [m["ready"] for m in body["models"]] == [False, False]


def test_models_lists_versions_and_servable(client):
    response = client.get("/models")
    assert response.status_code == 200
    body = response.json()
    assert body["default_model"] == "resnet50"
    assert body["models"] == [
        {"name": "cnn", "versions": ["1.0"], "servable": True},
        {"name": "old", "versions": ["0.9", "1.0"], "servable": False},
        {"name": "resnet50", "versions": ["1.0"], "servable": True},
    ]


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


# --- settings ------------------------------------------------------------------------------


def test_settings_read_env_with_prefix(monkeypatch):
    monkeypatch.setenv("AICORE_MODELS", "cnn, resnet50,extra")
    monkeypatch.setenv("AICORE_DEFAULT_MODEL", "cnn")
    monkeypatch.setenv("AICORE_INFERENCE_URL", "http://127.0.0.1:9080/")
    settings = Settings()
    assert settings.models == ["cnn", "resnet50", "extra"]
    assert settings.default_model == "cnn"
    assert settings.inference_url == "http://127.0.0.1:9080"
    assert settings.key_file == REPO_ROOT / ".serve" / "key_file.json"


def test_settings_default_model_not_served_is_rejected():
    with pytest.raises(ValueError, match="default_model 'vgg' is not one of"):
        Settings(default_model="vgg")


# --- the real TorchServeClient against a fake TorchServe (httpx.MockTransport) ---------------

INVALID_KEY = {"code": 400, "type": "InvalidKeyException",
               "message": "Token Authorization failed. Token either incorrect, expired, or not "
                          "provided correctly"}


class FakeTorchServeServer:
    """TorchServe 0.12's HTTP behaviour that the proxy relies on, keys included: new keys in
    key_file.json at every (re)start, 400 InvalidKeyException for a wrong key, GET /token."""

    def __init__(self, key_file: Path) -> None:
        self.key_file = key_file
        self.requests: list[httpx.Request] = []
        self.keys: dict[str, str] = {}
        self.restart()

    def restart(self) -> None:
        self.keys = {kind: secrets.token_urlsafe(6) for kind in ("management", "inference", "API")}
        self.write_key_file()

    def expire(self, kind: str) -> None:
        """The key in the file stops working, as when token_expiration_min has passed."""
        self.keys[kind] = "expired-" + secrets.token_urlsafe(6)

    def write_key_file(self) -> None:
        self.key_file.write_text(json.dumps({kind: {"key": key} for kind, key in self.keys.items()}))

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        api = "management" if request.url.port == 8081 else "inference"
        auth = request.headers.get("authorization")
        if request.url.path == "/token":
            if auth != f"Bearer {self.keys['API']}":
                return httpx.Response(400, json=INVALID_KEY)
            self.keys[request.url.params["type"]] = secrets.token_urlsafe(6)
            self.write_key_file()
            return httpx.Response(200)
        if auth != f"Bearer {self.keys[api]}":
            return httpx.Response(400, json=INVALID_KEY)
        return self.answer(request)

    def answer(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/ping":
            return httpx.Response(200, json={"status": "Healthy"})
        if path.startswith("/predictions/"):
            if not request.content.startswith(b"\x89PNG"):
                return httpx.Response(400, json={"error": "cannot decode the image"})
            return httpx.Response(200, json={"category": "Appliances",
                                             "probabilities": PROBABILITIES})
        if path == "/models":
            return httpx.Response(200, json={"models": [{"modelName": "resnet50"},
                                                        {"modelName": "cnn"}]})
        name = path.split("/")[2]
        versions = ["1.0", "2.0"] if path.endswith("/all") else ["1.0"]
        return httpx.Response(200, json=[
            {"modelName": name, "modelVersion": v, "workers": [{"id": "9000", "status": "READY"}]}
            for v in versions
        ])

    def paths(self) -> list[str]:
        return [request.url.path for request in self.requests]


@pytest.fixture
def server(tmp_path: Path) -> FakeTorchServeServer:
    return FakeTorchServeServer(tmp_path / "key_file.json")


@pytest.fixture
def real_client(settings: Settings, server: FakeTorchServeServer) -> Iterator[TestClient]:
    app = create_app(settings, transport=httpx.MockTransport(server.handle))
    with TestClient(app) as test_client:
        yield test_client


def test_torchserve_client_sends_inference_key_and_raw_bytes(real_client, server):
    image = png_bytes()
    response = post_image(real_client, image, model="cnn")
    assert response.status_code == 200
    assert response.json() == {"category": "Appliances", "probabilities": PROBABILITIES,
                               "model": "cnn"}
    sent = server.requests[-1]
    assert sent.url.path == "/predictions/cnn"
    assert sent.headers["authorization"] == f"Bearer {server.keys['inference']}"
    assert sent.headers["content-type"] == "application/octet-stream"
    assert sent.content == image


def test_torchserve_client_rereads_key_file_after_restart(real_client, server):
    assert post_image(real_client, png_bytes()).status_code == 200
    server.restart()  # TorchServe restarted: new keys in the file, the proxy's copy is stale
    response = post_image(real_client, png_bytes())
    assert response.status_code == 200
    assert server.paths() == ["/predictions/resnet50"] * 3  # ok, rejected, retried
    assert server.requests[-1].headers["authorization"] == f"Bearer {server.keys['inference']}"


def test_torchserve_client_renews_expired_key(real_client, server):
    server.expire("inference")  # the file still holds the old key
    response = post_image(real_client, png_bytes())
    assert response.status_code == 200
    assert server.paths() == ["/predictions/resnet50", "/token", "/predictions/resnet50"]
    token_call = server.requests[1]
    assert token_call.url.params["type"] == "inference"
    assert token_call.headers["authorization"] == f"Bearer {server.keys['API']}"


def test_torchserve_client_wrong_key_file_is_502_naming_it(real_client, server, settings):
    settings.key_file.write_text(json.dumps({k: {"key": "wrong"} for k in server.keys}))
    response = post_image(real_client, png_bytes())
    assert response.status_code == 502
    detail = response.json()["detail"]
    assert str(settings.key_file) in detail and "AICORE_KEY_FILE" in detail


def test_torchserve_client_missing_key_file_is_502_naming_it(settings, server, tmp_path):
    settings.key_file = tmp_path / "elsewhere" / "key_file.json"
    app = create_app(settings, transport=httpx.MockTransport(server.handle))
    with TestClient(app) as test_client:
        response = test_client.get("/models")
    assert response.status_code == 502
    assert f"the key file {settings.key_file} does not exist" in response.json()["detail"]
    assert "authorization" not in server.requests[0].headers


def test_torchserve_client_passes_handler_400_through(real_client):
    response = post_image(real_client, b"GIF89a, not what the fake decodes")
    assert response.status_code == 400
    assert response.json() == {"detail": "cannot decode the image"}


def test_torchserve_client_health_and_models_use_management_key(real_client, server):
    response = real_client.get("/health")
    assert response.status_code == 200
    assert response.json()["ready"] is True
    response = real_client.get("/models")
    assert response.status_code == 200
    assert response.json()["models"][1] == {"name": "resnet50", "versions": ["1.0", "2.0"],
                                            "servable": True}
    management = [r for r in server.requests if r.url.port == 8081]
    assert management and all(r.headers["authorization"] == f"Bearer {server.keys['management']}"
                              for r in management)


@pytest.mark.parametrize(("answer", "status", "in_detail"), [
    (httpx.Response(404, json={"code": 404, "type": "ModelNotFoundException",
                               "message": "Model not found: cnn"}), 404, "make archive"),
    (httpx.Response(503, json={"code": 503, "message": "No worker is available"}), 503,
     "No worker is available"),
    (httpx.Response(413, json={"code": 413, "message": "Request Entity Too Large"}), 413,
     "max_request_size"),
    (httpx.Response(500, text="Internal Server Error"), 502, "answered 500"),
    (httpx.Response(200, json={"unexpected": True}), 502, "without a category"),
])
def test_torchserve_client_maps_torchserve_answers(settings, answer, status, in_detail):
    app = create_app(settings, transport=httpx.MockTransport(lambda request: answer))
    with TestClient(app) as test_client:
        response = post_image(test_client, png_bytes(), model="cnn")
    assert response.status_code == status
    assert in_detail in response.json()["detail"]


def test_torchserve_client_read_timeout_is_504(settings):
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    app = create_app(settings, transport=httpx.MockTransport(slow))
    with TestClient(app) as test_client:
        response = post_image(test_client, png_bytes())
    assert response.status_code == 504
    assert "did not answer within 60 s" in response.json()["detail"]


def test_torchserve_client_retries_a_dropped_connection_once(settings):
    calls = []

    def flaky(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            raise httpx.RemoteProtocolError("Server disconnected", request=request)
        return httpx.Response(200, json={"category": "Appliances", "probabilities": PROBABILITIES})

    app = create_app(settings, transport=httpx.MockTransport(flaky))
    with TestClient(app) as test_client:
        response = post_image(test_client, png_bytes())
    assert response.status_code == 200
    assert len(calls) == 2


# --- the real TorchServeClient over real sockets: down, then back ---------------------------


class _PingHandler(BaseHTTPRequestHandler):
    """Just enough TorchServe (token auth disabled) for /health."""

    def do_GET(self) -> None:
        if self.path == "/ping":
            body = {"status": "Healthy"}
        else:
            name = self.path.split("/")[2]
            body = [{"modelName": name, "modelVersion": "1.0",
                     "workers": [{"id": "9000", "status": "READY"}]}]
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def test_torchserve_down_is_503_then_recovers_when_it_starts(tmp_path):
    # Bound but not listening: connections are refused until server_activate() below.
    backend = ThreadingHTTPServer(("127.0.0.1", 0), _PingHandler, bind_and_activate=False)
    backend.server_bind()
    url = f"http://127.0.0.1:{backend.server_address[1]}"
    settings = Settings(inference_url=url, management_url=url, key_file=tmp_path / "none.json")
    thread = threading.Thread(target=backend.serve_forever, kwargs={"poll_interval": 0.05})
    try:
        with TestClient(create_app(settings)) as test_client:
            response = post_image(test_client, png_bytes())
            assert response.status_code == 503
            assert response.json()["detail"] == (
                f"TorchServe is not reachable at {url}: start it with `make serve`")
            assert test_client.get("/health").status_code == 503

            backend.server_activate()  # TorchServe comes up
            thread.start()
            response = test_client.get("/health")
            assert response.status_code == 200
            assert response.json()["ready"] is True
    finally:
        if thread.is_alive():
            backend.shutdown()
            thread.join(timeout=5)
        backend.server_close()


def test_torchserve_unreachable_port_is_503(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    settings = Settings(inference_url=url, management_url=url, key_file=tmp_path / "k.json")
    with TestClient(create_app(settings)) as test_client:
        response = post_image(test_client, png_bytes())
        models = test_client.get("/models")
    assert response.status_code == 503
    assert "start it with `make serve`" in response.json()["detail"]
    assert models.status_code == 503
