"""What every TorchServe handler shares (packed into each ``.mar`` with ``common``); pure Python.

- :func:`prediction`: the answer body ``{"category", "probabilities"}``;
- :func:`wants_embedding`: does this request ask for the listing's embedding: a form field
  ``embedding=true`` or a JSON body's ``"embedding": true``. (Measured with the real TorchServe
  0.12: a URL query parameter, ``?embedding=true``, never reaches the handler.)
- :func:`torch_threads_from_env`: the torch threads of one worker;
- :class:`RequestError` (a request answered with 400 and this message) and :class:`Listing` (a
  request the listing handler accepted). TorchServe's loader wants exactly one class in a handler
  module, so the handlers' other classes live here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from common.torchserve import ENV_TORCH_THREADS

if TYPE_CHECKING:
    import torch

DEFAULT_TORCH_THREADS = 1  # see handler/handler.py for the measurements behind 1
EMBEDDING_PARAM = "embedding"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


class RequestError(ValueError):
    """A request the handler answers with 400 and this message; the rest of its batch goes on."""


@dataclass
class Listing:
    """One usable listing request, ready for the text or multimodal model."""

    ids: list[int]  # hashed text features (empty: no text)
    image: torch.Tensor | None  # (3, S, S), or None without a photo
    embedding: bool  # the caller asked for the embedding


def prediction(probabilities: Sequence[float] | torch.Tensor, class_names: list[str]) -> dict:
    """``(C,)`` probabilities -> ``{"category": top name, "probabilities": {name: p, ...}}``."""
    values = probabilities.tolist() if hasattr(probabilities, "tolist") else list(probabilities)
    top = max(range(len(values)), key=values.__getitem__)
    return {"category": class_names[top],
            "probabilities": dict(zip(class_names, values, strict=True))}


def wants_embedding(row: dict) -> bool:
    """True when the request carries ``embedding=true`` (form field or JSON body key).

    Accepts ``true/1/yes/on`` and ``false/0/no/off`` (any case), as text, bytes or a boolean.

    Raises:
        RequestError: for any other value, naming the accepted ones.
    """
    value = row.get(EMBEDDING_PARAM)
    body = row.get("body")
    if value is None and isinstance(body, dict):  # a JSON body's own "embedding": true
        value = body.get(EMBEDDING_PARAM)
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
    raw = os.environ.get(ENV_TORCH_THREADS, "").strip()
    if not raw:
        return DEFAULT_TORCH_THREADS
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{ENV_TORCH_THREADS}={raw!r} must be a positive integer")
    return int(raw)
