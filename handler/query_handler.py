"""TorchServe handler of the pretrained query encoder (``query.mar``): query text -> unit vector.

``make archive`` packs this file with the encoder's tokenizer (``tokenizer.json``), its weights in
the archive's runtime (``model.safetensors`` + ``config.json`` for eager, ``model.onnx`` for ONNX
Runtime), ``runtime.json`` and the ``aicore`` and ``common`` packages. Tokenising (the Rust
``tokenizers`` library), pooling and normalising are :mod:`aicore.sentence`'s, the very code the
index build ran, so a served query vector equals the in-process one.

Per request (TorchServe hands over a batch of up to ``batchSize``):

- the served-model contract's body for kind ``query`` (:func:`common.codec.encode`): JSON
  ``{"title": "<the query>", "description": "", "embedding": true}`` (the query is read as a
  listing's text, :func:`aicore.sentence.listing_text`, so a whole listing may be sent too);
- output: ``{"embedding": [floats]}``, the text's L2-normalised vector; a request without words,
  a non-string field or a field over its cap gets ``400 {"error": ...}`` on its own; the rest of
  the batch is answered and the worker stays up.
"""

import json
import logging

from ts.context import Context
from ts.torch_handler.base_handler import BaseHandler

from aicore.sentence import listing_text, load_encoder_runtime
from common.catalogue import QUERY
from common.codec import RequestError, decode
from common.handling import torch_threads_from_env

logger = logging.getLogger(__name__)

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
    """The text of one request (title, then description), decoded by the served-model contract.

    Raises:
        RequestError: naming the field and what to send.
    """
    request = decode(QUERY, row)
    text = listing_text(request.title, request.description)
    if not text:
        raise RequestError('no words to embed: send {"title": "<the query>"}')
    return text
