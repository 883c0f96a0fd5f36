"""What can go wrong between the proxy and TorchServe, each with the HTTP status the caller gets.

The TorchServe client raises these; one exception handler in ``proxy.app`` turns them into
``{"detail": ...}`` answers, so routes stay free of try/except ladders.
"""


class TorchServeError(Exception):
    """A TorchServe problem the caller should hear about; ``detail`` says what to do."""

    status_code = 502

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


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


class NoWorkerReady(TorchServeError):
    """TorchServe is up but has no worker ready for the model (still loading, or crashed)."""

    status_code = 503


class TorchServeTimeout(TorchServeError):
    """TorchServe accepted the request but did not answer in time."""

    status_code = 504
