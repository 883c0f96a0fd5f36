"""Answers never tell a caller where things live: no filesystem path, process id or internal URL.

Error details are written for the operator as much as for the caller ("TorchServe at
http://127.0.0.1:8080 did not answer", "the search index /srv/idx is being built (pid 4242)"), and
the log keeps them whole. What leaves the proxy goes through :class:`Redactor`: every JSON answer
with an error status, and ``/health`` (whose body names TorchServe's address), has its strings
rewritten -- a configured address or path by the setting that holds it (``<AICORE_KEY_FILE>``),
then any other URL, absolute path or pid by a placeholder.
"""

import json
import logging
import re
from pathlib import Path
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from proxy.settings import REPO_ROOT, Settings

logger = logging.getLogger(__name__)

URL = re.compile(r"\b(?:https?|grpc|unix)://[^\s'\"<>)\]]+")
PID = re.compile(r"\bpid[ =:]*\d+", re.IGNORECASE)
# A path under a filesystem root (API routes such as /predict/text are kept), or under ~.
PATH = re.compile(r"(?<![\w.:/])(?:~|/(?:home|root|tmp|var|srv|opt|mnt|data|work|usr|etc|proc|"
                  r"run|media|Users|private|Volumes))(?:/[\w.@+-]+)+/?")
ALWAYS_REDACTED = ("/health",)  # its 200 body names TorchServe's address too


class Redactor:
    """Rewrites the places and process ids a text names (see the module docstring)."""

    def __init__(self, settings: Settings) -> None:
        named = {
            settings.inference_url: "<AICORE_INFERENCE_URL>",
            settings.management_url: "<AICORE_MANAGEMENT_URL>",
            str(settings.search_index): "<AICORE_SEARCH_INDEX>",
            str(settings.key_file): "<AICORE_KEY_FILE>",
            str(REPO_ROOT): "<repo>",
            str(Path.home()): "~",
        }
        # Longest first, so a path inside the repository is named, not its root.
        self.named = sorted(named.items(), key=lambda item: -len(item[0]))

    def text(self, text: str) -> str:
        for secret, name in self.named:
            text = text.replace(secret, name)
        text = URL.sub("<internal address>", text)
        text = PID.sub("a process", text)
        return PATH.sub("<path>", text)

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value(item) for item in value]
        if isinstance(value, dict):
            return {key: self.value(item) for key, item in value.items()}
        return value


class RedactMiddleware:
    """Apply :class:`Redactor` to JSON error answers (and ``/health``) on their way out."""

    def __init__(self, app: ASGIApp, redactor: Redactor) -> None:
        self.app = app
        self.redactor = redactor

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def send_redacted(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                if self._applies(scope, message):
                    start = message
                    return
            elif message["type"] == "http.response.body" and start is not None:
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                body = self._rewrite(b"".join(chunks))
                headers = MutableHeaders(raw=list(start["headers"]))
                headers["content-length"] = str(len(body))
                await send({**start, "headers": headers.raw})
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        await self.app(scope, receive, send_redacted)

    @staticmethod
    def _applies(scope: Scope, start: Message) -> bool:
        json_answer = any(name == b"content-type" and value.startswith(b"application/json")
                          for name, value in start.get("headers", []))
        return json_answer and (start["status"] >= 400 or scope["path"] in ALWAYS_REDACTED)

    def _rewrite(self, body: bytes) -> bytes:
        try:
            payload = json.loads(body)
        except ValueError:
            return body
        return json.dumps(self.redactor.value(payload), ensure_ascii=False).encode("utf-8")
