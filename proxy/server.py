"""Run the proxy: ``python -m proxy.server [proxy.main:app] --host 127.0.0.1 --port 8000``.

uvicorn with an HTTP protocol that bounds what a client may do before the app sees a request.
uvicorn 0.54 times out only idle kept-alive connections (``timeout_keep_alive``) and, with
httptools, caps neither the size nor the number of header lines, so a client that opens a
connection and sends its headers a byte at a time (or never finishes them) holds it forever.
:class:`GuardedHttpToolsProtocol` adds:

- a deadline for the request line and headers (``AICORE_HEADER_TIMEOUT_S``): past it the client
  gets ``408`` and the connection is closed;
- caps on the request target and the header block (``AICORE_MAX_HEADER_BYTES``) and on the number
  of header lines (``AICORE_MAX_HEADERS``): ``431`` (``414`` for the target), connection closed.

The body's deadline is the app's (``proxy.middleware``), which can answer 408 as JSON.
"""

import argparse
import asyncio
import copy
import json
import logging
import os

import httptools
import uvicorn
from uvicorn.config import LOGGING_CONFIG
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from common.torchserve import ENV_PREFIX, PROXY_APP
from proxy import logsafe
from proxy.settings import Settings

logger = logging.getLogger(__name__)


class RequestHeadRefused(Exception):
    """The request line or headers broke a limit; ``status`` is the answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header deadline and header size/count caps."""

    header_timeout_s: float = 10.0
    max_header_bytes: int = 16 * 1024
    max_headers: int = 100

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_bytes = 0
        self._head_count = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._arm_head_timer()  # the first request's head must arrive in time too

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        try:
            self._feed(data)
        except RequestHeadRefused as exc:
            self._refuse(exc.status, exc.reason)

    def _feed(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, RequestHeadRefused):
                raise exc.__context__ from None
            logger.warning("invalid HTTP request received")
            self.send_400_response("Invalid HTTP request received.")
        except httptools.HttpParserUpgrade:
            self._unsupported_upgrade_warning()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._head_count = 0
        if self._head_timer is None:
            self._arm_head_timer()

    def on_url(self, url: bytes) -> None:
        self._head_bytes += len(url)
        if self._head_bytes > self.max_header_bytes:
            raise RequestHeadRefused(414, f"request target over {self.max_header_bytes} bytes")
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_count += 1
        self._head_bytes += len(name) + len(value) + 4  # ": " and CRLF
        if self._head_count > self.max_headers:
            raise RequestHeadRefused(431, f"more than {self.max_headers} header lines")
        if self._head_bytes > self.max_header_bytes:
            raise RequestHeadRefused(431, f"request headers over {self.max_header_bytes} bytes")
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._cancel_head_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # arms uvicorn's keep-alive timer for the idle wait

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is running: its body has the app's own deadline
        self._refuse(408, f"request headers not received within {self.header_timeout_s:g} s")

    def _refuse(self, status: int, reason: str) -> None:
        """Answer ``status`` with a short JSON body and close; the client is never trusted for more."""
        self._cancel_head_timer()
        if self.transport.is_closing():
            return
        logger.info("refused a request head from %s: %d %s", self.client, status, reason)
        body = json.dumps({"detail": reason}).encode("ascii")
        self.transport.write(b"".join([
            STATUS_LINE[status], b"content-type: application/json\r\n",
            b"content-length: ", str(len(body)).encode("ascii"), b"\r\n",
            b"connection: close\r\n\r\n", body]))
        self.transport.close()


def guarded_protocol(settings: Settings) -> type[GuardedHttpToolsProtocol]:
    """The protocol class with ``settings``' limits (uvicorn instantiates it per connection)."""
    return type("ConfiguredHttpToolsProtocol", (GuardedHttpToolsProtocol,), {
        "header_timeout_s": settings.header_timeout_s,
        "max_header_bytes": settings.max_header_bytes,
        "max_headers": settings.max_headers,
    })


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("app", nargs="?", default=PROXY_APP,
                        help=f"the ASGI app to serve (default: {PROXY_APP})")
    parser.add_argument("--host", default=None,
                        help="address to bind (default: AICORE_PROXY_HOST, 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None,
                        help="port to bind (default: AICORE_PROXY_PORT, 8000)")
    return parser


def log_config() -> dict:
    """uvicorn's logging, plus the proxy's and the search engine's own INFO lines (refusals,
    index loads) on the same console; every line escapes control characters (proxy.logsafe)."""
    config = copy.deepcopy(LOGGING_CONFIG)
    for name in ("proxy", "search", "common"):
        config["loggers"][name] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


# One thread per query for the numeric libraries: the proxy's concurrency is across requests.
# With their default team (one thread per core) a lone query's FAISS scan or BLAS product waits
# at a barrier for a thread the other services have descheduled: at 10,000 384-d listings on the
# 2-core machine, FAISS search p50 16 ms with 2 OpenMP threads vs 0.6 ms with 1, a filtered scan
# 7.9 vs 1.6 ms (OpenBLAS), and the spinning threads cost ~20 ms of CPU per query. They read
# these at load, so they are set before uvicorn imports the app (an explicit value is kept).
SINGLE_THREADED = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def single_threaded_numerics() -> None:
    """Default the numeric libraries to one thread (see :data:`SINGLE_THREADED`)."""
    for name, value in SINGLE_THREADED.items():
        os.environ.setdefault(name, value)


def main(args: argparse.Namespace) -> None:
    logsafe.install()
    single_threaded_numerics()
    if args.host:
        # The app (imported by uvicorn from its module path) reads its Settings from the
        # environment: the bind address on the command line is also a Host it must accept.
        os.environ[f"{ENV_PREFIX}PROXY_HOST"] = args.host
    settings = Settings()
    config = uvicorn.Config(
        args.app, host=args.host or settings.proxy_host, port=args.port or settings.proxy_port,
        http=guarded_protocol(settings), timeout_keep_alive=settings.keep_alive_timeout_s,
        # X-Forwarded-* from anyone would let a client forge its address in the logs.
        proxy_headers=False, server_header=False, log_config=log_config())
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main(get_args_parser().parse_args())
