"""The page for people at ``/`` (static files in ``proxy/web/``) and ``GET /capabilities``, which
tells the page what this proxy offers (search, text and listing models arrive in later releases).

The page is plain HTML, CSS and JavaScript served from this package: no CDN, no build step. Every
HTML page of the proxy (``/``, ``/docs``, ``/redoc``) carries a Content-Security-Policy that lets
the browser load only from the proxy itself (``proxy/headers.py``).
"""

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from aicore.categories import ROOT_CATEGORIES
from proxy.settings import Settings

WEB_DIR = Path(__file__).with_name("web")
STATIC_PREFIX = "/web"
# Optional routes the page adapts to; each appears once the feature's router is included.
SEARCH_PATH = "/search"
PREDICT_PATHS = {"image": "/predict/image", "text": "/predict/text", "listing": "/predict/listing"}

router = APIRouter()


class CapabilitiesResponse(BaseModel):
    """What this proxy serves, so a client shows only what works."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "default_model": "resnet50",
                    "max_upload_bytes": 10485760,
                    "categories": list(ROOT_CATEGORIES[:2]),
                    "search": False,
                    "predict": {"image": True, "text": False, "listing": False},
                }
            ]
        }
    )

    default_model: str = Field(description="the model POST /predict/image uses when none is named")
    max_upload_bytes: int = Field(description="the largest photo accepted, in bytes")
    categories: list[str] = Field(description="the marketplace's root categories")
    search: bool = Field(description="GET/POST /search and /listings/{id} are served")
    predict: dict[str, bool] = Field(
        description="which of POST /predict/image, /predict/text, /predict/listing are served"
    )


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(WEB_DIR / "index.html")


@router.get(
    "/capabilities",
    response_model=CapabilitiesResponse,
    summary="What this proxy serves (search, text and listing models)",
    tags=["status"],
)
async def capabilities(request: Request) -> CapabilitiesResponse:
    """Read from the app's own OpenAPI paths, so it cannot claim a route that is absent."""
    settings: Settings = request.app.state.settings
    paths = request.app.openapi()["paths"]  # built once, then cached by FastAPI
    return CapabilitiesResponse(
        default_model=settings.default_model,
        max_upload_bytes=settings.max_upload_bytes,
        categories=list(ROOT_CATEGORIES),
        search=SEARCH_PATH in paths,
        predict={kind: path in paths for kind, path in PREDICT_PATHS.items()},
    )


def add_web(app: FastAPI) -> None:
    """Serve the page at ``/`` and its files under ``/web/``, and ``GET /capabilities``
    (the pages' Content-Security-Policy: proxy/headers.py)."""
    app.include_router(router)
    app.mount(STATIC_PREFIX, StaticFiles(directory=WEB_DIR), name="web")
