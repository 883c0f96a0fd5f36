"""What can go wrong between the proxy and TorchServe, each with the HTTP status the caller gets.

The TorchServe client raises these; one exception handler in ``proxy.app`` turns them into
``{"detail": ...}`` answers, so routes stay free of try/except ladders.
"""


class TorchServeError(Exception):
    """A TorchServe problem the caller should hear about; ``detail`` says what to do.

    ``retry_after_s`` (busy answers only) becomes the ``Retry-After`` header.
    """

    status_code = 502

    def __init__(self, detail: str, retry_after_s: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after_s = retry_after_s

    @property
    def headers(self) -> dict[str, str]:
        return {} if self.retry_after_s is None else {"Retry-After": str(self.retry_after_s)}


class InvalidImage(TorchServeError):
    """TorchServe's handler refused the bytes (empty, not an image, too many pixels ...)."""

    status_code = 400


class ModelNotFound(TorchServeError):
    """TorchServe has no model by that name registered."""

    status_code = 404


class PayloadTooLarge(TorchServeError):
    """TorchServe refused the body as larger than its ``max_request_size``."""

    status_code = 413


class UnexpectedAnswer(TorchServeError):
    """TorchServe answered something the proxy does not understand (bad gateway)."""

    status_code = 502


class KeyRejected(TorchServeError):
    """TorchServe rejects the API key even after the key file was re-read."""

    status_code = 502


class TorchServeUnreachable(TorchServeError):
    """Nothing answers at TorchServe's address (not started, or restarting)."""

    status_code = 503


class WorkerDied(TorchServeError):
    """The worker running the request died (or the connection dropped mid-request), and the one
    retry the retry budget allows did not save it."""

    status_code = 502


class NoWorkerReady(TorchServeError):
    """TorchServe is up but runs no worker for the model (scaled to zero)."""

    status_code = 503


class ModelLoading(TorchServeError):
    """The model's workers exist but none is READY yet (starting, or restarting after a crash)."""

    status_code = 503


class QueueFull(TorchServeError):
    """TorchServe's job queue for the model is full although its workers are READY: busy, retry
    after ``Retry-After`` seconds."""

    status_code = 503


class Overloaded(TorchServeError):
    """The proxy's own admission control for the model is full: refused before the upload was
    read and before TorchServe saw it; retry after ``Retry-After`` seconds."""

    status_code = 503


class TorchServeTimeout(TorchServeError):
    """TorchServe accepted the request but did not answer in time."""

    status_code = 504
