"""common.codec: every kind's request, encoded as the proxy sends it, reaches the handler as the
same request (through what TorchServe makes of the HTTP body), and bad rows are refused by name."""

import base64

import httpx
import pytest

from common.catalogue import IMAGE, KINDS, LISTING, QUERY, TEXT
from common.codec import (MAX_TITLE_CHARS, ModelRequest, RequestError, decode, encode,
                          wants_embedding)
from tests.support.torchserve import handler_row

PHOTO = b"\x89PNG\r\n\x1a\n-- not a boundary \r\n" + bytes(range(256))
# Every request each kind can carry: with and without the embedding, a photo where it reads one.
REQUESTS = {
    IMAGE: [ModelRequest(image=PHOTO), ModelRequest(image=PHOTO, embedding=True)],
    TEXT: [ModelRequest(title="Ikea desk lamp", description="barely used 😊"),
           ModelRequest(title="sofa", embedding=True), ModelRequest()],
    LISTING: [ModelRequest(image=PHOTO, title="PS4", description="très bon état"),
              ModelRequest(image=PHOTO, title="PS4", embedding=True),
              ModelRequest(title="pram", embedding=True)],
    QUERY: [ModelRequest(title="red kettle", embedding=True)],
}


def sent(kind: str, request: ModelRequest) -> httpx.Request:
    """The HTTP request TorchServeClient builds for ``request`` (the same httpx keywords)."""
    return httpx.Request("POST", "http://torchserve/predictions/m", **encode(kind, request))


def test_every_kind_has_requests_here():
    assert set(REQUESTS) == set(KINDS)


@pytest.mark.parametrize(("kind", "request_"), [(k, r) for k, rs in REQUESTS.items() for r in rs])
def test_request_round_trips_through_torchserve_to_the_handler(kind, request_):
    decoded = decode(kind, handler_row(sent(kind, request_)))
    assert decoded == request_


def test_an_image_request_without_embedding_is_the_raw_photo():
    request = sent(IMAGE, ModelRequest(image=PHOTO))
    assert request.headers["content-type"] == "application/octet-stream"
    assert request.read() == PHOTO


def test_the_embedding_flag_is_never_a_url_parameter():
    # TorchServe 0.12 does not hand URL query parameters to the handler (measured).
    for kind, requests in REQUESTS.items():
        for request in requests:
            assert sent(kind, request).url.query == b""


@pytest.mark.parametrize(("kind", "request_", "error"), [
    (TEXT, ModelRequest(image=PHOTO), "a text model reads no photo"),
    (IMAGE, ModelRequest(title="x"), "an image model needs a photo"),
    ("audio", ModelRequest(), "unknown kind 'audio'"),
])
def test_encode_refuses_what_the_kind_cannot_carry(kind, request_, error):
    with pytest.raises(ValueError, match=error):
        encode(kind, request_)


@pytest.mark.parametrize(("row", "expected"), [
    ({"body": base64.b64encode(PHOTO).decode()}, PHOTO),
    ({"body": {"data": "data:image/png;base64," + base64.b64encode(PHOTO).decode()}}, PHOTO),
    ({"upload": PHOTO}, PHOTO),  # a multipart file under another name
])
def test_image_rows_in_other_shapes_decode(row, expected):
    assert decode(IMAGE, row).image == expected


@pytest.mark.parametrize(("kind", "row", "error"), [
    (IMAGE, {"embedding": b"true"}, "no image in the request"),
    (IMAGE, {"body": "not base64!"}, "not valid base64"),
    (IMAGE, {"body": PHOTO, "embedding": "maybe"}, "embedding='maybe' is not a yes/no value"),
    (TEXT, {"body": {"title": 5}}, "field 'title' must be a string, got int"),
    (TEXT, {"body": {"title": "x" * (MAX_TITLE_CHARS + 1)}}, f"the limit is {MAX_TITLE_CHARS}"),
    (TEXT, {"body": b"{not json"}, "the body is not JSON"),
    (TEXT, {"body": ["x"]}, "must be an object"),
    (TEXT, {"title": b"sofa", "image": PHOTO}, "the text model reads no photo"),
    (LISTING, {"title": b"sofa", "image": "text, not a file"}, "field 'image' must be an uploaded"),
    (LISTING, {"title": b"\xff\xfe"}, "field 'title' is not UTF-8 text"),
])
def test_decode_refuses_bad_rows_naming_the_field(kind, row, error):
    with pytest.raises(RequestError, match=error):
        decode(kind, row)


def test_a_query_request_always_asks_for_its_embedding():
    assert decode(QUERY, {"body": {"title": "kettle"}}) == ModelRequest(title="kettle",
                                                                        embedding=True)


@pytest.mark.parametrize(("value", "wanted"), [
    (b"true", True), ("YES", True), (True, True), ("off", False), (b"", False), (None, False),
])
def test_wants_embedding_reads_yes_and_no(value, wanted):
    assert wants_embedding({"embedding": value}) is wanted


def test_request_size_counts_photo_bytes_and_text_characters():
    assert ModelRequest(image=b"12345", title="ab", description="c").size == 8
