"""TorchServe handler of the pretrained query encoder (``query.mar``): query text -> unit vector.

``make archive`` packs this file with the encoder's tokenizer (``tokenizer.json``), its weights in
the archive's runtime (``model.safetensors`` + ``config.json`` for eager, ``model.onnx`` for ONNX
Runtime), ``runtime.json`` and the ``aicore`` and ``common`` packages. Tokenising (the Rust
``tokenizers`` library), pooling and normalising are :mod:`aicore.sentence`'s, the very code the
index build ran, so a served query vector equals the in-process one.

Per request (TorchServe hands over a batch of up to ``batchSize``):

- a JSON body ``{"text": "..."}`` (or the form field ``text``);
- output: ``{"embedding": [floats]}``, the text's L2-normalised vector; a request without text,
  with a non-string ``text`` or one over :data:`MAX_QUERY_CHARS` gets ``400 {"error": ...}`` on
  its own; the rest of the batch is answered and the worker stays up.
"""

import json
import logging

from ts.context import Context
from ts.torch_handler.base_handler import BaseHandler

from aicore.sentence import load_encoder_runtime
from common.handling import RequestError, torch_threads_from_env

logger = logging.getLogger(__name__)

TEXT_FIELD = "text"
MAX_QUERY_CHARS = 1000  # a search box's text; the encoder reads 128 word pieces of it anyway
JSON_CONTENT_TYPE = "application/json"


class QueryEncoderHandler(BaseHandler):
    """Embed query texts with the archive's pretrained sentence encoder."""

    def initialize(self, context: Context) -> None:
        """Load the encoder in the runtime ``runtime.json`` names.

        Raises:
            FileNotFoundError, ValueError: if the archive holds no encoder; TorchServe then marks
                the worker failed.
        """
        import torch

        self.context = context
        self.manifest = context.manifest
        threads = torch_threads_from_env()
        torch.set_num_threads(threads)
        model_dir = context.system_properties.get("model_dir")
        self.encoder, record = load_encoder_runtime(model_dir, threads)
        self.initialized = True
        logger.info("loaded the query encoder (%s, %d-d, %d word pieces)", record["runtime"],
                    self.encoder.dim, self.encoder.token_budget)

    def preprocess(self, data: list[dict]) -> list[str | RequestError]:
        """Each request's query text, or the reason it has none.

        Args:
            data: one dict per request, as TorchServe builds it (field name -> value).

        Returns:
            One entry per request, in order. Bad input is returned per request, never raised.
        """
        prepared: list[str | RequestError] = []
        for idx, row in enumerate(data):
            try:
                prepared.append(query_text(row))
            except RequestError as exc:
                logger.info("request %d of %d refused: %s", idx, len(data), exc)
                prepared.append(exc)
        return prepared

    def inference(self, data: list[str | RequestError], *args, **kwargs) -> list:
        """One encoder pass over the usable requests.

        Returns:
            Per request: its ``(H,)`` unit vector, or its error.
        """
        rows = [i for i, item in enumerate(data) if isinstance(item, str)]
        results: list = list(data)
        if rows:
            vectors = self.encoder.encode([data[i] for i in rows])  # (B, H)
            for k, row in enumerate(rows):
                results[row] = vectors[k]
        return results

    def postprocess(self, data: list) -> list[str]:
        """One JSON body per request with its status code (200, or 400 with ``{"error"}``)."""
        responses = []
        for idx, item in enumerate(data):
            if isinstance(item, RequestError):
                body = {"error": str(item)}
                self.context.set_response_status(400, "Bad Request", idx)
            else:
                body = {"embedding": item.tolist()}
                self.context.set_response_status(200, "OK", idx)
            self.context.set_response_content_type(idx, JSON_CONTENT_TYPE)
            responses.append(json.dumps(body))
        return responses


def query_text(row: dict) -> str:
    """The ``text`` of one request, from a JSON body or a form field.

    Raises:
        RequestError: naming the field and what to send.
    """
    body = row.get("body")
    if isinstance(body, (bytes, bytearray)):  # JSON sent without its content type
        try:
            body = json.loads(bytes(body).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise RequestError('the body is not JSON: send {"text": "..."} as application/json') from None
    source = body if isinstance(body, dict) else row
    value = source.get(TEXT_FIELD)
    if isinstance(value, (bytes, bytearray)):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise RequestError(f"field {TEXT_FIELD!r} is not UTF-8 text") from None
    if not isinstance(value, str):
        got = "nothing" if value is None else type(value).__name__
        raise RequestError(f'field {TEXT_FIELD!r} must be a string, got {got}: send {{"text": "..."}}')
    if not value.strip():
        raise RequestError(f"field {TEXT_FIELD!r} is empty: send the query's words")
    if len(value) > MAX_QUERY_CHARS:
        raise RequestError(f"field {TEXT_FIELD!r} is {len(value)} characters long; the limit is "
                           f"{MAX_QUERY_CHARS}")
    return value.strip()
