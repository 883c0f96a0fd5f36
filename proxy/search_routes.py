"""Listing search: ``/search`` (text, photo or both) and ``/listings/{id}`` (+ ``/image``, ``/similar``).

The index is the directory in ``Settings.search_index`` (``make index``), served by a
:class:`search.EngineHolder`: a rebuilt index is loaded at the next request while requests in
flight finish on the old one. A query is embedded by TorchServe (``embedding=true``) with the
model the index was built with -- its photo for an image index, its text for a text index, either
or both for an image + text index; the archive version must carry the same weights' hash, or
the answer is 503 naming what to rebuild (vectors of two different models are not comparable).

An image or multimodal index built with text vectors (``meta.json`` ``"text_encoder"``) has its
query *text* embedded by TorchServe's ``query`` model (the pretrained encoder, checked against
``text_encoder.sha256`` the same way) and its photo by the index's model: a photo + text query is
two TorchServe calls, a text-only query one call to ``query``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Request, Response, UploadFile
from fastapi.responses import FileResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from proxy.errors import ModelNotFound, TorchServeError
from proxy.deps import AppSettings, Engine, TorchServe, error_doc
from proxy.search_schemas import ListingResponse, SearchHit, SearchResponse
from proxy.sessions import BuyerSession, Session, record_view, session_views
from proxy.settings import Settings
from proxy.torchserve import TorchServeClient
from proxy.upload import read_upload
from common import server_timing
from common.catalogue import parse_version
from common.codec import ModelRequest
from search import (BadRequest, EngineHolder, Hit, IndexUnavailable, SearchEngine, SearchError,
                    SearchRequest)
from search.embedders import IMAGE, TEXT
from search.layout import TextEncoderMeta
from search.live import LiveOverlay
from search.limits import MAX_K, RETRIEVERS, check_limits
from search.records import fts_query

logger = logging.getLogger(__name__)
router = APIRouter(tags=["search"])
VERSION_CHECK_S = 30.0  # how long a checked served-model version is trusted


SEARCH_ERRORS: dict[int | str, dict[str, Any]] = {
    400: error_doc("A bad query: no text and no photo, k out of range, min_price > max_price, an "
                "unknown category or place, a viewed id not in the index, a corrupt photo, a "
                "photo sent to an index whose model reads text only",
                "min_price=50 is above max_price=10: swap them or widen the range"),
    413: error_doc("The photo is larger than the upload limit", "The image is larger than the "
                "upload limit of 10485760 bytes (10.0 MiB): send a smaller or more compressed image"),
    503: error_doc("No index yet, one being built, or TorchServe cannot embed the query (down, or "
                "serving other weights than the index was built with)",
                "no search index in indexes/demo: build one with `make index`"),
}
LISTING_ERRORS: dict[int | str, dict[str, Any]] = {
    404: error_doc("No listing with that id", "no listing 'x' in the index (973 listings); take ids "
                "from a search result"),
    503: SEARCH_ERRORS[503],
}


class SearchFilters:
    """The query-string parameters every search route shares."""

    def __init__(
        self,
        k: Annotated[int, Query(description=f"results to return, 1..{MAX_K}")] = 10,
        min_price: Annotated[float | None, Query(description="lowest price, GBP")] = None,
        max_price: Annotated[float | None, Query(description="highest price, GBP")] = None,
        category: Annotated[str | None, Query(description="a root category, e.g. Appliances")] = None,
        near: Annotated[str | None, Query(
            description="a town or region (\"Leeds\", \"London\"): listings of that town, or of "
                        "every town of that region")] = None,
        viewed: Annotated[list[str] | None, Query(
            description="ids of listings the user viewed, most recent first (comma-separated or "
                        "repeated): personalises the ranking")] = None,
        retriever: Annotated[str, Query(description=f"one of {', '.join(RETRIEVERS)}")] = "fused",
    ) -> None:
        self.k, self.min_price, self.max_price = k, min_price, max_price
        self.category, self.near, self.retriever = category, near, retriever
        self.viewed = [v.strip() for item in viewed or [] for v in item.split(",") if v.strip()]

    def request(self, text: str | None = None, vector: np.ndarray | None = None,
                text_vector: np.ndarray | None = None,
                exclude: list[str] | None = None) -> SearchRequest:
        return SearchRequest(text=text, vector=vector, text_vector=text_vector, k=self.k,
                             retriever=self.retriever,
                             min_price=self.min_price, max_price=self.max_price,
                             category=self.category, near=self.near, viewed=self.viewed,
                             exclude=exclude or [])


Filters = Annotated[SearchFilters, Depends()]


@router.get("/search", response_model=SearchResponse, responses=SEARCH_ERRORS,
            summary="Search listings by text")
async def search_text(
    request: Request, response: Response, engine: Engine, filters: Filters,
    torchserve: TorchServe, settings: AppSettings, session: Session,
    q: Annotated[str, Query(description="the query text", examples=["sofa"])] = "",
) -> SearchResponse:
    """Listings matching ``q``: BM25 over title, description, category and place, fused with the
    dense retriever when the index's model embeds text (``q`` embedded by TorchServe) or the
    user has viewed listings. Fusion, BM25 field weights and personalisation follow the index's
    stored ranking (chosen on judged queries by `python -m search.tune`); listings in ``viewed``
    are not returned. Without ``viewed``, the session's recent views (cookie or `X-Session`)
    personalise the ranking. The `Server-Timing` header gives the milliseconds of each step
    (session: reading the session's views; embed: TorchServe; search and its steps: the index;
    thread-hop: waiting for a worker thread; route: all of them and the answer's model)."""
    started = time.perf_counter()
    check_limits(filters.request(text=q), engine.max_k)  # cheap checks before the embedding
    await _session_viewed(filters, session, engine)
    remembered = time.perf_counter()
    vectors = await _embed_query(request, torchserve, engine, settings, filters, q, None)
    embedded = time.perf_counter()
    result = await run_in_threadpool(engine.search, filters.request(q, *vectors.vectors))
    searched = time.perf_counter()
    answer = _response(engine, result, embedded_by=vectors.embedded_by)
    response.headers[server_timing.HEADER] = server_timing.format_timing(
        {"session": (remembered - started) * 1000, "embed": (embedded - remembered) * 1000,
         "search": result.took_ms,
         **{f"search-{name}": ms for name, ms in result.stages_ms.items()},
         # the hop to a worker thread and back: what the search waited for besides itself
         "thread-hop": (searched - embedded) * 1000 - result.took_ms,
         "route": (time.perf_counter() - started) * 1000})
    return answer


@router.post("/search", response_model=SearchResponse, responses=SEARCH_ERRORS,
             summary="Search listings by photo, text or both")
async def search_upload(
    request: Request, engine: Engine, filters: Filters, torchserve: TorchServe,
    settings: AppSettings, session: Session,
    image: Annotated[UploadFile | None, File(description="a query photo (optional)")] = None,
    q: Annotated[str, Form(description="query text (optional)")] = "",
) -> SearchResponse:
    """Listings like the photo and matching the text: dense retrieval on the TorchServe
    embedding of what the index's model reads (the photo; the text too for an image + text
    index) and BM25 on the text, fused by the index's stored ranking (weighted reciprocal-rank or
    normalised score fusion, `python -m search.tune`). Without ``viewed``, the session's
    recent views personalise the ranking."""
    check_limits(filters.request(text=q), engine.max_k)  # cheap checks before the upload is used
    await _session_viewed(filters, session, engine)
    data = None
    if image is not None:
        if IMAGE not in engine.modalities:  # the caller's choice of input: 400, not 503
            raise BadRequest(f"this index's model ({engine.info.arch}) does not embed "
                             "photos: search with text (q) only")
        data = await read_upload(image, settings.max_upload_bytes)
    vectors = await _embed_query(request, torchserve, engine, settings, filters, q, data)
    result = await run_in_threadpool(engine.search, filters.request(q, *vectors.vectors))
    return _response(engine, result, embedded_by=vectors.embedded_by)


@router.get("/listings/{listing_id:path}/similar", response_model=SearchResponse,
            responses=LISTING_ERRORS, summary="Listings that look like this one")
async def similar(listing_id: str, engine: Engine, filters: Filters) -> SearchResponse:
    """The nearest listings to ``listing_id`` by embedding (itself left out); filters apply."""
    vector = await run_in_threadpool(engine.vector_of, listing_id)  # of the index or live
    request = filters.request(vector=vector, exclude=[listing_id])
    result = await run_in_threadpool(engine.search, request)
    return _response(engine, result, embedded_by=None)


@router.get("/listings/{listing_id:path}/image", response_class=FileResponse,
            responses={**LISTING_ERRORS, 200: {"content": {"image/png": {}},
                                                "description": "the cleaned photo"}},
            summary="A listing's photo")
async def listing_image(
    listing_id: str, engine: Engine,
    n: Annotated[int, Query(ge=0, description="which photo, 0 = the main one")] = 0,
) -> FileResponse:
    path = engine.image_path(listing_id, n)
    # the export's cleaned photos are PNGs; a seller's are stored as JPEGs (market.photos)
    return FileResponse(path, media_type="image/jpeg" if path.suffix == ".jpg" else "image/png")


@router.get("/listings/{listing_id:path}", response_model=ListingResponse,
            responses=LISTING_ERRORS, summary="A listing's record")
async def listing(listing_id: str, engine: Engine, session: Session) -> ListingResponse:
    """The listing's record. Opening it records a view in the request's session (created when
    it has none): the session's feed and searches follow its views."""
    record = engine.get(listing_id)
    await record_view(session, record["id"])
    url = f"/listings/{record['id']}"
    return ListingResponse(
        id=record["id"], title=record["title"], description=record["description"],
        price=record["price"], location=record["location"], category=record["category"],
        category_path=record["category_path"], image_ids=record["image_ids"],
        image_urls=[f"{url}/image?n={i}" for i in range(len(record["image_ids"]))],
        similar_url=f"{url}/similar")


async def search_error(request: Request, exc: Exception) -> JSONResponse:
    """:class:`search.SearchError` -> its status and ``{"detail"}`` (+ Retry-After when busy)."""
    assert isinstance(exc, SearchError)
    logger.info("%s %s -> %d: %s", request.method, request.url.path, exc.status_code, exc)
    headers = {}
    if isinstance(exc, IndexUnavailable) and exc.retry_after_s:
        headers["Retry-After"] = str(exc.retry_after_s)
    return JSONResponse({"detail": str(exc)}, status_code=exc.status_code, headers=headers)


def make_holder(settings: Settings, live: LiveOverlay | None = None) -> EngineHolder:
    return EngineHolder(settings.search_index, live)


# --- helpers -----------------------------------------------------------------------------------

async def _session_viewed(filters: SearchFilters, session: BuyerSession,
                          engine: SearchEngine) -> None:
    """An explicit ``viewed`` wins; without one, the session's recent views (those the index
    still holds). A sessions database that fails costs the personalisation, not the search."""
    if filters.viewed:
        return
    try:
        filters.viewed = await session_views(session, engine)
    except HTTPException as exc:
        logger.warning("searching without the session's views: %s", exc.detail)


@dataclass(frozen=True)
class QueryEmbedding:
    """What TorchServe made of one query: its vector by the index's model, its text's by the
    index's text encoder (``query``), and which models were asked."""

    vector: np.ndarray | None = None
    text_vector: np.ndarray | None = None
    models: tuple[str, ...] = ()

    @property
    def vectors(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        return self.vector, self.text_vector

    @property
    def embedded_by(self) -> str | None:
        return "+".join(self.models) or None


async def _embed_query(request: Request, torchserve: TorchServeClient, engine: SearchEngine,
                       settings: Settings, filters: SearchFilters, text: str,
                       image: bytes | None) -> QueryEmbedding:
    """The query's unit vectors from TorchServe: by the model the index was built with (what of
    the query it reads), and the text's by the ``query`` model when the index holds text vectors
    (then the index's model reads the text only beside a photo). Nothing is asked for what the
    requested retriever does not use (``lexical``: TorchServe is not needed)."""
    # Text without a word is left to the engine, which says so (the handler would refuse it as
    # an empty listing).
    words = fts_query(text) is not None
    encoder = engine.info.text_encoder
    use_image = image is not None and IMAGE in engine.modalities
    use_text = TEXT in engine.modalities and words and (encoder is None or use_image)
    index_model = (use_text or use_image) and filters.retriever in ("fused", "dense")
    text_model = encoder is not None and words and filters.retriever in ("fused", "text_dense")
    embedding = QueryEmbedding()
    if index_model:
        model = settings.search_model or engine.info.served_model
        await check_served_model(request, torchserve, engine, model)
        # The query text as a listing's title with no description, as
        # search.embedders.TextEmbedder embeds it in-process; TorchServeClient encodes it for the
        # model's kind.
        query = ModelRequest(image=image if use_image else None, title=text if use_text else "",
                             embedding=True)
        prediction = await torchserve.predict(model, query)
        embedding = QueryEmbedding(query_vector(prediction.embedding, engine, model), None,
                                   (model,))
    if text_model:
        assert encoder is not None
        await check_served_model(request, torchserve, engine, *encoder_weights(encoder))
        prediction = await predict_text(torchserve, encoder.served_model, text)
        text_vector = query_vector(prediction.embedding, engine, encoder.served_model,
                                   engine.text_vectors.dim)
        embedding = QueryEmbedding(embedding.vector, text_vector,
                                   (*embedding.models, encoder.served_model))
    return embedding


async def predict_text(torchserve: TorchServeClient, model: str, title: str,
                       description: str = ""):
    """The ``query`` model's answer for a query (``title``) or a listing's title + description,
    embedded as the index build embeds listings; 503 naming what to start when TorchServe does
    not serve it (the index needs it as much as its own data)."""
    try:
        return await torchserve.predict(model, ModelRequest(title=title, description=description,
                                                            embedding=True))
    except ModelNotFound:
        raise IndexUnavailable(
            f"this index's text vectors need TorchServe's {model!r} model (the pretrained text "
            f"encoder), which is not served: build it with `make archive` "
            f"(model_store/{model}.mar) and start it with `make serve`; meanwhile search with "
            "retriever=lexical, or rebuild the index with --no-text-encoder") from None


def query_vector(embedding: list[float] | None, engine: SearchEngine, model: str,
                 dim: int | None = None) -> np.ndarray:
    """``embedding`` as a unit query vector of ``dim`` (default: the index's own vectors').

    Raises:
        IndexUnavailable: the served model gives vectors of another size.
    """
    dim = engine.vectors.dim if dim is None else dim
    vector = np.asarray(embedding or [], dtype=np.float32)
    if vector.shape != (dim,):
        raise IndexUnavailable(
            f"TorchServe's model {model!r} gives {vector.size}-d embeddings but the index holds "
            f"{dim}-d vectors for it ({engine.info.arch} index): rebuild the index with "
            "`make index`, or set AICORE_SEARCH_MODEL to the model it was built with")
    return vector


async def check_served_model(request: Request, torchserve: TorchServeClient,
                             engine: SearchEngine, model: str, sha256: str | None = None,
                             built_by: str | None = None) -> None:
    """503 unless TorchServe serves the weights the index was built with
    (:func:`served_weights_problem`); checked every ``VERSION_CHECK_S``."""
    checked: dict = request.app.state.search_versions
    key = (model, engine.generation)
    if key in checked and time.monotonic() - checked[key] < VERSION_CHECK_S:
        return
    try:
        problem = await served_weights_problem(torchserve, engine, model, sha256, built_by)
    except TorchServeError:
        return  # the prediction call that follows reports TorchServe's state precisely
    if problem is not None:
        raise IndexUnavailable(problem)
    checked[key] = time.monotonic()


def encoder_weights(encoder: TextEncoderMeta) -> tuple[str, str, str]:
    """:func:`served_weights_problem`'s ``model``, ``sha256`` and ``built_by`` for an index's
    text encoder."""
    return encoder.served_model, encoder.sha256, f"the text encoder {encoder.name}"


async def served_weights_problem(torchserve: TorchServeClient, engine: SearchEngine, model: str,
                                 sha256: str | None = None, built_by: str | None = None
                                 ) -> str | None:
    """What to do when TorchServe's ``model`` is not the weights the index was built with:
    ``sha256`` (default: the index's model's, ``engine.info.model_sha256``) -- for an index with
    text vectors, its text encoder's for the ``query`` model. None when they are the same.

    The archive version (:func:`common.catalogue.parse_version`) names the first 8 hex digits of
    the weights' SHA-256; the index saved the full hash.

    Raises:
        TorchServeError: when TorchServe cannot describe ``model``.
    """
    version = (await torchserve.model(model)).version
    sha256 = sha256 or engine.info.model_sha256
    try:
        same = parse_version(version).same_weights(sha256)
    except ValueError:
        same = False
    if same:
        return None
    what = "run" if built_by is None else "encoder"
    return (f"TorchServe serves {model!r} version {version}, but the index was built with the "
            f"weights {sha256[:8]} from {built_by or engine.info.run}: rebuild the index from "
            f"the served {what} (`make index`), or archive that {what} (`make archive`) and "
            "restart (`make serve`)")


def _response(engine: SearchEngine, result, embedded_by: str | None) -> SearchResponse:
    return SearchResponse(retriever=result.retriever, personalised=result.personalised,
                          embedded_by=embedded_by, took_ms=round(result.took_ms, 3),
                          index=engine.generation.name,
                          results=[_hit(hit) for hit in result.hits])


def _hit(hit: Hit) -> SearchHit:
    url = f"/listings/{hit.id}"
    return SearchHit(id=hit.id, title=hit.title, price=hit.price, location=hit.location,
                     category=hit.category, score=hit.score, matched=hit.matched,
                     dense_rank=hit.dense_rank, dense_score=hit.dense_score,
                     lexical_rank=hit.lexical_rank, lexical_score=hit.lexical_score,
                     text_dense_rank=hit.text_dense_rank, text_dense_score=hit.text_dense_score,
                     url=url, image_url=f"{url}/image")
