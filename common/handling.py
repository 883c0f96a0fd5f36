"""What every TorchServe handler shares (packed into each ``.mar`` with ``common``); pure Python.

- :func:`prediction`: the answer body ``{"category", "probabilities"}``;
- :func:`torch_threads_from_env`: the torch threads of one worker;
- :class:`Listing` (a request the listing handler accepted). TorchServe's loader wants exactly one
  class defined in a handler module, so the handlers' other classes live here.

How a request is decoded (and the 400 :class:`common.codec.RequestError`) is the served-model
contract's: :mod:`common.codec`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from common.torchserve import ENV_TORCH_THREADS

if TYPE_CHECKING:
    import torch

DEFAULT_TORCH_THREADS = 1  # see handler/image_handler.py for the measurements behind 1


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
