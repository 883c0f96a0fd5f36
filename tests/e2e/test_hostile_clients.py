"""Hostile and slow clients against the real proxy process, over real loopback sockets.

The proxy runs alone (``python -m proxy.server``; TorchServe absent, so a forwarded prediction is
the documented 503 "not reachable"), with short deadlines so each test takes seconds: headers
within 1 s, a body within 2 s. Each test asserts what a client sees on the wire.
"""

import io
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from PIL import Image

from tests.support.proxy_process import ProxyProcess, proxy_process, read_answer

pytestmark = pytest.mark.e2e

HEADER_TIMEOUT_S = 1
BODY_TIMEOUT_S = 2
# resnet50's gate with 2 slots assumed (TorchServe cannot be asked): 3 in flight + 1 waiting.
GATE_PLACES = 4
STALLED = 64  # ten times the gate, and more than any count-based bound on uploads in transit

@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    env = {"AICORE_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
           "AICORE_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
           "AICORE_ADMISSION_DEFAULT_SLOTS": "2",
           "AICORE_ADMISSION_MAX_WAIT_S": "1"}
    with proxy_process(tmp_path_factory.mktemp("hostile"), env) as running:
        yield running


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def stalled_upload(proxy: ProxyProcess, path: str = "/predict/image") -> socket.socket:
    """A connection that sent its headers and the first bytes of a 50 KB upload, then stalls."""
    sock = proxy.connect()
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 "Content-Type: multipart/form-data; boundary=b\r\n"
                 "Content-Length: 50000\r\n\r\n--b\r\n".encode())
    return sock


def test_stalled_headers_get_408_and_the_connection_closes(proxy):
    sock = proxy.connect()
    sock.sendall(b"POST /predict/image HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # ... and nothing more

    answer = read_answer(sock, HEADER_TIMEOUT_S + 8)

    assert status_of(answer) == 408, answer
    assert b"connection: close" in answer.lower()


def test_idle_connection_without_a_request_is_closed(proxy):
    sock = proxy.connect()

    answer = read_answer(sock, HEADER_TIMEOUT_S + 8)  # returns when the proxy closes it

    assert answer == b"" or status_of(answer) == 408


def test_trickling_upload_gets_408(proxy):
    sock = stalled_upload(proxy)

    answer = read_answer(sock, BODY_TIMEOUT_S + 8)

    assert status_of(answer) == 408, answer
    assert "did not arrive within" in json.loads(answer.split(b"\r\n\r\n", 1)[1])["detail"]


def test_stalled_uploads_hold_no_slot_a_fast_request_needs(proxy):
    stalled = [stalled_upload(proxy) for _ in range(STALLED)]
    try:
        time.sleep(0.5)  # every stalled request has reached the proxy
        response = requests.post(f"{proxy.url}/predict/image", files={"image": ("a.png", png())},
                                 timeout=10)
    finally:
        for sock in stalled:
            sock.close()

    # TorchServe is absent: a request that got its slot is told so; one without a slot would
    # have been "at capacity".
    assert response.status_code == 503
    assert "not reachable" in response.json()["detail"], response.text


@pytest.mark.parametrize(("headers", "status"), [
    ("".join(f"X-Filler-{i}: {i}\r\n" for i in range(150)), 431),  # too many lines
    (f"X-Big: {'a' * 20000}\r\n", 431),  # too many bytes
])
def test_oversized_request_head_is_refused(proxy, headers, status):
    sock = proxy.connect()
    sock.sendall(f"GET /capabilities HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n".encode())

    answer = read_answer(sock, 5)

    assert status_of(answer) == status, answer[:200]


def test_refused_json_keeps_the_connection_alive(proxy):
    sock = proxy.connect()
    body = b'{"title": NaN, "description": "\\ud800"}'
    request = (b"POST /predict/text HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    sock.sendall(request)
    first = _one_answer(sock)
    sock.sendall(b"GET /capabilities HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # same connection
    second = _one_answer(sock)

    assert status_of(first) == 422, first
    assert status_of(second) == 200, second


def _one_answer(sock: socket.socket) -> bytes:
    """One HTTP answer with a Content-Length body, read off a kept-alive connection."""
    sock.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


@pytest.mark.parametrize("path", ["/search?q=lamp", "/models", "/health", "/listings/x"])
def test_error_bodies_name_no_path_pid_or_internal_url(proxy, path):
    response = requests.get(f"{proxy.url}{path}", timeout=10)
    body = response.text

    assert response.status_code == 503, body
    assert "127.0.0.1" not in body and "http://" not in body
    assert str(Path(proxy.log).parent) not in body and "/tmp" not in body
