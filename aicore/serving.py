"""What every TorchServe handler of the project shares (packed into each ``.mar`` with aicore).

- :func:`prediction`: the answer body ``{"category", "probabilities"}``;
- :func:`wants_embedding`: does this request ask for the listing's embedding
  (``POST /predictions/<model>?embedding=true``; TorchServe hands URL query parameters to the
  handler as fields of the request's row);
- :func:`torch_threads_from_env`: the torch threads of one worker;
- :class:`RequestError`: a request the handler refuses with 400 and this message. (TorchServe's
  loader wants exactly one class in a handler module, so error classes live here.)
"""

import os

import torch

# Threads each worker's torch may use (see handler/handler.py for the measurements behind 1).
TORCH_THREADS_ENV = "AICORE_TORCH_THREADS"
DEFAULT_TORCH_THREADS = 1
EMBEDDING_PARAM = "embedding"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


class RequestError(ValueError):
    """A request the handler answers with 400 and this message; the rest of its batch goes on."""


def prediction(probabilities: torch.Tensor, class_names: list[str]) -> dict:
    """``(C,)`` probabilities -> ``{"category": top name, "probabilities": {name: p, ...}}``."""
    values = probabilities.tolist()
    top = max(range(len(values)), key=values.__getitem__)
    return {"category": class_names[top],
            "probabilities": dict(zip(class_names, values, strict=True))}


def wants_embedding(row: dict) -> bool:
    """True when the request carries ``embedding=true`` (query parameter or form field).

    Accepts ``true/1/yes/on`` and ``false/0/no/off`` (any case), as text, bytes or a boolean.

    Raises:
        RequestError: for any other value, naming the accepted ones.
    """
    value = row.get(EMBEDDING_PARAM)
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", errors="replace")
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise RequestError(f"{EMBEDDING_PARAM}={value!r} is not a yes/no value: use "
                       f"?{EMBEDDING_PARAM}=true or ?{EMBEDDING_PARAM}=false")


def torch_threads_from_env() -> int:
    """Torch threads for this worker from ``AICORE_TORCH_THREADS`` (default 1).

    Raises:
        ValueError: if the variable is set to anything but a positive integer.
    """
    raw = os.environ.get(TORCH_THREADS_ENV, "").strip()
    if not raw:
        return DEFAULT_TORCH_THREADS
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{TORCH_THREADS_ENV}={raw!r} must be a positive integer")
    return int(raw)
