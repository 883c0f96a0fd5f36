"""The upload limit: at the limit accepted, over it 413, an oversize body refused unread."""

import asyncio
import json
import pytest
from proxy.app import create_app
from tests.support.proxy import LIMIT, post_image
from proxy.deps import get_torchserve
from proxy.upload import MULTIPART_OVERHEAD



def test_predict_at_limit_is_accepted(client, fake):
    response = post_image(client, b"x" * LIMIT)
    assert response.status_code == 200
    assert len(fake.calls[0][1].image) == LIMIT


def test_predict_oversize_is_413_with_limit(client, fake):
    response = post_image(client, b"x" * (LIMIT + 1))
    assert response.status_code == 413
    assert f"{LIMIT} bytes" in response.json()["detail"]
    assert fake.calls == []


def test_predict_oversize_content_length_is_refused_unread(client, fake):
    response = post_image(client, b"x" * (LIMIT + MULTIPART_OVERHEAD + 1))
    assert response.status_code == 413
    assert f"upload limit of {LIMIT} bytes" in response.json()["detail"]
    assert fake.calls == []


def run_asgi_upload(app, total_chunks: int, content_length: int | None) -> tuple[int, list[dict]]:
    """Send a multipart body of ``total_chunks`` 16 KiB chunks straight to the ASGI app.

    Returns:
        How many chunks the app pulled, and the messages it sent back.
    """
    boundary = "b0undary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; "
            f"filename=\"big.png\"\r\nContent-Type: image/png\r\n\r\n").encode()
    chunk = b"x" * 16384
    pulled = 0
    sent: list[dict] = []

    async def receive() -> dict:
        nonlocal pulled
        pulled += 1
        body = head if pulled == 1 else chunk
        return {"type": "http.request", "body": body, "more_body": pulled < total_chunks}

    async def send(message: dict) -> None:
        sent.append(message)

    length = [(b"content-length", str(content_length).encode())] if content_length else []
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/predict/image", "raw_path": b"/predict/image",
        "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1), "server": ("t", 80),
        "headers": [(b"host", b"127.0.0.1"),
                    (b"content-type", f"multipart/form-data; boundary={boundary}".encode()),
                    *length],
    }
    asyncio.run(app(scope, receive, send))
    return pulled, sent


@pytest.mark.parametrize("declared", [False, True], ids=["chunked", "content-length"])
def test_upload_limit_stops_reading_an_oversize_body(settings, fake, declared):
    """A declared oversize body is refused unread; a streamed one is cut off past the limit."""
    app = create_app(settings)
    app.dependency_overrides[get_torchserve] = lambda: fake
    total_chunks = 200  # 3.2 MB if read to the end; the limit is LIMIT + 64 KiB
    pulled, sent = run_asgi_upload(app, total_chunks, total_chunks * 16384 if declared else None)
    assert sent[0]["status"] == 413
    assert f"{LIMIT} bytes" in json.loads(sent[1]["body"])["detail"]
    if declared:
        assert pulled == 0
    else:
        assert pulled <= (LIMIT + MULTIPART_OVERHEAD) // 16384 + 2
    assert fake.calls == []
