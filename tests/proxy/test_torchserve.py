"""The real TorchServeClient against fake TorchServes: httpx.MockTransport, then a small loopback
HTTP server."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
import httpx
import pytest
from fastapi.testclient import TestClient
from common.net import free_port
from proxy.app import create_app
from tests.support.proxy import png_bytes, post_image
from tests.support.torchserve import PROBABILITIES, TorchServeHTTP
from proxy.settings import Settings



def png_or_400(request: httpx.Request) -> httpx.Response:
    """A handler that decodes PNGs only."""
    if not request.content.startswith(b"\x89PNG"):
        return httpx.Response(400, json={"error": "cannot decode the image"})
    return httpx.Response(200, json={"category": "Appliances", "probabilities": PROBABILITIES})


@pytest.fixture
def server(tmp_path: Path) -> TorchServeHTTP:
    return TorchServeHTTP(png_or_400, statuses=("READY",), versions=("1.0", "2.0"),
                          key_file=tmp_path / "key_file.json")


@pytest.fixture
def real_client(settings: Settings, server: TorchServeHTTP) -> Iterator[TestClient]:
    app = create_app(settings, transport=httpx.MockTransport(server))
    with TestClient(app) as test_client:
        server.requests.clear()  # the start-up's describe calls (admission sizing)
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


def test_torchserve_client_wrong_key_file_is_502_naming_it(server, settings):
    settings.key_file.write_text(json.dumps({k: {"key": "wrong"} for k in server.keys}))
    app = create_app(settings, transport=httpx.MockTransport(server))
    with TestClient(app) as test_client:
        response = post_image(test_client, png_bytes())
    assert response.status_code == 502
    detail = response.json()["detail"]
    assert "<AICORE_KEY_FILE>" in detail and str(settings.key_file) not in detail


def test_torchserve_client_missing_key_file_is_502_naming_it(settings, server, tmp_path):
    settings.key_file = tmp_path / "elsewhere" / "key_file.json"
    app = create_app(settings, transport=httpx.MockTransport(server))
    with TestClient(app) as test_client:
        response = test_client.get("/models")
    assert response.status_code == 502
    assert "the key file <AICORE_KEY_FILE> does not exist" in response.json()["detail"]
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
                                            "kind": "image", "servable": True}
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
    app = create_app(settings, transport=httpx.MockTransport(TorchServeHTTP(answer, statuses=())))
    with TestClient(app) as test_client:
        response = post_image(test_client, png_bytes(), model="cnn")
    assert response.status_code == status
    assert in_detail in response.json()["detail"]


def test_torchserve_client_read_timeout_is_504(settings):
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    app = create_app(settings, transport=httpx.MockTransport(TorchServeHTTP(slow)))
    with TestClient(app) as test_client:
        response = post_image(test_client, png_bytes())
    assert response.status_code == 504
    assert "did not answer within 30 s" in response.json()["detail"]


def test_torchserve_client_retries_a_dropped_connection_once(settings):
    def dropped(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("Server disconnected", request=request)

    backend = TorchServeHTTP(dropped, 200)
    app = create_app(settings, transport=httpx.MockTransport(backend))
    with TestClient(app) as test_client:
        response = post_image(test_client, png_bytes())
    assert response.status_code == 200
    assert len(backend.predictions) == 2


class _LoopbackTorchServe(BaseHTTPRequestHandler):
    """The one HTTP fake (TorchServeHTTP, token auth off) behind a real loopback socket, for the
    tests of connections refused and then accepted."""

    fake = TorchServeHTTP(statuses=("READY",))

    def do_GET(self) -> None:
        answer = self.fake(httpx.Request("GET", f"http://{self.headers['host']}{self.path}"))
        self.send_response(answer.status_code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    def log_message(self, *args: object) -> None:
        pass


def test_torchserve_down_is_503_then_recovers_when_it_starts(tmp_path):
    # Bound but not listening: connections are refused until server_activate() below.
    backend = ThreadingHTTPServer(("127.0.0.1", 0), _LoopbackTorchServe, bind_and_activate=False)
    backend.server_bind()
    url = f"http://127.0.0.1:{backend.server_address[1]}"
    settings = Settings(inference_url=url, management_url=url, key_file=tmp_path / "none.json")
    thread = threading.Thread(target=backend.serve_forever, kwargs={"poll_interval": 0.05})
    try:
        with TestClient(create_app(settings)) as test_client:
            response = post_image(test_client, png_bytes())
            assert response.status_code == 503
            # one address serves both APIs here: named by either setting, never shown
            assert response.json()["detail"] in (
                f"TorchServe is not reachable at <AICORE_{api}_URL>: start it with `make serve`"
                for api in ("INFERENCE", "MANAGEMENT"))
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
