"""TorchServe handler of the pretrained query encoder (``query.mar``, kind ``query``): query text
-> unit vector.

``make archive`` packs this file with the encoder's tokenizer (``tokenizer.json``), its weights in
the archive's runtime (``model.safetensors`` + ``config.json`` for eager, ``model.onnx`` for ONNX
Runtime), ``runtime.json`` and the ``aicore``, ``common`` and ``handler`` (base only) packages.
Tokenising (the Rust ``tokenizers`` library), pooling and normalising are :mod:`aicore.sentence`'s,
the very code the index build ran, so a served query vector equals the in-process one. The stages
are :class:`handler.base.ServedModelHandler`'s; this kind loads an encoder instead of a trained
run and its pass gives the embedding alone.

Per request (TorchServe hands over a batch of up to ``batchSize``):

- the served-model contract's body for kind ``query`` (:func:`common.codec.encode`): JSON
  ``{"title": "<the query>", "description": "", "embedding": true}`` (the query is read as a
  listing's text, :func:`aicore.sentence.listing_text`, so a whole listing may be sent too);
- output: ``{"embedding": [floats]}``, the text's L2-normalised vector; a request without words,
  a non-string field or a field over its cap gets ``400 {"error": ...}`` on its own; the rest of
  the batch is answered and the worker stays up.

TorchServe's model loader requires exactly one class defined in this module.
"""

import logging

import numpy as np

from aicore.sentence import listing_text, load_encoder_runtime
from common.catalogue import QUERY
from common.codec import ModelRequest, RequestError
from handler.base import ServedModelHandler

ENCODER_ARCH = "pretrained-text"  # what search indexes built with the encoder name as "arch"
# TorchServe's worker logs three lines per request to its stdout ("Backend received inference
# at", and the HandlerTime / PredictionTime metrics), which the frontend reads, parses and writes
# to model_log: for a ~2 ms query that bookkeeping was ~17 % of the worker's time (py-spy) plus
# the frontend's parsing. This worker drops them (its per-request metrics are then not in
# TorchServe's /metrics; the frontend's own latency counters still are); other lines stay.
QUIET_LOGGERS = ("ts.service", "ts.metrics")  # their INFO lines are the metrics
PER_REQUEST_LINE = "Backend received inference at: %d"  # ts.protocol, on the root logger


def _not_per_request(record: logging.LogRecord) -> bool:
    return record.msg != PER_REQUEST_LINE


class QueryEncoderHandler(ServedModelHandler):
    """Embed query texts with the archive's pretrained sentence encoder."""

    kinds = (QUERY,)

    def load(self, model_dir: str, threads: int) -> None:
        """Load the encoder in the runtime ``runtime.json`` names (no labels: it classifies nothing).

        Raises:
            FileNotFoundError, ValueError: if the archive holds no encoder.
        """
        self.runtime, self.runtime_record = load_encoder_runtime(model_dir, threads)
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
        if _not_per_request not in logging.getLogger().filters:
            logging.getLogger().addFilter(_not_per_request)
        self.arch, self.kind, self.class_names = ENCODER_ARCH, QUERY, []

    def prepare(self, request: ModelRequest) -> str:
        """The query's text (title, then description).

        Raises:
            RequestError: when it has no words.
        """
        text = listing_text(request.title, request.description)
        if not text:
            raise RequestError('no words to embed: send {"title": "<the query>"}')
        return text

    def collate(self, items: list[str]) -> list[str]:
        return items

    def run(self, batch: list[str]) -> tuple[None, np.ndarray]:
        return None, self.runtime.encode(batch)  # (B, H), unit rows
