"""The page for people at ``/`` (static files in ``proxy/web/``) and ``GET /capabilities``, which
tells the page what this proxy offers: search, and each served model with its kind (from the
catalogue, :mod:`common.catalogue`), the route that serves each kind and the body it takes.

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
from proxy.routes import PREDICT_PATHS
from proxy.settings import Settings

WEB_DIR = Path(__file__).with_name("web")
STATIC_PREFIX = "/web"
# Optional routes the page adapts to; each appears once the feature's router is included.
SEARCH_PATH = "/search"
JSON, FORM = "application/json", "multipart/form-data"

router = APIRouter()


class ServedModelInfo(BaseModel):
    """One model this proxy serves, from the catalogue."""

    name: str
    kind: str = Field(description="image, text, listing or query")
    reads: str = Field(description="what it reads, for people (\"photo + title + description\")")


class PredictRoute(BaseModel):
    path: str = Field(description="the route serving this kind")
    body: str = Field(description=f"the request body it takes: {JSON} or {FORM}")


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
                    "models": [{"name": "resnet50", "kind": "image", "reads": "photo"}],
                    "routes": {"image": {"path": "/predict/image", "body": FORM}},
                }
            ]
        }
    )

    default_model: str = Field(description="the model POST /predict/image uses when none is named")
    max_upload_bytes: int = Field(description="the largest photo accepted, in bytes")
    categories: list[str] = Field(description="the marketplace's root categories")
    search: bool = Field(description="GET/POST /search and /listings/{id} are served")
    predict: dict[str, bool] = Field(
        description="per kind: is its route (POST /predict/image, /predict/text, "
        "/predict/listing) served, with a model of that kind behind it"
    )
    models: list[ServedModelInfo] = Field(description="the served models and their kinds")
    routes: dict[str, PredictRoute] = Field(description="per served kind: its route and body")


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
    """From the catalogue and the app's own OpenAPI paths, so it cannot claim a route that is
    absent nor a kind no model serves."""
    settings: Settings = request.app.state.settings
    paths = request.app.openapi()["paths"]  # built once, then cached by FastAPI
    predict = {kind: path in paths and settings.model_of_kind(kind) is not None
               for kind, path in PREDICT_PATHS.items()}
    return CapabilitiesResponse(
        default_model=settings.default_model,
        max_upload_bytes=settings.max_upload_bytes,
        categories=list(ROOT_CATEGORIES),
        search=SEARCH_PATH in paths,
        predict=predict,
        models=[ServedModelInfo(name=m.name, kind=m.kind, reads=m.spec.description)
                for m in settings.catalogue.values()],
        routes={kind: PredictRoute(path=PREDICT_PATHS[kind], body=_body(paths[PREDICT_PATHS[kind]]))
                for kind, served in predict.items() if served},
    )


def _body(path_item: dict) -> str:
    """The request body a POST route takes: JSON when that is its only body, else a form."""
    content = path_item.get("post", {}).get("requestBody", {}).get("content", {})
    return JSON if JSON in content and FORM not in content else FORM


def add_web(app: FastAPI) -> None:
    """Serve the page at ``/`` and its files under ``/web/``, and ``GET /capabilities``
    (the pages' Content-Security-Policy: proxy/headers.py)."""
    app.include_router(router)
    app.mount(STATIC_PREFIX, StaticFiles(directory=WEB_DIR), name="web")
