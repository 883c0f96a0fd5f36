"""The app factory ``create_app(settings)``; ``proxy.main`` holds the ``app`` uvicorn serves.

Importing this module reads no environment, so tests build the app from the settings they choose.
"""

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool
from starlette.middleware.trustedhost import TrustedHostMiddleware

from common.catalogue import IMAGE, LISTING, TEXT
from proxy.admission import Admission
from proxy.errors import TorchServeError
from proxy.listing_routes import router as listing_router
from proxy.market import Market, make_live
from proxy.market_routes import router as market_router
from proxy.routes import PREDICT_PATHS, router, size_admission
from proxy.search_routes import make_holder, search_error
from proxy.search_routes import router as search_router
from proxy.settings import Settings
from proxy.torchserve import TorchServeClient
from proxy.headers import SecurityHeadersMiddleware, allowed_hosts
from proxy.json_errors import invalid_unicode, validation_error
from proxy.middleware import GateMiddleware, Routes
from proxy.redact import RedactMiddleware, Redactor
from proxy.upload import MULTIPART_OVERHEAD, UploadLimitMiddleware
from search import SearchError
from proxy.webpage import add_web

logger = logging.getLogger(__name__)

SIZING_TIMEOUT_S = 5.0

DESCRIPTION = """
Classifies marketplace listings into their root category by forwarding them to TorchServe:
photos (`POST /predict/image`, the models of kind `image`, e.g. `cnn` and `resnet50`), title +
description (`POST /predict/text`, the `text` model) and photo + text (`POST /predict/listing`,
the `listing` model). `GET /models` lists every served model with its kind (from
config.properties' model_snapshot). Every error answers `{"detail": "..."}` saying what to change.

Sellers (docs/marketplace.md): `POST /sellers` gives a token (shown once); with
`Authorization: Bearer <token>`, `POST /listings` publishes a listing (photos stripped of EXIF/GPS,
the category suggested by the listing model), `PATCH`/`DELETE /listings/{id}` edit, sell or delete
it, `GET /sellers/me/listings` lists them. A 201 is sent only once the write is durable, and
`/search`, filters and `/listings/{id}/similar` see it at once.

Limits (docs/limits.md): headers within 10 s and 16 KiB / 100 lines (408, 431), a body within
30 s (408) and 10 MiB (413), title/description 1,000/20,000 characters (422); every costly route
has a concurrency gate (503 + `Retry-After` when full); a request for another `Host` is a 400.
"""


async def torchserve_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TorchServeError)
    logger.warning("%s %s -> %d: %s", request.method, request.url.path, exc.status_code, exc.detail)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # The traceback goes to the proxy's log (the server re-raises after this answer), never to
    # the caller.
    return JSONResponse(
        {"detail": f"internal proxy error ({type(exc).__name__}): see the proxy's log"},
        status_code=500,
    )


async def database_error(request: Request, exc: Exception) -> JSONResponse:
    """The index's SQLite file cannot be read (damaged, deleted, disk error): the index is
    unavailable, not the proxy broken."""
    if request.url.path.startswith("/sellers") or request.method in ("POST", "PATCH", "DELETE"):
        logger.error("%s %s: market store error: %r", request.method, request.url.path, exc)
        return JSONResponse(
            {"detail": f"the marketplace store (market.db in AICORE_STATE_DIR) cannot be used "
                       f"({type(exc).__name__}: {exc}): nothing was saved; retry, and check the "
                       "disk if it persists"}, status_code=503, headers={"Retry-After": "5"})
    logger.error("%s %s: search index database error: %r", request.method, request.url.path, exc)
    return JSONResponse(
        {"detail": f"the search index's database cannot be read ({type(exc).__name__}: {exc}): "
                   "rebuild it with `make index`; the proxy's log has the details"},
        status_code=503, headers={"Retry-After": "30"})


def _sweep_photos(market: Market) -> None:
    try:
        market.sweep()
    except (OSError, sqlite3.Error) as exc:  # the store's state is reported by its routes
        logger.error("cannot sweep the photo store: %r", exc)


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
        # Admission bounds the calls in flight; keep every connection alive so that a burst never
        # pays for new TCP connections (httpx keeps only 20 by default).
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        # trust_env=False: TorchServe is a local service, never reached through an HTTP_PROXY.
        async with httpx.AsyncClient(timeout=timeout, limits=limits, transport=transport,
                                     trust_env=False) as http:
            app.state.torchserve = TorchServeClient(http, settings)
            logger.info("proxying to TorchServe at %s (management %s), models %s",
                        settings.inference_url, settings.management_url, settings.models)
            # Bounded: a hung TorchServe must not hold the proxy's start-up; /health re-sizes.
            try:
                await asyncio.wait_for(size_admission(app.state.torchserve, admission,
                                                      settings.models), SIZING_TIMEOUT_S)
            except TimeoutError:
                logger.warning("TorchServe did not describe the models within %g s: admission "
                               "keeps its default size until GET /health", SIZING_TIMEOUT_S)
            # a crash between a photo's write and its listing's commit leaves a file no row names
            await run_in_threadpool(_sweep_photos, market)
            yield

    # FastAPIOffline: /docs and /redoc load Swagger UI and ReDoc from files the fastapi-offline
    # package ships, served by this app; FastAPI's own pages fetch them from a CDN and stay blank
    # on a machine without internet. validatorUrl=None: Swagger UI would otherwise send the schema
    # to validator.swagger.io.
    app = FastAPIOffline(
        title="FacebookPro AICore proxy",
        description=DESCRIPTION,
        version="0.1.0",
        lifespan=lifespan,
        swagger_ui_parameters={"validatorUrl": None},
    )
    app.state.settings = settings
    admission = Admission(settings.models, settings.admission_in_flight_batches,
                          settings.admission_waiting_batches, settings.admission_default_slots,
                          settings.admission_max_wait_s, settings.retry_after_s,
                          {"search": settings.search_in_flight, "status": settings.status_in_flight})
    app.state.admission = admission
    market = Market(settings)
    app.state.market = market
    # every search also ranks the sellers' live listings, caught up with market.db first
    app.state.search = make_holder(settings, make_live(market))
    app.state.search_versions = {}  # (model, index generation) -> when its version was checked
    app.add_middleware(UploadLimitMiddleware, max_upload_bytes=settings.max_upload_bytes)
    # Added last: runs first, before anything reads the body (proxy/middleware.py). The route ->
    # model table from the catalogue: /predict/image names its model (?model=), the text and
    # listing routes serve their kind's one model.
    fixed = {PREDICT_PATHS[kind]: model for kind in (TEXT, LISTING)
             if (model := settings.model_of_kind(kind)) is not None}
    routes = Routes(model_routes={PREDICT_PATHS[IMAGE]: settings.default_model},
                    fixed_routes=fixed,
                    route_gates={"/search": "search", "/listings": "search", "/sellers": "search",
                                 "/health": "status", "/models": "status"})
    if not settings.admission:  # bodies are still read first, within their limits
        routes = Routes({}, {}, {})
    app.add_middleware(GateMiddleware, admission=admission, routes=routes,
                       max_body_bytes=settings.max_upload_bytes + MULTIPART_OVERHEAD,
                       max_upload_bytes=settings.max_upload_bytes,
                       body_timeout_s=settings.body_timeout_s,
                       receiving_bytes=settings.receiving_bytes,
                       retry_after_s=settings.retry_after_s)
    app.add_exception_handler(TorchServeError, torchserve_error)
    app.add_exception_handler(SearchError, search_error)
    # Outermost: every answer, the gate's own refusals included, leaves through it.
    app.add_middleware(RedactMiddleware, redactor=Redactor(settings))
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(UnicodeEncodeError, invalid_unicode)
    app.add_exception_handler(sqlite3.Error, database_error)
    app.add_exception_handler(Exception, unexpected_error)
    app.include_router(router)
    app.include_router(search_router)
    app.include_router(listing_router)
    app.include_router(market_router)
    add_web(app)
    app.add_middleware(SecurityHeadersMiddleware)
    # Outermost: a request for another Host is refused before anything else runs.
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(settings))
    return app

