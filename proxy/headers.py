"""Security headers on every answer, and the Host check.

- ``/`` and every other HTML page: a Content-Security-Policy with no ``'unsafe-inline'`` -- the
  page's script and style are files under ``/web/`` (its JavaScript sets sizes through the CSSOM,
  which a policy does not block). Only ``/docs`` and ``/redoc`` get what their bundles need:
  FastAPI starts Swagger UI from an inline script, Swagger UI and ReDoc set inline styles, ReDoc's
  search runs in a ``blob:`` worker. Both policies: ``base-uri 'none'`` (no ``<base>`` may
  redirect relative URLs), ``form-action 'self'``, ``frame-ancestors 'none'``.
- every answer: ``X-Content-Type-Options: nosniff`` (a JSON error is never sniffed as HTML) and
  ``Referrer-Policy: no-referrer``.
- :func:`allowed_hosts`: the ``Host`` names Starlette's ``TrustedHostMiddleware`` accepts (400
  otherwise), so a page on another origin cannot reach the proxy through DNS rebinding. Default:
  the loopback names and the address the proxy binds; ``AICORE_ALLOWED_HOSTS`` adds names (a
  public host name behind a load balancer).
"""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from proxy.settings import Settings

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
DOCS_PATHS = ("/docs", "/redoc")

# blob: images are the Sell page's preview of the chosen photo (URL.createObjectURL, same origin).
_COMMON = ["default-src 'self'", "img-src 'self' data: blob:", "connect-src 'self'",
           "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'", "object-src 'none'"]
PAGE_POLICY = "; ".join(["script-src 'self'", "style-src 'self'", *_COMMON]).encode()
DOCS_POLICY = "; ".join([
    "script-src 'self' 'unsafe-inline'", "style-src 'self' 'unsafe-inline'",
    "worker-src 'self' blob:", *_COMMON]).encode()
ALWAYS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]


def allowed_hosts(settings: Settings) -> list[str]:
    hosts = [*LOOPBACK_HOSTS, *settings.allowed_hosts]
    if settings.proxy_host not in ("0.0.0.0", "::"):  # a wildcard bind names no host
        hosts.append(settings.proxy_host)
    return list(dict.fromkeys(hosts))


class SecurityHeadersMiddleware:
    """Add :data:`ALWAYS` to every answer and the page or docs policy to HTML answers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        docs = scope["path"].startswith(DOCS_PATHS)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), *ALWAYS]
                if any(name == b"content-type" and value.startswith(b"text/html")
                       for name, value in headers):
                    policy = DOCS_POLICY if docs else PAGE_POLICY
                    headers.append((b"content-security-policy", policy))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
