"""Fault injection, end to end: the real TorchServe and proxy (serving.ctl on free loopback ports),
real archives and real JPEGs; workers are killed (SIGKILL) or frozen (SIGSTOP) under load.

Every test is bounded in time and asserts outcomes (status codes, what answered before a worker
resumed), never timings. A frozen worker is always resumed, even when a test fails.
"""

import concurrent.futures
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests

from bench.faults import frozen
from common.torchserve import READY
from serving import ctl
from tests.support import e2e

pytestmark = pytest.mark.e2e

START_TIMEOUT_S = 180.0
READ_TIMEOUT_S = 8  # the proxy's AICORE_READ_TIMEOUT_S here: how long a stuck worker costs
MODEL = "resnet50"  # 2 workers x batch 4 in config.properties


@pytest.fixture(scope="module")
def stack(serving_model_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ctl.Stack]:
    env = {"AICORE_READ_TIMEOUT_S": str(READ_TIMEOUT_S),
           "AICORE_ADMISSION_MAX_WAIT_S": "60"}  # waiters outlast the frozen workers
    with e2e.running_stack(tmp_path_factory.mktemp("faults"), serving_model_store, START_TIMEOUT_S,
                           env) as stack:
        yield stack


def workers(stack: ctl.Stack, model: str = MODEL) -> list[dict]:
    with e2e.http() as session:
        response = session.get(f"{stack.management_url}/models/{model}",
                               headers=e2e.auth(stack, "management"), timeout=10)
    response.raise_for_status()
    return response.json()[0]["workers"]


def wait_all_ready(stack: ctl.Stack, timeout: float = 120, model: str = MODEL) -> list[int]:
    """Pids of the model's workers once every one is READY with a live process."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = workers(stack, model)
        if found and all(w["status"] == READY and psutil.pid_exists(w["pid"]) for w in found):
            return sorted(w["pid"] for w in found)
        time.sleep(0.3)
    raise AssertionError(f"{model} workers not READY within {timeout} s: {workers(stack, model)}")


def post(stack: ctl.Stack, model: str = MODEL, timeout: float = 60) -> requests.Response:
    with e2e.http() as session:
        return session.post(f"{stack.proxy_url}/predict/image", params={"model": model},
                            files={"image": ("photo.jpg", PHOTO)}, timeout=timeout)


PHOTO = e2e.photo_jpeg()


def post_text(stack: ctl.Stack) -> requests.Response:
    return e2e.predict_listing_proxy(stack, "text", json={"title": "Ikea desk lamp",
                                                          "description": "barely used"})


# model -> (its proxy request, requests the proxy admits: in flight + waiting). Sized by /health
# from TorchServe's workers x batchSize in config.properties: resnet50 2 x 4 -> 12 + 4, text
# 1 x 16 -> 24 + 8 (proxy/admission.py).
OVERLOAD = {"resnet50": (post, 12 + 4), "text": (post_text, 24 + 8)}


def proxy_log(stack: ctl.Stack) -> str:
    return stack.proxy_log.read_text(errors="replace")


def test_stuck_worker_is_504_while_health_and_other_models_answer(stack):
    stuck = wait_all_ready(stack)[0]
    with frozen([stuck]), concurrent.futures.ThreadPoolExecutor(8) as pool:
        pending = [pool.submit(post, stack) for _ in range(8)]  # some batches go to the frozen one
        time.sleep(1)
        with e2e.http() as session:
            health = session.get(f"{stack.proxy_url}/health", timeout=READ_TIMEOUT_S)
        other = post(stack, "cnn", timeout=READ_TIMEOUT_S)
        answers = [future.result() for future in pending]

    assert health.status_code == 200, health.text
    assert other.status_code == 200, other.text
    codes = sorted(r.status_code for r in answers)
    assert set(codes) <= {200, 504}, [r.text for r in answers]
    assert 504 in codes
    timed_out = next(r for r in answers if r.status_code == 504)
    assert f"did not answer within {READ_TIMEOUT_S} s" in timed_out.json()["detail"]
    wait_all_ready(stack)
    assert post(stack).status_code == 200


@pytest.mark.parametrize("model", OVERLOAD)
def test_overload_is_refused_fast_with_retry_after_and_admitted_requests_succeed(stack, model):
    pids = wait_all_ready(stack, model=model)
    with e2e.http() as session:  # /health sizes admission from TorchServe's workers x batchSize
        assert session.get(f"{stack.proxy_url}/health", timeout=10).status_code == 200
    request, capacity = OVERLOAD[model]
    extra = 12
    answers: list[requests.Response] = []
    lock = threading.Lock()

    def send() -> None:
        response = request(stack)
        with lock:
            answers.append(response)

    threads = [threading.Thread(target=send) for _ in range(capacity + extra)]
    with frozen(pids):  # nothing completes: the proxy must refuse the excess on its own
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with lock:
                if len(answers) >= extra:
                    break
            time.sleep(0.05)
        with lock:
            before_resume = list(answers)
    for thread in threads:
        thread.join(timeout=120)

    assert len(before_resume) == extra, [r.status_code for r in before_resume]
    for response in before_resume:
        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"] == "1"
        assert f"at capacity for model '{model}'" in response.json()["detail"]
    late = answers[extra:]
    assert len(late) == capacity
    assert [r.status_code for r in late] == [200] * capacity, [r.text for r in late if r.status_code != 200]
    assert all(r.json()["model"] == model for r in late)


def test_worker_killed_under_load_loses_no_request(stack):
    wait_all_ready(stack)
    codes: list[tuple[int, str]] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            response = post(stack)
            codes.append((response.status_code, response.text[:200]))

    retried_before = proxy_log(stack).count("retrying once")
    killed = []
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        clients = [pool.submit(client) for _ in range(8)]
        try:
            for _ in range(3):  # a kill between two batches loses nothing: kill until one hits
                time.sleep(1.0)
                victim = wait_all_ready(stack)[len(killed) % 2]
                psutil.Process(victim).kill()
                killed.append(victim)
                time.sleep(1.5)
                if proxy_log(stack).count("retrying once") > retried_before:
                    break
            time.sleep(1.0)
        finally:
            stop.set()
            for future in clients:
                future.result(timeout=120)

    assert proxy_log(stack).count("retrying once") > retried_before, "no kill hit a running batch"
    assert "Worker died" in proxy_log(stack)
    failed = [c for c in codes if c[0] != 200]
    assert failed == [] and len(codes) > 8
    assert not set(wait_all_ready(stack)) & set(killed)  # TorchServe replaced the killed ones
