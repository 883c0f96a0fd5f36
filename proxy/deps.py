"""The proxy's dependencies, in one place: what a route receives instead of reaching for it.

Every route takes the TorchServe client, the settings and the search engine through these
``Annotated`` aliases; tests swap them with ``app.dependency_overrides[get_torchserve]`` (or
``get_engine``). ``error_doc`` writes one error's entry of a route's ``responses=`` for /docs.
"""

from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from proxy.schemas import ErrorResponse
from proxy.settings import Settings
from proxy.torchserve import TorchServeClient
from search import SearchEngine


# async, though they only read an attribute: FastAPI runs a plain `def` dependency in its thread
# pool, and those thread hops cost ~0.3 ms of CPU per request plus the wake-up latency of a
# thread on a busy 2-core machine (measured with cProfile, see docs/benchmarks.md).
async def get_torchserve(request: Request) -> TorchServeClient:
    """The app's one TorchServe client (made by the lifespan); tests override this dependency."""
    return request.app.state.torchserve


async def get_settings(request: Request) -> Settings:
    """The settings the app was built with (``create_app(settings)``)."""
    return request.app.state.settings


async def get_engine(request: Request) -> SearchEngine:
    """The live index (503 with what to run when there is none); tests override this.

    In a worker thread: loading a rebuilt index reads files, which must not stall the event loop.
    """
    return await run_in_threadpool(request.app.state.search.get)


TorchServe = Annotated[TorchServeClient, Depends(get_torchserve)]
AppSettings = Annotated[Settings, Depends(get_settings)]
Engine = Annotated[SearchEngine, Depends(get_engine)]


def error_doc(description: str, example: str) -> dict[str, Any]:
    """One entry of a route's ``responses=``: the error body's model, what it means, an example."""
    return {
        "model": ErrorResponse,
        "description": description,
        "content": {"application/json": {"example": {"detail": example}}},
    }
