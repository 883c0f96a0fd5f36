"""The ASGI layer every request crosses before a route: its gate, then its body, then the route.

Order of the checks, cheapest first, so a hostile or slow client costs as little as possible:

1. the gate the request will need (:mod:`proxy.admission`): a model's gate for a prediction, a
   route's gate for search, listings and status. A repeated ``?model=`` is refused (400: the gate
   and the route must not read different values), an unknown model too (404), and a full gate
   answers 503 + ``Retry-After`` before any of the body is read;
2. the body, read in full *before* the gate is entered, within ``AICORE_BODY_TIMEOUT_S`` (408
   past it), at most the upload limit (413), with at most ``AICORE_RECEIVING_BYTES`` of bodies in
   transit at once (503 past it). The budget counts bytes received, not requests: a client that
   trickles its upload costs what it has sent, never a slot or a place a fast request needs;
3. the gate's slot, held while the route runs (the body is replayed to it from memory).
"""

import asyncio
import logging
from dataclasses import dataclass
from urllib.parse import parse_qs

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from proxy.admission import Admission, Gate
from proxy.upload import too_large_detail

logger = logging.getLogger(__name__)
BODY_METHODS = {"POST", "PUT", "PATCH"}


@dataclass(frozen=True)
class Routes:
    """Which gate each path takes.

    ``model_routes``: path -> its default model, the ``model`` query parameter may name another;
    ``fixed_routes``: path -> the one model it serves; ``route_gates``: path prefix -> the name of
    a route gate in :class:`Admission` (``search``, ``status``).
    """

    model_routes: dict[str, str]
    fixed_routes: dict[str, str]
    route_gates: dict[str, str]


class Refused(Exception):
    """The request is answered at the gate; ``status`` and ``detail`` are the answer."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers or {}

    def response(self) -> JSONResponse:
        return JSONResponse({"detail": self.detail}, status_code=self.status, headers=self.headers)


class GateMiddleware:
    """Gate, then body, then route: see the module docstring."""

    def __init__(self, app: ASGIApp, admission: Admission, routes: Routes, max_body_bytes: int,
                 max_upload_bytes: int, body_timeout_s: float, receiving_bytes: int,
                 retry_after_s: int) -> None:
        self.app = app
        self.admission = admission
        self.routes = routes
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes
        self.body_timeout_s = body_timeout_s
        self.receiving_budget = receiving_bytes
        self.receiving = 0  # bytes of bodies not yet complete
        self.retry_after_s = retry_after_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            gate = self.gate(scope)
            if gate is not None and gate.full:
                gate.rejected += 1
                raise Refused(503, *self.admission.refusal_text(gate))
            if scope["method"] in BODY_METHODS:
                receive = await self._read_body(scope, receive)
        except Refused as refused:
            await refused.response()(scope, receive, send)
            return
        if gate is None:
            await self.app(scope, receive, send)
            return
        if not await gate.enter():
            logger.info("refused a %s request: %d in flight, %d waiting", gate.model,
                        gate.in_flight, gate.waiting)
            await Refused(503, *self.admission.refusal_text(gate)).response()(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            gate.leave()

    def gate(self, scope: Scope) -> Gate | None:
        """The gate ``scope`` needs, or None; raises :class:`Refused` for a bad model choice."""
        path, method = scope["path"], scope["method"]
        if method == "POST" and path in self.routes.fixed_routes:
            return self.admission.gates.get(self.routes.fixed_routes[path])
        if method == "POST" and path in self.routes.model_routes:
            return self._model_gate(scope, self.routes.model_routes[path])
        for prefix, name in self.routes.route_gates.items():
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return self.admission.route_gates[name]
        return None

    def _model_gate(self, scope: Scope, default: str) -> Gate:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        named = query.get("model", [])
        if len(named) > 1:
            raise Refused(400, f"model is given {len(named)} times ({', '.join(map(repr, named))}): "
                               "name one model")
        model = named[0] if named and named[0] else default
        gate = self.admission.gates.get(model)
        if gate is None:
            raise Refused(404, f"Unknown model {model!r}: choose one of "
                               f"{', '.join(self.admission.gates)}")
        return gate

    async def _read_body(self, scope: Scope, receive: Receive) -> Receive:
        """The whole body, read now; returns a ``receive`` that replays it."""
        length = Headers(scope=scope).get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            raise Refused(413, too_large_detail(self.max_upload_bytes, int(length)))
        chunks = bytearray()
        try:
            async with asyncio.timeout(self.body_timeout_s):
                await self._collect(receive, chunks)
        except TimeoutError:
            logger.info("request body not received within %g s", self.body_timeout_s)
            raise Refused(408, f"the request body did not arrive within {self.body_timeout_s:g} s: "
                               "send it faster, or a smaller one",
                          {"Connection": "close"}) from None
        finally:
            self.receiving -= len(chunks)
        return replay(bytes(chunks), receive)

    async def _collect(self, receive: Receive, chunks: bytearray) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise Refused(400, "the client closed the connection before its body ended")
            chunk = message.get("body", b"")
            if len(chunks) + len(chunk) > self.max_body_bytes:
                raise Refused(413, too_large_detail(self.max_upload_bytes), {"Connection": "close"})
            if self.receiving + len(chunk) > self.receiving_budget:
                raise Refused(503, f"the proxy is receiving {self.receiving} bytes of uploads "
                                   f"already: retry after {self.retry_after_s} s",
                              {"Retry-After": str(self.retry_after_s), "Connection": "close"})
            chunks += chunk
            self.receiving += len(chunk)
            if not message.get("more_body", False):
                return


def replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` once, then waits on the real one (for the disconnect)."""
    sent = False

    async def receive_replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return receive_replayed
