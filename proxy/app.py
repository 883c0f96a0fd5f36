"""The app factory ``create_app(settings)``; ``proxy.main`` holds the ``app`` uvicorn serves.

Importing this module reads no environment, so tests build the app from the settings they choose.
"""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from proxy.errors import TorchServeError
from proxy.routes import router
from proxy.settings import Settings
from proxy.torchserve import TorchServeClient
from proxy.upload import UploadLimitMiddleware

logger = logging.getLogger(__name__)

DESCRIPTION = """
Classifies marketplace listing photos into their root category by forwarding them to TorchServe
(models `cnn` and `resnet50`). Every error answers `{"detail": "..."}` saying what to change.
"""


async def torchserve_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TorchServeError)
    logger.warning("%s %s -> %d: %s", request.method, request.url.path, exc.status_code, exc.detail)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # The traceback goes to the proxy's log (the server re-raises after this answer), never to
    # the caller.
    return JSONResponse(
        {"detail": f"internal proxy error ({type(exc).__name__}): see the proxy's log"},
        status_code=500,
    )


def create_app(
    settings: Settings | None = None, *, transport: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    """Build the proxy.

    Args:
        settings: configuration (default: read from ``AICORE_*`` environment variables).
        transport: an httpx transport for the TorchServe client; tests pass a fake TorchServe
            (``httpx.MockTransport``), production uses the network.

    Returns:
        The app; its lifespan opens one pooled ``httpx.AsyncClient`` and closes it at shutdown.
    """
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        timeout = httpx.Timeout(settings.read_timeout_s, connect=settings.connect_timeout_s)
        # trust_env=False: TorchServe is a local service, never reached through an HTTP_PROXY.
        async with httpx.AsyncClient(timeout=timeout, transport=transport, trust_env=False) as http:
            app.state.torchserve = TorchServeClient(http, settings)
            logger.info("proxying to TorchServe at %s (management %s), models %s",
                        settings.inference_url, settings.management_url, settings.models)
            yield

    app = FastAPI(
        title="FacebookPro AICore proxy",
        description=DESCRIPTION,
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.add_middleware(UploadLimitMiddleware, max_upload_bytes=settings.max_upload_bytes)
    app.add_exception_handler(TorchServeError, torchserve_error)
    app.add_exception_handler(Exception, unexpected_error)
    app.include_router(router)
    return app

