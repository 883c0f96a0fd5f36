"""The proxy under faults and overload, against fake TorchServes: admission control (refused
before the body is read), the retry budget, and one distinct answer per TorchServe failure."""

import asyncio
import json

import httpx
import pytest
from fastapi.testclient import TestClient

from proxy.admission import Admission, Capacity, Gate
from proxy.middleware import GateMiddleware, Routes
from proxy.app import create_app
from proxy.retry import RetryBudget
from proxy.settings import Settings
from tests.support.proxy import png_bytes
from tests.support.torchserve import TorchServeHTTP
from tests.support.proxy import post_image as post_upload

WORKER_DIED = {"code": 500, "type": "InternalServerException", "message": "Worker died."}
NO_WORKER = {"code": 503, "type": "ServiceUnavailableException",
             "message": 'Model "resnet50" has no worker to serve inference request. Please use '
                        "scale workers API to add workers."}


def post_image(client: TestClient, **params: str) -> httpx.Response:
    return post_upload(client, png_bytes(), **params)


def dropped(request: httpx.Request) -> httpx.Response:
    raise httpx.RemoteProtocolError("Server disconnected without sending a response.",
                                    request=request)


def client_for(settings: Settings, backend: TorchServeHTTP) -> TestClient:
    return TestClient(create_app(settings, transport=httpx.MockTransport(backend)))


@pytest.fixture
def listing_settings(tmp_path) -> Settings:
    """Settings serving the text and listing models too (as config.properties does)."""
    return Settings(key_file=tmp_path / "k.json", models=["cnn", "resnet50", "text", "listing"],
                    default_model="resnet50")


def post_listing(client: TestClient, route: str, **params: str) -> httpx.Response:
    """One listing to ``/predict/text`` (JSON) or ``/predict/listing`` (form fields, no photo)."""
    if route == "/predict/text":
        return client.post(route, params=params, json={"title": "Ikea desk lamp"})
    return client.post(route, params=params, data={"title": "Ikea desk lamp"})


LISTING_ROUTES = {"/predict/text": "text", "/predict/listing": "listing"}


def unbounded(request: httpx.Request) -> bytes:
    """The body without its multipart boundary (httpx draws a new one for every send)."""
    _, _, boundary = request.headers["content-type"].partition("boundary=")
    return request.content.replace(boundary.encode(), b"") if boundary else request.content


# --- retry on a dead worker, under the budget ---------------------------------------------------


@pytest.mark.parametrize("failure", [WORKER_DIED, {**WORKER_DIED, "code": 507}, dropped],
                         ids=["worker-died-500", "worker-died-507", "dropped-connection"])
def test_predict_retries_once_after_worker_died(settings, failure):
    backend = TorchServeHTTP(failure, 200)
    with client_for(settings, backend) as client:
        response = post_image(client)
        budget = client.app.state.torchserve.budget
    assert response.status_code == 200, response.text
    assert response.json()["category"] == "Home & Garden"
    assert len(backend.predictions) == 2
    assert backend.predictions[1].content == backend.predictions[0].content  # the same image
    assert budget.retries == 1


@pytest.mark.parametrize("route", LISTING_ROUTES)
@pytest.mark.parametrize("failure", [WORKER_DIED, dropped], ids=["worker-died", "dropped"])
def test_predict_listing_routes_retry_once_after_worker_died(listing_settings, route, failure):
    backend = TorchServeHTTP(failure, 200)
    with client_for(listing_settings, backend) as client:
        response = post_listing(client, route)
        budget = client.app.state.torchserve.budget
    assert response.status_code == 200, response.text
    assert response.json()["model"] == LISTING_ROUTES[route]
    assert [r.url.path for r in backend.predictions] == [f"/predictions/{LISTING_ROUTES[route]}"] * 2
    first, second = (unbounded(r) for r in backend.predictions)
    assert first == second and b"Ikea desk lamp" in first  # the same listing, sent again
    assert budget.retries == 1


@pytest.mark.parametrize("failure", [WORKER_DIED, dropped], ids=["worker-died", "dropped"])
def test_predict_worker_died_twice_is_502_saying_so(settings, failure):
    backend = TorchServeHTTP(failure)
    with client_for(settings, backend) as client:
        response = post_image(client)
    assert response.status_code == 502
    detail = response.json()["detail"]
    assert ("died while running this request" in detail) or ("closed the connection" in detail)
    assert len(backend.predictions) == 2  # retried once, never more


def test_predict_without_retry_budget_does_not_retry(tmp_path):
    settings = Settings(key_file=tmp_path / "k.json", retry_ratio=0.0, retry_reserve=0.0)
    backend = TorchServeHTTP(WORKER_DIED, 200)
    with client_for(settings, backend) as client:
        response = post_image(client)
        budget = client.app.state.torchserve.budget
    assert response.status_code == 502
    assert "Worker died" in response.json()["detail"]
    assert len(backend.predictions) == 1
    assert (budget.retries, budget.refused) == (0, 1)


def test_predict_other_500_is_not_retried(settings):
    backend = TorchServeHTTP({"code": 500, "message": "Prediction failed"}, 200)
    with client_for(settings, backend) as client:
        response = post_image(client)
    assert response.status_code == 502
    assert "Prediction failed" in response.json()["detail"]
    assert len(backend.predictions) == 1


def test_retry_budget_bounds_retries_to_reserve_plus_ratio():
    budget = RetryBudget(ratio=0.1, reserve=3)
    allowed = 0
    for _ in range(200):  # every request fails and asks for a retry
        budget.deposit()
        allowed += budget.withdraw()
    assert allowed <= 3 + 0.1 * 200
    assert allowed >= 0.1 * 200  # the ratio is really granted, not just the reserve
    assert budget.refused == 200 - allowed


def test_retry_budget_rejects_ratio_outside_unit_interval():
    with pytest.raises(ValueError, match="within"):
        RetryBudget(ratio=1.5, reserve=1)


# --- TorchServe's 503, told apart -----------------------------------------------------------------


@pytest.mark.parametrize(("statuses", "in_detail", "retry_after"), [
    (("READY", "READY"), "queue for model 'resnet50' is full", "1"),
    (("UNLOADING", "UNLOADING"), "is loading", None),
    ((), "runs no worker for model 'resnet50'", None),
], ids=["queue-full", "loading", "no-worker"])
def test_predict_torchserve_503_is_told_apart(settings, statuses, in_detail, retry_after):
    backend = TorchServeHTTP(NO_WORKER, statuses=statuses)
    with client_for(settings, backend) as client:
        response = post_image(client)
    assert response.status_code == 503
    assert in_detail in response.json()["detail"]
    assert response.headers.get("Retry-After") == retry_after


@pytest.mark.parametrize("path", ["/predict/image", *LISTING_ROUTES])
def test_docs_list_every_failure_with_retry_after(settings, path):
    with client_for(settings, TorchServeHTTP(200)) as client:
        responses = client.get("/openapi.json").json()["paths"][path]["post"]["responses"]
    assert "Retry-After" in responses["503"]["headers"]
    for words in ("at capacity", "queue", "loading", "no worker", "not reachable"):
        assert words in responses["503"]["description"]
    assert "worker running the request died" in responses["502"]["description"]
    assert "stuck" in responses["504"]["description"]


# --- admission control ---------------------------------------------------------------------------


def test_admission_sized_from_torchserve_workers_and_batch(settings):
    backend = TorchServeHTTP(200, statuses=("READY", "READY"))  # 2 workers x batch 4
    with client_for(settings, backend) as client:
        gate = client.app.state.admission.gates["resnet50"]
        assert (gate.capacity.in_flight, gate.capacity.waiting) == (12, 4)
        backend.statuses = ["READY"] * 3  # TorchServe scaled up: /health re-sizes
        assert client.get("/health").status_code == 200
        assert (gate.capacity.in_flight, gate.capacity.waiting) == (18, 6)


def test_admission_sizes_text_and_listing_gates_from_their_own_workers(listing_settings):
    # config.properties' shape: image models 2 workers x batch 4/8, text batch 16, listing 8
    backend = TorchServeHTTP(200, statuses=("READY",),
                                 batch_sizes={"cnn": 8, "text": 16, "listing": 8})
    with client_for(listing_settings, backend) as client:
        gates = client.app.state.admission.gates
        sizes = {name: (gate.capacity.in_flight, gate.capacity.waiting)
                 for name, gate in gates.items()}
    assert sizes == {"cnn": (12, 4), "resnet50": (6, 2), "text": (24, 8), "listing": (12, 4)}


def run(coro):
    return asyncio.run(coro)


def test_gate_admits_queues_then_refuses():
    async def scenario() -> tuple[list[bool], list[int]]:
        gate = Gate("m", Capacity(in_flight=2, waiting=1, source="test"), max_wait_s=5)
        first, second = await gate.enter(), await gate.enter()
        third = asyncio.create_task(gate.enter())  # waits for a slot
        await asyncio.sleep(0)
        fourth = await gate.enter()  # queue full: refused at once
        counts = [gate.in_flight, gate.waiting]
        gate.leave()  # hands the slot to the waiter
        return [first, second, await third, fourth], counts + [gate.in_flight, gate.rejected]

    admitted, counts = run(scenario())
    assert admitted == [True, True, True, False]
    assert counts == [2, 1, 2, 1]


def test_gate_waiter_gives_up_after_max_wait():
    async def scenario() -> tuple[bool, int, int]:
        gate = Gate("m", Capacity(in_flight=1, waiting=1, source="test"), max_wait_s=0.05)
        await gate.enter()
        admitted = await gate.enter()
        gate.leave()
        return admitted, gate.in_flight, gate.waiting

    assert run(scenario()) == (False, 0, 0)


def asgi_post(app, path: str, query: bytes, chunks: int) -> tuple[list[dict], list[int]]:
    """POST ``chunks`` body chunks to an ASGI app; returns the messages it sent and a one-item
    list with how many chunks it pulled."""
    pulled = [0]

    async def receive() -> dict:
        pulled[0] += 1
        return {"type": "http.request", "body": b"x" * 16384, "more_body": pulled[0] < chunks}

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query,
             "root_path": "", "client": ("127.0.0.1", 1), "server": ("t", 80),
             "headers": [(b"content-type", b"multipart/form-data; boundary=b")]}
    asyncio.run(app(scope, receive, send))
    return sent, pulled


def gated(inner, admission: Admission, model_routes: dict[str, str],
          fixed_routes: dict[str, str] | None = None) -> GateMiddleware:
    return GateMiddleware(inner, admission, Routes(model_routes, fixed_routes or {}, {}),
                          max_body_bytes=10**6, max_upload_bytes=10**6, body_timeout_s=5,
                          receiving_bytes=10**7, retry_after_s=admission.retry_after_s)


def test_admission_refuses_before_reading_the_body():
    reached = []

    async def inner(scope, receive, send) -> None:  # stands in for FastAPI: would parse the body
        reached.append(scope["path"])

    admission = Admission(["cnn", "resnet50"], 1.0, 0.0, default_slots=1, max_wait_s=1,
                          retry_after_s=2)
    admission.gates["resnet50"].in_flight = 1  # the one slot is taken
    app = gated(inner, admission, {"/predict/image": "resnet50"})

    sent, pulled = asgi_post(app, "/predict/image", b"", chunks=100)
    assert sent[0]["status"] == 503
    assert (b"retry-after", b"2") in sent[0]["headers"]
    assert "at capacity for model 'resnet50'" in json.loads(sent[1]["body"])["detail"]
    assert pulled == [0]  # not one byte of the upload was read
    assert reached == []

    # another model, and paths without admission, still go through
    asgi_post(app, "/predict/image", b"model=cnn", chunks=1)
    asgi_post(app, "/health", b"", chunks=1)
    assert reached == ["/predict/image", "/health"]
    assert admission.gates["cnn"].in_flight == 0  # released after the answer


def test_overloaded_proxy_answers_503_with_retry_after_and_never_calls_torchserve(settings):
    backend = TorchServeHTTP(200)
    with client_for(settings, backend) as client:
        gate = client.app.state.admission.gates["resnet50"]
        gate.in_flight = gate.capacity.in_flight  # every slot taken ...
        gate.capacity = Capacity(gate.capacity.in_flight, 0, "test")  # ... and no queue
        response = post_image(client)
        other = post_image(client, model="cnn")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert "at capacity" in response.json()["detail"]
    assert other.status_code == 200
    assert [r.url.path for r in backend.predictions] == ["/predictions/cnn"]


def test_admission_gates_text_routes_by_their_model_whatever_the_query():
    reached = []

    async def inner(scope, receive, send) -> None:
        reached.append(scope["path"])

    admission = Admission(["resnet50", "text", "listing"], 1.0, 0.0, default_slots=1,
                          max_wait_s=1, retry_after_s=1)
    admission.gates["text"].in_flight = 1  # the text model's one slot is taken
    app = gated(inner, admission, {"/predict/image": "resnet50"},
                {"/predict/text": "text", "/predict/listing": "listing"})

    for query in (b"", b"model=resnet50"):  # ?model= must not pick another model's gate
        sent, pulled = asgi_post(app, "/predict/text", query, chunks=100)
        assert sent[0]["status"] == 503
        assert "at capacity for model 'text'" in json.loads(sent[1]["body"])["detail"]
        assert pulled == [0]
    asgi_post(app, "/predict/listing", b"", chunks=1)
    asgi_post(app, "/predict/image", b"", chunks=1)
    assert reached == ["/predict/listing", "/predict/image"]
    assert admission.gates["text"].rejected == 2
    assert admission.gates["listing"].in_flight == admission.gates["resnet50"].in_flight == 0


@pytest.mark.parametrize("route", LISTING_ROUTES)
def test_overloaded_listing_route_answers_503_and_never_calls_torchserve(listing_settings, route):
    backend = TorchServeHTTP(200)
    with client_for(listing_settings, backend) as client:
        gate = client.app.state.admission.gates[LISTING_ROUTES[route]]
        gate.in_flight = gate.capacity.in_flight  # every slot taken ...
        gate.capacity = Capacity(gate.capacity.in_flight, 0, "test")  # ... and no queue
        response = post_listing(client, route)
        image = post_image(client)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert f"at capacity for model '{LISTING_ROUTES[route]}'" in response.json()["detail"]
    assert image.status_code == 200
    assert [r.url.path for r in backend.predictions] == ["/predictions/resnet50"]
