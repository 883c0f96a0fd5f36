"""A TorchServe context for calling a handler in-process, as a worker would."""

import uuid
from pathlib import Path

from ts.context import Context, RequestProcessor
from ts.metrics.metrics_store import MetricsStore


def make_context(model_dir: Path, batch: int = 1) -> Context:
    """The context TorchServe hands ``initialize``/``handle`` for ``batch`` requests."""
    context = Context("cnn", str(model_dir), {"model": {"modelName": "cnn"}}, batch, None,
                      "0.12.0", metrics=MetricsStore(uuid.uuid4(), "cnn"))
    context.request_processor = [RequestProcessor({}) for _ in range(batch)]
    return context
