"""TorchServe handler for listings: the text model (``text.mar``) and image + text (``listing.mar``).

``make archive`` packs this file with the run's ``model.pt``, ``model_args.json``,
``index_to_name.json`` and the ``aicore`` and ``common`` packages; the worker cleans and hashes text with the
featuriser rebuilt from ``model_args.json`` (:mod:`aicore.text`, exactly as in training) and, for
the multimodal model, decodes the photo with :mod:`aicore.presets`.

Per request (TorchServe hands over a batch of up to ``batchSize``):

- ``text.mar``: a JSON body ``{"title": "...", "description": "..."}`` (either may be left out),
  or the same two as form fields;
- ``listing.mar``: multipart form fields ``title``, ``description`` and an optional ``image`` file
  (or the JSON body above, for a listing without a photo);
- ``"embedding": true`` in the JSON body, or a form field ``embedding=true``, adds
  ``"embedding": [floats]``, the listing's L2-normalised embedding (:func:`aicore.models.embed`, the
  layer before the head; TorchServe 0.12 does not pass URL query parameters to handlers);
- output: ``{"category", "probabilities"}`` as JSON; a request that is empty (no text and no photo),
  has a non-string field, a field over its cap (:data:`aicore.text.MAX_TITLE_CHARS`,
  :data:`aicore.text.MAX_DESCRIPTION_CHARS`) or a photo that cannot be decoded gets
  ``400 {"error": ...}`` on its own; the rest of the batch is answered and the worker stays up.
"""

import json
import logging

import torch
import torch.nn.functional as F
from ts.context import Context
from ts.torch_handler.base_handler import BaseHandler

from aicore.models import load_trained
from aicore.presets import EvalPreset, ImageDecodeError, load_image
from common.handling import (Listing, RequestError, prediction, torch_threads_from_env,
                             wants_embedding)
from aicore.text import MAX_DESCRIPTION_CHARS, MAX_TITLE_CHARS, TextBatch
from aicore.text_models import ListingBatch, model_input

logger = logging.getLogger(__name__)

TEXT_FIELDS = {"title": MAX_TITLE_CHARS, "description": MAX_DESCRIPTION_CHARS}
IMAGE_FIELD = "image"
JSON_CONTENT_TYPE = "application/json"


class ListingClassifierHandler(BaseHandler):
    """Classify listings (text, or photo + text) into the categories of ``index_to_name.json``."""

    def initialize(self, context: Context) -> None:
        """Load the trained text or multimodal model from the unpacked archive.

        Raises:
            FileNotFoundError, ValueError: if the archive holds no trained listing model;
                TorchServe then marks the worker failed.
        """
        self.context = context
        self.manifest = context.manifest
        torch.set_num_threads(torch_threads_from_env())
        properties = context.system_properties
        gpu_id = properties.get("gpu_id")
        use_cuda = torch.cuda.is_available() and gpu_id is not None
        self.device = torch.device(f"cuda:{gpu_id}" if use_cuda else "cpu")
        self.model, self.class_names, args = load_trained(properties.get("model_dir"), self.device)
        self.arch = args["arch"]
        if self.arch not in ("text", "multimodal"):
            raise ValueError(f"the listing handler serves text and multimodal models, not "
                             f"{self.arch!r}: archive image models with handler/handler.py")
        self.featurizer = self.model.featurizer
        self.image_size = int(args["image_size"])
        self.preset = EvalPreset(self.image_size)
        self.initialized = True
        logger.info("loaded %s (%d classes) on %s", self.arch, len(self.class_names), self.device)

    def preprocess(self, data: list[dict]) -> list[Listing | RequestError]:
        """Turn each request into a :class:`Listing`, or the reason it cannot be one.

        Args:
            data: one dict per request, as TorchServe builds it (field name -> value).

        Returns:
            One entry per request, in order. Bad input is returned per request, never raised.
        """
        prepared: list[Listing | RequestError] = []
        for idx, row in enumerate(data):
            try:
                prepared.append(self.listing(row))
            except RequestError as exc:
                logger.info("request %d of %d refused: %s", idx, len(data), exc)
                prepared.append(exc)
        return prepared

    def listing(self, row: dict) -> Listing:
        """One request's :class:`Listing`.

        Raises:
            RequestError: saying what is wrong with the request.
        """
        fields = request_fields(row)
        image = None
        photo = row.get(IMAGE_FIELD)
        if photo is not None and photo != b"":
            if self.arch == "text":
                raise RequestError("the text model reads no photo: send title and description "
                                   "only, or send the listing to the listing (image + text) model")
            if not isinstance(photo, (bytes, bytearray)):
                raise RequestError(f"field 'image' must be an uploaded file, got text "
                                   f"({len(str(photo))} characters)")
            try:
                image = self.preset(load_image(bytes(photo), self.image_size))  # (3, S, S)
            except ImageDecodeError as exc:
                raise RequestError(f"field 'image': {exc}") from None
        ids = self.featurizer.encode(fields["title"], fields["description"])
        if not ids and image is None:
            wanted = "a title or a description" + (" or a photo" if self.arch != "text" else "")
            raise RequestError(f"empty listing: it has no words to read; send {wanted}")
        return Listing(ids, image, wants_embedding(row))

    def batch(self, listings: list[Listing]) -> TextBatch | ListingBatch:
        """The model's input for ``listings`` (a missing photo is a zero image, flagged)."""
        return model_input(self.arch, [item.ids for item in listings],
                           [item.image for item in listings], self.image_size).to(self.device)

    def inference(self, data: list[Listing | RequestError], *args, **kwargs) -> list:
        """One forward pass over the usable requests.

        Returns:
            Per request: ``(probabilities (C,), embedding (D,) or None)``, or its error.
        """
        rows = [i for i, item in enumerate(data) if isinstance(item, Listing)]
        results: list = list(data)
        if not rows:
            return results
        with torch.inference_mode():
            features = self.model.encode(self.batch([data[i] for i in rows]))  # (B, D)
            probabilities = torch.softmax(self.model.head(features).float(), dim=1).cpu()  # (B, C)
            embeddings = F.normalize(features.float(), dim=1).cpu()  # as aicore.models.embed
        for k, row in enumerate(rows):
            results[row] = (probabilities[k], embeddings[k] if data[row].embedding else None)
        return results

    def postprocess(self, data: list) -> list[str]:
        """One JSON body per request with its status code (200, or 400 with ``{"error"}``)."""
        responses = []
        for idx, item in enumerate(data):
            if isinstance(item, RequestError):
                body = {"error": str(item)}
                self.context.set_response_status(400, "Bad Request", idx)
            else:
                probabilities, embedding = item
                body = prediction(probabilities, self.class_names)
                if embedding is not None:
                    body["embedding"] = embedding.tolist()
                self.context.set_response_status(200, "OK", idx)
            self.context.set_response_content_type(idx, JSON_CONTENT_TYPE)
            responses.append(json.dumps(body, ensure_ascii=False))
        return responses


def request_fields(row: dict) -> dict[str, str]:
    """``{"title", "description"}`` of one request: from a JSON body or from form fields.

    Raises:
        RequestError: for a body that is not a JSON object, a non-string field or one over its cap.
    """
    source = row
    body = row.get("body")
    if body is not None:
        if isinstance(body, (bytes, bytearray)):  # JSON sent without its content type
            try:
                body = json.loads(bytes(body).decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                raise RequestError('the body is not JSON: send {"title": "...", '
                                   '"description": "..."} as application/json') from None
        if not isinstance(body, dict):
            raise RequestError(f'the JSON body must be an object {{"title": "...", '
                               f'"description": "..."}}, got {type(body).__name__}')
        source = body
    fields = {}
    for name, cap in TEXT_FIELDS.items():
        value = source.get(name)
        if isinstance(value, (bytes, bytearray)):  # a form field TorchServe passed as bytes
            try:
                value = bytes(value).decode("utf-8")
            except UnicodeDecodeError:
                raise RequestError(f"field {name!r} is not UTF-8 text") from None
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise RequestError(f"field {name!r} must be a string, got {type(value).__name__}")
        if len(value) > cap:
            raise RequestError(f"field {name!r} is {len(value)} characters long; the limit is "
                               f"{cap}")
        fields[name] = value
    return fields
