"""Every route that costs something is gated, and the gate reads the request as its route does.

The real proxy against a fake TorchServe client (dependency override); gates are filled by hand.
"""

import pytest

from proxy.admission import Capacity
from tests.proxy.test_faults import asgi_post, gated
from proxy.admission import Admission
from tests.support.proxy import png_bytes, post_image


def fill(gate) -> None:
    """Every slot taken and no room to wait."""
    gate.in_flight = gate.capacity.in_flight
    gate.capacity = Capacity(gate.capacity.in_flight, 0, "test")


@pytest.mark.parametrize(("method", "path", "gate"), [
    ("get", "/search?q=lamp", "search"),
    ("post", "/search", "search"),
    ("get", "/listings/x", "search"),
    ("get", "/listings/x/similar", "search"),
    ("get", "/listings/x/image", "search"),
    ("get", "/health", "status"),
    ("get", "/models", "status"),
])
def test_costly_route_past_its_gate_is_503_with_retry_after(client, fake, method, path, gate):
    fill(client.app.state.admission.route_gates[gate])

    response = getattr(client, method)(path)

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert f"at capacity for {gate} requests" in response.json()["detail"]


def test_cheap_routes_stay_open_when_the_gates_are_full(client):
    for gate in client.app.state.admission.route_gates.values():
        fill(gate)

    assert client.get("/capabilities").status_code == 200
    assert client.get("/openapi.json").status_code == 200


def test_repeated_model_parameter_is_refused_whichever_comes_first(client, fake):
    response = client.post("/predict/image?model=cnn&model=resnet50",
                           files={"image": ("a.png", png_bytes())})

    assert response.status_code == 400
    assert "model is given 2 times" in response.json()["detail"]
    assert fake.calls == []


def test_unknown_model_is_refused_by_the_gate_unread():
    reached = []

    async def inner(scope, receive, send) -> None:
        reached.append(scope["path"])

    admission = Admission(["cnn", "resnet50"], 1.0, 0.0, default_slots=1, max_wait_s=1,
                          retry_after_s=1)
    sent, pulled = asgi_post(gated(inner, admission, {"/predict/image": "resnet50"}),
                             "/predict/image", b"model=vgg", chunks=100)

    assert sent[0]["status"] == 404
    assert pulled == [0] and reached == []


def test_empty_model_parameter_takes_the_default_gate_and_model(client, fake):
    response = post_image(client, png_bytes(), model="")

    assert response.status_code == 200
    assert fake.calls[0][0] == "resnet50"


def test_bodies_in_transit_past_the_byte_budget_are_refused_and_release_their_bytes():
    from proxy.middleware import GateMiddleware, Routes

    async def inner(scope, receive, send) -> None:
        await receive()

    admission = Admission(["resnet50"], 1.0, 0.0, default_slots=1, max_wait_s=1, retry_after_s=1)
    app = GateMiddleware(inner, admission, Routes({"/predict/image": "resnet50"}, {}, {}),
                         max_body_bytes=10**6, max_upload_bytes=10**6, body_timeout_s=5,
                         receiving_bytes=3 * 16384, retry_after_s=1)

    sent, pulled = asgi_post(app, "/predict/image", b"", chunks=5)  # 5 x 16 KiB > 48 KiB

    assert sent[0]["status"] == 503 and pulled == [4]
    assert app.receiving == 0  # what the refused body held is given back
    assert admission.gates["resnet50"].in_flight == 0
