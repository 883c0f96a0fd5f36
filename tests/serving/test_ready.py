"""Readiness of a stack: TorchServe's /ping and READY workers, the proxy's /health, the wait loop.

TorchServe is tests/support/torchserve.py's TorchServeHTTP (with its key handling), reached
through a requests adapter, so the checks send the same requests with the same keys as they do
to the real server.
"""

import httpx
import pytest
import requests
from requests.adapters import BaseAdapter

from common.cli import UserError
from serving import ready
from serving.stack import Stack
from tests.support.torchserve import TorchServeHTTP


class _Transport(BaseAdapter):
    """requests -> httpx handlers, by port: TorchServe's ports to ``torchserve``, the proxy's to ``proxy``."""

    def __init__(self, stack: Stack, torchserve, proxy=lambda request: httpx.Response(200)) -> None:
        super().__init__()
        self.stack, self.torchserve, self.proxy = stack, torchserve, proxy

    def send(self, request, **kwargs) -> requests.Response:
        outgoing = httpx.Request(request.method, request.url, headers=dict(request.headers),
                                 content=request.body or b"")
        handler = self.proxy if outgoing.url.port == self.stack.proxy_port else self.torchserve
        answer = handler(outgoing)
        response = requests.Response()
        response.status_code, response._content = answer.status_code, answer.read()
        response.headers.update(answer.headers)
        response.url, response.request = request.url, request
        return response

    def close(self) -> None:
        pass


@pytest.fixture
def stack(tmp_path) -> Stack:
    return Stack(runtime_dir=tmp_path, models=("cnn", "text"))  # default ports: the fake's keys fit


def _session(transport: _Transport) -> requests.Session:
    session = ready.http_session()
    session.mount("http://", transport)
    return session


def test_http_session_ignores_proxy_settings_of_the_environment():
    assert ready.http_session().trust_env is False


def test_torchserve_ready_when_every_model_has_its_workers(stack):
    fake = TorchServeHTTP(statuses=("READY", "READY"), key_file=stack.key_file)

    assert ready.torchserve_ready(stack, _session(_Transport(stack, fake))) is None
    assert fake.paths() == ["/ping", "/models/cnn", "/models/text"]


def test_torchserve_ready_names_the_model_short_of_workers(stack):
    fake = TorchServeHTTP(statuses=("READY", "UNLOADING", "READY"), key_file=stack.key_file)

    assert ready.torchserve_ready(stack, _session(_Transport(stack, fake))) == \
        "model cnn: 2 of 3 workers READY"


def test_model_status_reads_version_ready_and_min_workers(stack):
    fake = TorchServeHTTP(statuses=("READY", "FAILED"), versions=("2026-12-01-abcd1234-eager",),
                          key_file=stack.key_file)

    assert ready.model_status(stack, _session(_Transport(stack, fake)), "text") == \
        ("2026-12-01-abcd1234-eager", 1, 2)


def test_torchserve_ready_without_key_file_says_so(stack):
    assert ready.torchserve_ready(stack, requests.Session()) == f"no {stack.key_file} yet"


def test_torchserve_ready_reports_a_wrong_key_as_not_answering(stack):
    fake = TorchServeHTTP(key_file=stack.key_file)
    fake.expire("management")  # /ping passes, the management API refuses the key (400)

    assert ready.torchserve_ready(stack, _session(_Transport(stack, fake))) == \
        "TorchServe not answering yet (HTTPError)"


def test_torchserve_ready_names_a_ping_status(stack):
    fake = TorchServeHTTP(key_file=stack.key_file)
    fake.expire("inference")

    assert ready.torchserve_ready(stack, _session(_Transport(stack, fake))) == "/ping answered 400"


def test_proxy_ready_follows_health(stack):
    fake = TorchServeHTTP()
    down = _Transport(stack, fake, proxy=lambda request: httpx.Response(503))

    def refused(request):
        raise requests.ConnectionError("refused")

    assert ready.proxy_ready(stack, _session(_Transport(stack, fake))) is None
    assert ready.proxy_ready(stack, _session(down)) == "proxy /health answered 503"
    assert ready.proxy_ready(stack, _session(_Transport(stack, fake, proxy=refused))) == \
        "proxy not answering yet (ConnectionError)"


def test_wait_until_returns_once_the_check_passes(monkeypatch, tmp_path):
    monkeypatch.setattr(ready, "POLL_S", 0.0)
    answers = iter(["not yet", "not yet", None])
    calls = []

    ready.wait_until(lambda: calls.append(1) or next(answers), lambda: True, 5.0, "X", tmp_path / "x.log")

    assert len(calls) == 3


def test_wait_until_names_a_dead_process_and_its_log(tmp_path):
    with pytest.raises(UserError, match=f"TorchServe exited during start-up; see {tmp_path / 'ts.log'}"):
        ready.wait_until(lambda: "never", lambda: False, 5.0, "TorchServe", tmp_path / "ts.log")


def test_wait_until_timeout_says_what_was_not_ready(monkeypatch, tmp_path):
    monkeypatch.setattr(ready, "POLL_S", 0.0)

    with pytest.raises(UserError, match=r"the proxy not ready after 0 s \(proxy /health answered 503\); "):
        ready.wait_until(lambda: "proxy /health answered 503", lambda: True, 0.05, "the proxy",
                         tmp_path / "proxy.log")
