"""How a request to a served model travels: the proxy encodes it, the handler decodes it.

One :class:`ModelRequest` (a photo, a title and description, the embedding flag) per call;
:func:`encode` turns it into the HTTP body for a model of a kind (:mod:`common.catalogue`), as
httpx keywords, and :func:`decode` turns what TorchServe hands the handler for that body (one dict
per request: ``{"body": ...}`` for a raw or JSON body, one key per multipart field) back into the
same :class:`ModelRequest`. ``tests/common/test_codec.py`` round-trips every kind.

The bodies, by kind:

- ``image``: the raw photo (``application/octet-stream``: TorchServe decodes text and JSON bodies
  as strings), or, when the embedding is asked for, multipart ``data`` (the photo) +
  ``embedding=true``. The handler also takes base64 text, bare or as ``{"data": "<b64>"}``.
- ``text``, ``query``: JSON ``{"title", "description"}`` (+ ``"embedding": true``);
- ``listing``: with a photo, multipart ``title``, ``description``, ``image`` (+ ``embedding``);
  without one, the JSON body of ``text``.

The embedding flag is a form field or a JSON key, never a URL parameter: TorchServe 0.12 does not
hand URL query parameters to the handler (measured). Pure Python: it travels inside every archive.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from common.catalogue import IMAGE, KINDS, LISTING, QUERY

EMBEDDING_PARAM = "embedding"
# What a served request may hold (longer is a 400, never silently cut): the export's longest
# titles are ~100 characters and its descriptions a few thousand.
MAX_TITLE_CHARS = 1_000
MAX_DESCRIPTION_CHARS = 20_000
TEXT_FIELDS = {"title": MAX_TITLE_CHARS, "description": MAX_DESCRIPTION_CHARS}  # field -> cap
IMAGE_FIELD = "image"  # a listing's photo
# Where an image model's photo may be: TorchServe names a raw body "body", a form field by its name.
IMAGE_FIELDS = ("data", "image", "file", "body")
OCTET_STREAM = "application/octet-stream"
TEXT_PLAIN = "text/plain; charset=utf-8"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


class RequestError(ValueError):
    """A request the handler answers with 400 and this message; the rest of its batch goes on."""


@dataclass(frozen=True)
class ModelRequest:
    """One call to a served model: what it reads (by its kind) and whether to add the embedding."""

    image: bytes | None = None
    title: str = ""
    description: str = ""
    embedding: bool = False

    @property
    def size(self) -> int:
        """What is sent, for the too-large message: the photo's bytes plus the text's characters."""
        return len(self.image or b"") + len(self.title) + len(self.description)


# --- the proxy's side -----------------------------------------------------------------------------

def encode(kind: str, request: ModelRequest) -> dict[str, object]:
    """The HTTP body of ``request`` to a model of ``kind``, as ``httpx`` request keywords
    (``content=`` + ``headers=``, ``json=``, or ``files=`` + ``data=``).

    Raises:
        ValueError: for an unknown kind, or a request the kind cannot carry (a photo to a text
            model, no photo to an image model): the caller's validation should have said so.
    """
    spec = KINDS.get(kind)
    if spec is None:
        raise ValueError(f"unknown kind {kind!r}; known: {', '.join(KINDS)}")
    if request.image is not None and not spec.photo:
        raise ValueError(f"a {kind} model reads no photo")
    if kind == IMAGE:
        if request.image is None:
            raise ValueError("an image model needs a photo")
        if not request.embedding:
            return {"content": request.image, "headers": {"Content-Type": OCTET_STREAM}}
        return {"files": {"data": ("image", request.image, OCTET_STREAM)},
                "data": {EMBEDDING_PARAM: "true"}}
    embedding = request.embedding or kind == QUERY
    if request.image is None:
        body: dict[str, object] = {"title": request.title, "description": request.description}
        return {"json": {**body, EMBEDDING_PARAM: True} if embedding else body}
    # Form parts without a file name: TorchServe hands them to the handler as text fields.
    files: dict[str, tuple[str | None, bytes | str, str]] = {
        "title": (None, request.title, TEXT_PLAIN),
        "description": (None, request.description, TEXT_PLAIN),
        IMAGE_FIELD: ("image", request.image, OCTET_STREAM),
    }
    if embedding:
        files[EMBEDDING_PARAM] = (None, "true", "text/plain")
    return {"files": files}


# --- the handler's side ---------------------------------------------------------------------------

def decode(kind: str, row: dict) -> ModelRequest:
    """The :class:`ModelRequest` in TorchServe's dict for one request to a model of ``kind``.

    Args:
        row: field name -> value; a value is ``bytes`` for binary content, ``str`` for ``text/*``
            and the decoded JSON for an ``application/json`` body.

    Raises:
        RequestError: saying what is wrong with the request.
    """
    spec = KINDS[kind]
    embedding = wants_embedding(row) or kind == QUERY
    if kind == IMAGE:
        return ModelRequest(image=request_image_bytes(row), embedding=embedding)
    fields = request_fields(row)
    image = None
    photo = row.get(IMAGE_FIELD)
    if photo is not None and photo != b"":
        if not spec.photo:
            raise RequestError(f"the {kind} model reads no photo: send title and description "
                               f"only, or send the listing to the {LISTING} (image + text) model")
        if not isinstance(photo, (bytes, bytearray)):
            raise RequestError(f"field 'image' must be an uploaded file, got text "
                               f"({len(str(photo))} characters)")
        image = bytes(photo)
    return ModelRequest(image, fields["title"], fields["description"], embedding)


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
    return {name: _text_field(source.get(name), name, cap) for name, cap in TEXT_FIELDS.items()}


def _text_field(value: object, name: str, cap: int) -> str:
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
        raise RequestError(f"field {name!r} is {len(value)} characters long; the limit is {cap}")
    return value


def request_image_bytes(row: dict) -> bytes:
    """Find the photo in one request to an image model and return its encoded bytes.

    Raises:
        RequestError: if no field holds an image or base64 text is malformed.
    """
    for name in IMAGE_FIELDS:
        if row.get(name) is not None:
            return image_bytes(row[name])
    for name, value in row.items():  # a multipart upload under another field name
        if name != EMBEDDING_PARAM and isinstance(value, (bytes, bytearray)):
            return bytes(value)
    raise RequestError(
        f"no image in the request: got field(s) {sorted(row)}; send the image as the request "
        f"body or as one of the multipart fields {', '.join(IMAGE_FIELDS)}")


def image_bytes(value: object) -> bytes:
    """Encoded image bytes from a field value: raw bytes, base64 text or ``{"data": <base64>}``.

    Raises:
        RequestError: for malformed base64, or JSON that holds no image.
    """
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        return decode_base64(value)
    if isinstance(value, dict):
        for name in IMAGE_FIELDS:
            if isinstance(value.get(name), str):
                return decode_base64(value[name])
        raise RequestError(
            f"JSON body has no image: got key(s) {sorted(value)}, expected one of "
            f"{', '.join(IMAGE_FIELDS)} holding base64 text")
    raise RequestError(
        f"cannot read an image from a JSON {type(value).__name__}: send an object "
        '{"data": "<base64>"}, a base64 string, or the raw image bytes')


def decode_base64(text: str) -> bytes:
    """Decode base64 text (standard alphabet; a ``data:image/...;base64,`` prefix is allowed).

    Raises:
        RequestError: if ``text`` is not valid base64.
    """
    payload = text.strip()
    if payload.startswith("data:") and "," in payload:
        payload = payload.split(",", 1)[1]
    try:
        return base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RequestError(
            f"not an image: {len(text)} characters of text that are not valid base64 ({exc})"
        ) from None
