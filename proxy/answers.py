"""What TorchServe's answer to a prediction means, as the proxy's errors (``proxy/errors.py``).

Read from pytorch/serve 0.12's frontend: ``WorkerThread`` answers every request of the batch a
worker was running when it died (killed, crashed, or past ``responseTimeout``) with
``Worker died.`` — status 500, or 507 when the worker was killed for memory; the inference API
answers 503 ``Model "<name>" has no worker to serve inference request`` both when the model's job
queue is full and when it has no worker.
"""

import httpx

from common.torchserve import READY
from proxy.errors import (
    InvalidImage,
    ModelLoading,
    ModelNotFound,
    NoWorkerReady,
    PayloadTooLarge,
    QueueFull,
    TorchServeError,
    UnexpectedAnswer,
    WorkerDied,
)

WORKER_DIED = "Worker died"
WORKER_DIED_STATUSES = (500, 507)


def error_message(response: httpx.Response) -> str:
    """TorchServe's own words for a failed call: the handler's ``error``, TorchServe's
    ``message``, or the start of the body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for field in ("error", "message", "detail"):
            if isinstance(body.get(field), str) and body[field]:
                return body[field]
    text = response.text.strip()
    return text[:300] if text else response.reason_phrase



def worker_died(model: str, response: httpx.Response) -> WorkerDied | None:
    """The :class:`WorkerDied` of a ``Worker died.`` answer (a prediction is idempotent: it may be
    sent again), or None for any other answer."""
    if response.status_code not in WORKER_DIED_STATUSES:
        return None
    message = error_message(response)
    if WORKER_DIED not in message:
        return None
    return WorkerDied(
        f"TorchServe's worker for model {model!r} died while running this request "
        f"({response.status_code}: {message}): TorchServe restarts it; retry, and if it keeps "
        "happening see TorchServe's logs (model_log.log) for the crash"
    )


def prediction_error(model: str, size: int, response: httpx.Response) -> TorchServeError:
    """The error for a failed prediction other than TorchServe's 503."""
    status, message = response.status_code, error_message(response)
    if status == 400:
        return InvalidImage(message)
    if status == 404:
        return ModelNotFound(
            f"TorchServe has no model {model!r} registered ({message}): build it with "
            "`make archive` and restart with `make serve`; GET /models lists what is served"
        )
    if status == 413:
        return PayloadTooLarge(
            f"TorchServe refused the {size}-byte image as too large ({message}): send a "
            "smaller image, or raise max_request_size in config.properties"
        )
    return UnexpectedAnswer(f"TorchServe answered {status} for model {model!r}: {message}")


def unavailable(model: str, message: str, statuses: list[str] | str,
                retry_after_s: int) -> TorchServeError:
    """Tell TorchServe's 503 apart from the model's worker statuses (``GET /models/<name>``; a
    string when describing the model failed too).

    Returns:
        QueueFull (with ``Retry-After``) when a worker is READY, ModelLoading when workers exist
        but none is READY (TorchServe calls them UNLOADING while they start), else NoWorkerReady.
    """
    if isinstance(statuses, str):
        return NoWorkerReady(
            f"TorchServe cannot serve model {model!r} ({message}), and describing it failed "
            f"({statuses}); GET /health shows the workers"
        )
    if READY in statuses:
        return QueueFull(
            f"TorchServe's queue for model {model!r} is full ({statuses.count(READY)} READY "
            f"worker(s) busy): retry after {retry_after_s} s",
            retry_after_s=retry_after_s,
        )
    if statuses:
        return ModelLoading(
            f"Model {model!r} is loading in TorchServe: no worker READY yet (workers: "
            f"{', '.join(statuses)}, TorchServe's word for starting or restarting); retry in "
            "a few seconds, GET /health shows when it is ready"
        )
    return NoWorkerReady(
        f"TorchServe runs no worker for model {model!r} ({message}): restart it with "
        "`make serve`, which starts the workers config.properties sets"
    )
