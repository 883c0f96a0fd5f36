"""The proxy's routes: classify an image, report health, list the served models."""

import asyncio
import logging
from typing import Annotated, Any

from fastapi import APIRouter, File, HTTPException, Query, Request, UploadFile, status
from fastapi.responses import JSONResponse

from common.catalogue import IMAGE, KINDS, LISTING, TEXT
from common.codec import ModelRequest
from proxy.admission import Admission
from proxy.deps import AppSettings, TorchServe, error_doc
from proxy.errors import ModelNotFound, TorchServeError
from proxy.schemas import (
    HealthResponse,
    ModelHealth,
    ModelInfo,
    ModelsResponse,
    PredictResponse,
    TorchServeHealth,
)
from proxy.settings import Settings
from proxy.torchserve import ModelDescription, TorchServeClient
from proxy.upload import read_upload

logger = logging.getLogger(__name__)
router = APIRouter()
# The route that serves each kind of model; a query encoder has none (search uses it).
PREDICT_PATHS = {IMAGE: "/predict/image", TEXT: "/predict/text", LISTING: "/predict/listing"}


PREDICT_ERRORS: dict[int | str, dict[str, Any]] = {
    400: error_doc("The file is empty or not an image TorchServe can decode",
                "cannot decode the image: cannot identify image file"),
    404: error_doc("The model is unknown to the proxy or not registered in TorchServe",
                "Unknown model 'vgg': choose one of cnn, resnet50"),
    413: error_doc("The file is larger than the upload limit",
                "The image is larger than the upload limit of 10485760 bytes (10.0 MiB): send a "
                "smaller or more compressed image"),
    502: error_doc("Bad gateway: the worker running the request died and the one retry the retry "
                "budget allows (see AICORE_RETRY_RATIO) failed too, or TorchServe answered "
                "something unexpected",
                "TorchServe's worker for model 'resnet50' died while running this request (500: "
                "Worker died.): TorchServe restarts it; retry, and if it keeps happening see "
                "TorchServe's logs (model_log.log) for the crash"),
    503: error_doc("Unavailable, each with its own detail: the proxy is at capacity for the model "
                "(refused before reading the upload; `Retry-After` header), TorchServe's queue "
                "for the model is full (`Retry-After` header), the model is loading (no worker "
                "READY yet), TorchServe runs no worker for it, or TorchServe is not reachable",
                "The proxy is at capacity for model 'resnet50' (12 requests in flight and 4 "
                "waiting): retry after 1 s")
    | {"headers": {"Retry-After": {"description": "seconds to wait, on the busy answers",
                                   "schema": {"type": "integer"}}}},
    504: error_doc("TorchServe did not answer in time (overloaded, or a worker is stuck)",
                "TorchServe at http://127.0.0.1:8080 did not answer within 30 s: it may be "
                "overloaded or a worker is stuck; retry, or raise AICORE_READ_TIMEOUT_S"),
}


@router.post(
    "/predict/image",
    response_model=PredictResponse,
    responses=PREDICT_ERRORS,
    summary="Classify one listing image",
    tags=["predict"],
)
async def predict_image(
    image: Annotated[UploadFile, File(description="the listing photo (JPEG, PNG, WebP ...)")],
    torchserve: TorchServe,
    settings: AppSettings,
    model: Annotated[
        str | None,
        Query(description="cnn or resnet50 (default: the proxy's AICORE_DEFAULT_MODEL, resnet50)",
              examples=["resnet50"]),
    ] = None,
) -> PredictResponse:
    """Send the image to TorchServe and return its category with every category's probability."""
    name = model or settings.default_model
    if name not in settings.image_models:
        raise HTTPException(status.HTTP_404_NOT_FOUND, not_an_image_model(name, settings))
    data = await read_upload(image, settings.max_upload_bytes)
    prediction = await torchserve.predict(name, ModelRequest(image=data))
    return PredictResponse(
        category=prediction.category, probabilities=prediction.probabilities, model=name
    )


def not_an_image_model(name: str, settings: Settings) -> str:
    """Why ``name`` is refused by /predict/image, and the route that serves it if one does."""
    detail = f"Unknown model {name!r}: choose one of {', '.join(settings.image_models)}"
    kind = settings.catalogue.kind(name)
    if kind is not None and kind in PREDICT_PATHS:
        detail += (f"; {name!r} reads the {KINDS[kind].description}: use "
                   f"POST {PREDICT_PATHS[kind]}")
    return detail


def size_gate(admission: Admission, description: ModelDescription) -> None:
    """Size the model's admission from what TorchServe runs (workers x batchSize)."""
    workers = max(description.min_workers, len(description.workers))
    admission.size(description.name, workers, description.batch_size)


async def size_admission(torchserve: TorchServeClient, admission: Admission,
                         models: list[str]) -> None:
    """At start-up: size every model's admission; a model TorchServe cannot describe yet keeps
    the default size until GET /health sees it."""
    for name in models:
        try:
            size_gate(admission, await torchserve.model(name))
        except TorchServeError as exc:
            logger.info("admission for %r keeps its default size for now: %s", name, exc.detail)


async def _model_health(torchserve: TorchServeClient, admission: Admission,
                        name: str) -> ModelHealth:
    try:
        description = await torchserve.model(name)
    except ModelNotFound:
        return ModelHealth(name=name, ready=False,
                           detail="not registered in TorchServe: `make archive`, then `make serve`")
    except TorchServeError as exc:
        return ModelHealth(name=name, ready=False, detail=exc.detail)
    size_gate(admission, description)
    statuses = description.worker_statuses
    ready = description.ready_workers
    return ModelHealth(
        name=name, ready=ready > 0, version=description.version, workers_ready=ready,
        workers_total=len(statuses),
        detail=None if ready else f"no READY worker (workers: {', '.join(statuses) or 'none'})",
    )


@router.get(
    "/health",
    response_model=HealthResponse,
    responses={503: {"model": HealthResponse, "description": "TorchServe or a model is not ready"}},
    summary="Is TorchServe up and every model ready?",
    tags=["status"],
)
async def health(request: Request, torchserve: TorchServe, settings: AppSettings) -> JSONResponse:
    """200 when TorchServe answers /ping and every model has a READY worker, else 503 (same body)."""
    server = TorchServeHealth(url=settings.inference_url)
    try:
        server.status = await torchserve.ping()
    except TorchServeError as exc:
        server.detail = exc.detail
        models = [ModelHealth(name=name, ready=False, detail="TorchServe is not answering")
                  for name in settings.models]
    else:
        models = list(await asyncio.gather(
            *(_model_health(torchserve, request.app.state.admission, name)
              for name in settings.models)
        ))
    ready = server.status == "Healthy" and all(m.ready for m in models)
    body = HealthResponse(ready=ready, torchserve=server, models=models)
    code = status.HTTP_200_OK if ready else status.HTTP_503_SERVICE_UNAVAILABLE
    return JSONResponse(body.model_dump(mode="json"), status_code=code)


@router.get(
    "/models",
    response_model=ModelsResponse,
    responses={
        502: error_doc("TorchServe answered something unexpected",
                    "TorchServe answered 500 to GET /models: Internal Server Error"),
        503: error_doc("TorchServe is down",
                    "TorchServe is not reachable at http://127.0.0.1:8081: start it with "
                    "`make serve`"),
        504: error_doc("TorchServe did not answer in time", "TorchServe at http://127.0.0.1:8081 "
                    "did not answer within 30 s"),
    },
    summary="The models TorchServe serves and their versions",
    tags=["status"],
)
async def list_models(torchserve: TorchServe, settings: AppSettings) -> ModelsResponse:
    """Every model registered in TorchServe (its management API), with its versions and, for
    the models this proxy serves, their kind (what they read; which route serves them)."""
    served = await torchserve.models()
    return ModelsResponse(
        default_model=settings.default_model,
        models=[
            ModelInfo(name=name, versions=versions, kind=settings.catalogue.kind(name),
                      servable=name in settings.catalogue)
            for name, versions in served.items()
        ],
    )
