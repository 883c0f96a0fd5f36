"""TorchServe handler for the marketplace image classifier (the CNN and ResNet-50 archives).

``make archive`` packs this file into every ``.mar`` together with the trained weights
(``model.pt``, a ``state_dict``), ``model_args.json``, ``index_to_name.json`` and the ``aicore``
package, so the worker decodes, cleans and normalises an image with exactly the code training used
(:mod:`aicore.presets`) and builds the model with :func:`aicore.models.load_trained`.

Per request (TorchServe hands the handler a batch of up to ``batchSize`` requests):

- input: the image bytes as the raw body (``curl -T photo.jpg``), a multipart field (``data``,
  ``image``, ``file`` or the first binary field) or base64 text, bare or as ``{"data": "<b64>"}``;
- output: ``{"category": <top name>, "probabilities": {<every category>: p}}`` as
  ``application/json``; the probabilities are a softmax over all categories and sum to 1;
- a multipart form field ``embedding=true`` beside the image (:func:`common.handling.wants_embedding`;
  ``curl -F data=@photo.jpg -F embedding=true``) adds ``"embedding": [floats]``, the image's
  L2-normalised embedding (:func:`aicore.models.embed`, the layer before the head) -- the vector
  listing search indexes and queries with. A URL query parameter ``?embedding=true`` does NOT
  work: TorchServe 0.12 does not hand URL query parameters to the handler (measured);
- a request that is not a usable image gets ``400 {"error": "<what is wrong>"}`` on its own: the
  other requests of its batch are still answered and the worker stays up. (An exception out of
  ``handle`` would make TorchServe answer 503 for the whole batch.)

TorchServe's model loader requires exactly one class in this module, so the error values below are
:class:`aicore.presets.ImageDecodeError` instances rather than a class of our own.
"""

import base64
import binascii
import json
import logging

import torch
from ts.context import Context
from ts.torch_handler.base_handler import BaseHandler

from aicore.presets import EvalPreset, ImageDecodeError, load_image
from aicore.runtime import load_runtime
from common.handling import (EMBEDDING_PARAM, RequestError, prediction, torch_threads_from_env,
                             wants_embedding)

logger = logging.getLogger(__name__)

# Threads each worker's torch may use. The default 1 keeps one busy worker on one core: the 2-core
# serving machine runs 2 ResNet-50 + 2 CNN workers (config.properties), and torch's default
# (a thread per core in every worker) would put 8 threads on 2 cores. Measured: a worker with 2
# threads fell from ~24 to ~3 images/s whenever another process took a core (its threads wait for
# each other), while single-threaded workers degrade gracefully. `python -m serving.ctl start
# --torch-threads N` and the Docker image set the variable.
# (common.handling.torch_threads_from_env reads it; every handler shares it.)
# Where an image may be: TorchServe names a raw body "body" and a multipart field by its name.
IMAGE_FIELDS = ("data", "image", "file", "body")
JSON_CONTENT_TYPE = "application/json"
OK = 200
BAD_REQUEST = 400


class ImageClassifierHandler(BaseHandler):
    """Classify listing images into the categories of the archive's ``index_to_name.json``."""

    def initialize(self, context: Context) -> None:
        """Load the trained model from the unpacked archive and build the eval preset.

        Args:
            context: TorchServe's context; ``system_properties["model_dir"]`` is the unpacked
                ``.mar`` holding ``model.pt``, ``model_args.json`` and ``index_to_name.json``.

        Raises:
            FileNotFoundError, ValueError: if the archive does not hold a trained model
                (:func:`aicore.models.load_trained`); TorchServe then marks the worker failed.
        """
        self.context = context
        self.manifest = context.manifest
        threads = torch_threads_from_env()
        torch.set_num_threads(threads)
        properties = context.system_properties
        gpu_id = properties.get("gpu_id")
        use_cuda = torch.cuda.is_available() and gpu_id is not None
        self.device = torch.device(f"cuda:{gpu_id}" if use_cuda else "cpu")
        self.runtime, self.class_names, args, self.runtime_record = load_runtime(
            properties.get("model_dir"), threads, self.device)
        self.image_size = int(args["image_size"])
        self.preset = EvalPreset(self.image_size)
        self.initialized = True
        logger.info("loaded %s (%d classes, %d px) with runtime %s on %s with %d thread(s)",
                    args["arch"], len(self.class_names), self.image_size, self.runtime.name,
                    self.device, threads)

    def describe_handle(self) -> dict:
        """What ``GET /models/<name>?customized=true`` shows as ``customizedMetadata``: the
        archive's ``runtime.json`` (runtime, engine version, calibration, accuracy gate)."""
        return self.runtime_record

    def preprocess(self, data: list[dict]) -> list[torch.Tensor | ImageDecodeError | RequestError]:
        """Turn each request into a normalised image tensor, or the reason it cannot be one.

        Also notes which requests ask for their embedding (``self.embedding_rows``, read by
        :meth:`inference`).

        Args:
            data: one dict per request, as TorchServe builds it (field name -> value).

        Returns:
            One entry per request, in order: a ``(3, S, S)`` float tensor (``S`` =
            ``model_args.json``'s ``image_size``) or the error to answer with
            (:class:`ImageDecodeError`, or :class:`RequestError` for a bad ``embedding`` value).

        Raises:
            Nothing for bad input: errors are returned per request.
        """
        prepared: list[torch.Tensor | ImageDecodeError | RequestError] = []
        self.embedding_rows = set()
        for idx, row in enumerate(data):
            try:
                if wants_embedding(row):
                    self.embedding_rows.add(idx)
                image = load_image(request_image_bytes(row), self.image_size)
                prepared.append(self.preset(image))  # (3, S, S)
            except (ImageDecodeError, RequestError) as exc:
                logger.info("request %d of %d refused: %s", idx, len(data), exc)
                prepared.append(exc)
        return prepared

    def inference(self, data: list, *args, **kwargs) -> list:
        """Run the model once over the batch of usable images.

        Args:
            data: the output of :meth:`preprocess`.

        Returns:
            The same list with every tensor replaced by its ``(C,)`` class probabilities
            (softmax over the ``C`` categories), or by ``(probabilities, (D,) embedding)`` for a
            request that asked for its embedding; errors are passed through untouched.
        """
        rows = [i for i, item in enumerate(data) if isinstance(item, torch.Tensor)]
        if not rows:
            return list(data)
        batch = torch.stack([data[i] for i in rows])  # (B, 3, S, S), B = usable requests
        wanted = [j for j, row in enumerate(rows) if row in getattr(self, "embedding_rows", ())]
        outputs = self.runtime(batch)  # one pass: logits and embeddings, whatever the runtime
        probabilities = torch.softmax(outputs.logits, dim=1)  # (B, C)
        embeddings = outputs.embedding[wanted] if wanted else None  # (E, D), unit L2 norm
        results = list(data)
        for row, probs in zip(rows, probabilities, strict=True):
            results[row] = probs  # (C,)
        for j, vector in zip(wanted, embeddings if embeddings is not None else [], strict=True):
            results[rows[j]] = (probabilities[j], vector)
        return results

    def postprocess(self, data: list) -> list[str]:
        """Build one JSON body per request and set its status code and content type.

        Args:
            data: the output of :meth:`inference`.

        Returns:
            One JSON string per request, in order: ``{"category", "probabilities"}`` (+
            ``"embedding"`` when asked) for an image (status 200), ``{"error"}`` for a refused
            request (status 400).
        """
        responses = []
        for idx, item in enumerate(data):
            if isinstance(item, (ImageDecodeError, RequestError)):
                body = {"error": str(item)}
                self.context.set_response_status(BAD_REQUEST, "Bad Request", idx)
            elif isinstance(item, tuple):
                body = {**prediction(item[0], self.class_names), "embedding": item[1].tolist()}
                self.context.set_response_status(OK, "OK", idx)
            else:
                body = prediction(item, self.class_names)
                self.context.set_response_status(OK, "OK", idx)
            self.context.set_response_content_type(idx, JSON_CONTENT_TYPE)
            responses.append(json.dumps(body, ensure_ascii=False))
        return responses


def request_image_bytes(row: dict) -> bytes:
    """Find the image in one request and return its encoded bytes.

    Args:
        row: TorchServe's dict for one request: ``{"body": ...}`` for a raw body, one key per
            multipart field otherwise. A value is ``bytes`` for binary content, ``str`` for
            ``text/*`` and the decoded JSON for ``application/json`` bodies.

    Raises:
        ImageDecodeError: if no field holds an image or base64 text is malformed.
    """
    for name in IMAGE_FIELDS:
        if row.get(name) is not None:
            return image_bytes(row[name])
    for name, value in row.items():  # a multipart upload under another field name
        if name != EMBEDDING_PARAM and isinstance(value, (bytes, bytearray)):
            return bytes(value)
    raise ImageDecodeError(
        f"no image in the request: got field(s) {sorted(row)}; send the image as the request "
        f"body or as one of the multipart fields {', '.join(IMAGE_FIELDS)}")


def image_bytes(value: object) -> bytes:
    """Encoded image bytes from a field value: raw bytes, base64 text or ``{"data": <base64>}``.

    Raises:
        ImageDecodeError: for malformed base64, or JSON that holds no image.
    """
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        return decode_base64(value)
    if isinstance(value, dict):
        for name in IMAGE_FIELDS:
            if isinstance(value.get(name), str):
                return decode_base64(value[name])
        raise ImageDecodeError(
            f"JSON body has no image: got key(s) {sorted(value)}, expected one of "
            f"{', '.join(IMAGE_FIELDS)} holding base64 text")
    raise ImageDecodeError(
        f"cannot read an image from a JSON {type(value).__name__}: send an object "
        '{"data": "<base64>"}, a base64 string, or the raw image bytes')


def decode_base64(text: str) -> bytes:
    """Decode base64 text (standard alphabet; a ``data:image/...;base64,`` prefix is allowed).

    Raises:
        ImageDecodeError: if ``text`` is not valid base64.
    """
    payload = text.strip()
    if payload.startswith("data:") and "," in payload:
        payload = payload.split(",", 1)[1]
    try:
        return base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageDecodeError(
            f"not an image: {len(text)} characters of text that are not valid base64 ({exc})"
        ) from None
