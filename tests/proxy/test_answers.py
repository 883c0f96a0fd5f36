"""proxy.answers: TorchServe's failed answers turned into the proxy's errors, each saying what to do."""

import httpx
import pytest

from proxy.answers import error_message, prediction_error, unavailable, worker_died
from proxy.errors import (InvalidImage, ModelLoading, ModelNotFound, NoWorkerReady,
                          PayloadTooLarge, QueueFull, UnexpectedAnswer, WorkerDied)


@pytest.mark.parametrize(("response", "message"), [
    (httpx.Response(400, json={"error": "cannot decode the image"}), "cannot decode the image"),
    (httpx.Response(503, json={"code": 503, "message": "No worker"}), "No worker"),
    (httpx.Response(500, text="  boom  "), "boom"),
    (httpx.Response(502, text=""), "Bad Gateway"),
])
def test_error_message_takes_torchserves_own_words(response, message):
    assert error_message(response) == message


def test_worker_died_is_recognised_only_from_its_message():
    died = worker_died("cnn", httpx.Response(500, json={"message": "Worker died."}))
    assert isinstance(died, WorkerDied) and "model_log.log" in died.detail
    assert worker_died("cnn", httpx.Response(500, json={"message": "boom"})) is None
    assert worker_died("cnn", httpx.Response(400, json={"message": "Worker died."})) is None


@pytest.mark.parametrize(("status", "error", "in_detail"), [
    (400, InvalidImage, "bad"),
    (404, ModelNotFound, "make archive"),
    (413, PayloadTooLarge, "1234-byte"),
    (500, UnexpectedAnswer, "answered 500"),
])
def test_prediction_error_by_status(status, error, in_detail):
    answer = prediction_error("cnn", 1234, httpx.Response(status, json={"error": "bad"}))
    assert isinstance(answer, error) and in_detail in answer.detail


@pytest.mark.parametrize(("statuses", "error"), [
    (["READY", "UNLOADING"], QueueFull), (["UNLOADING"], ModelLoading), ([], NoWorkerReady),
    ("describe failed", NoWorkerReady),
])
def test_unavailable_tells_a_full_queue_from_no_worker(statuses, error):
    answer = unavailable("cnn", "no worker", statuses, retry_after_s=2)
    assert isinstance(answer, error)
    if error is QueueFull:
        assert answer.headers == {"Retry-After": "2"}
