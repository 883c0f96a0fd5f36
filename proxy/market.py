"""What the sellers' routes depend on: the store, the photo store, rate limits, the seller of a
request, and the models that embed and classify a new listing.

The store is opened on first use (an app that never sees a seller creates no file). Its change
feed reaches search through :class:`StoreFeed`, the :class:`search.live.LiveFeed` of this process's
overlay (attached by :func:`make_live`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Annotated

import numpy as np
from fastapi import Depends, HTTPException, Request, status
from starlette.concurrency import run_in_threadpool

from common.catalogue import IMAGE, LISTING, TEXT
from common.codec import ModelRequest
from market.photos import PhotoStore
from market.ratelimit import RateLimiter, retry_after
from market.store import MarketStore, StoredListing
from proxy.search_routes import predict_text, query_vector
from proxy.settings import Settings
from proxy.torchserve import TorchServeClient
from search import SearchEngine
from search.live import LiveListing, LiveOverlay
from search.vectors import normalise

logger = logging.getLogger(__name__)
SUGGESTIONS = 5  # categories in a 201's "suggested"


class Market:
    """The store, the photos and the limits of one proxy process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.registrations = RateLimiter(settings.registrations_per_minute / 60,
                                         settings.registration_burst)
        self.writes = RateLimiter(settings.writes_per_second, settings.write_burst)
        self._store: MarketStore | None = None
        self._photos: PhotoStore | None = None
        self._lock = threading.Lock()

    @property
    def store(self) -> MarketStore:
        if self._store is None:
            with self._lock:
                if self._store is None:
                    self._photos = PhotoStore(self.settings.state_dir / "photos")
                    self._store = MarketStore.open(self.settings.state_dir)
        return self._store

    @property
    def photos(self) -> PhotoStore:
        self.store  # noqa: B018 -- opens both
        assert self._photos is not None
        return self._photos

    def exists(self) -> bool:
        """Whether a store was ever written (reading an absent one creates nothing)."""
        return self._store is not None or (self.settings.state_dir / "market.db").is_file()

    def sweep(self) -> int:
        """Delete photo files no listing names (a crash between a photo's write and its row's
        commit leaves one); at start."""
        if not self.exists():
            return 0
        return self.photos.sweep(self.store.photos_in_use(), self.settings.photo_sweep_grace_s)


class StoreFeed:
    """The store's change feed as :class:`search.live.LiveFeed`: sold listings leave search."""

    def __init__(self, market: Market) -> None:
        self.market = market

    def head(self) -> int:
        return self.market.store.head() if self.market.exists() else 0

    def changes(self, after: int) -> tuple[int, list[LiveListing], list[str]]:
        head, present, removed = self.market.store.changes(after)
        active = [self._live(listing) for listing in present if listing.status == "active"]
        gone = removed + [listing.id for listing in present if listing.status != "active"]
        return head, active, gone

    def _live(self, listing: StoredListing) -> LiveListing:
        vector = None if listing.vector is None else np.frombuffer(listing.vector, np.float32)
        text_vector = (None if listing.text_vector is None
                       else np.frombuffer(listing.text_vector, np.float32))
        return LiveListing(listing.id, listing.title, listing.description, listing.price,
                           listing.location, listing.category, tuple(listing.photos),
                           tuple(self.market.photos.path(name) for name in listing.photos),
                           vector, listing.model, text_vector, listing.text_model)


def make_live(market: Market) -> LiveOverlay:
    return LiveOverlay(StoreFeed(market))


async def get_market(request: Request) -> Market:
    return request.app.state.market


MarketDep = Annotated[Market, Depends(get_market)]


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def limit(limiter: RateLimiter, key: str, what: str) -> None:
    """429 with ``Retry-After`` when ``key`` is over ``limiter``'s rate."""
    wait = limiter.take(key)
    if wait > 0:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS,
                            f"too many {what}: retry in {retry_after(wait)} s",
                            headers={"Retry-After": retry_after(wait)})


def _unauthorised(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail,
                         headers={"WWW-Authenticate": 'Bearer realm="sellers"'})


async def current_seller(request: Request, market: MarketDep) -> str:
    """The seller whose token the request carries (``Authorization: Bearer <token>``); 401
    without one or with one no seller has."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorised("this needs a seller token: send `Authorization: Bearer <token>` "
                            "(POST /sellers gives one)")
    seller = await run_in_threadpool(market.store.seller_of_token, token.strip())
    if seller is None:
        raise _unauthorised("the seller token is not valid (rotated, or mistyped): use the "
                            "latest token POST /sellers or POST /sellers/me/token gave")
    return seller


Seller = Annotated[str, Depends(current_seller)]


# --- the models: a listing's vector and its category ---------------------------------------------

def embedding_requests(engine: SearchEngine, title: str, description: str,
                       photos: list[bytes]) -> list[ModelRequest]:
    """The TorchServe requests whose mean embedding is the listing's vector, input for input as
    :mod:`search.embedders` builds the index: a photo index embeds each photo, a text index the
    title + description, an image + text index each photo with the text (the text alone without
    a photo). Empty: nothing to embed (no photo on a photo index)."""
    reads = engine.modalities
    if IMAGE in reads and TEXT in reads:
        return ([ModelRequest(image=photo, title=title, description=description, embedding=True)
                 for photo in photos]
                or [ModelRequest(title=title, description=description, embedding=True)])
    if IMAGE in reads:
        return [ModelRequest(image=photo, embedding=True) for photo in photos]
    return [ModelRequest(title=title, description=description, embedding=True)]


async def listing_vector(torchserve: TorchServeClient, engine: SearchEngine, model: str,
                         title: str, description: str, photos: list[bytes]) -> np.ndarray | None:
    """The listing's unit vector from ``model`` (the index's), or None when it has nothing the
    index's model reads."""
    requests = embedding_requests(engine, title, description, photos)
    if not requests:
        return None
    predictions = await asyncio.gather(*(torchserve.predict(model, r) for r in requests))
    vectors = [query_vector(p.embedding, engine, model) for p in predictions]  # (D,) each
    return normalise(np.mean(vectors, axis=0))


async def listing_text_vector(torchserve: TorchServeClient, engine: SearchEngine, title: str,
                              description: str) -> np.ndarray | None:
    """The listing's title + description by the index's text encoder (the served ``query``
    model), as the index build embedded every listing's; None when the index has no text
    vectors. 503 when the encoder is not served (the index's text search needs it too)."""
    encoder = engine.info.text_encoder
    if encoder is None or engine.text_vectors is None:
        return None
    prediction = await predict_text(torchserve, encoder.served_model, title, description)
    return query_vector(prediction.embedding, engine, encoder.served_model, engine.text_vectors.dim)


async def stored_vectors(torchserve: TorchServeClient, engine: SearchEngine, model: str,
                         title: str, description: str, photos: list[bytes] | None,
                         text: bool = True) -> dict[str, bytes | str | None]:
    """The listing's vectors as the store keeps them (float32 bytes), each with the SHA-256 of
    the weights that made it: ``vector``/``model`` by the index's ``model`` (not asked when
    ``photos`` is None), ``text_vector``/``text_model`` by the index's text encoder (an index
    with text vectors; not asked when ``text`` is False). The served weights are the caller's
    to check."""
    vectors: dict[str, bytes | str | None] = {}
    if photos is not None:
        vector = await listing_vector(torchserve, engine, model, title, description, photos)
        vectors["vector"] = None if vector is None else vector.astype("float32").tobytes()
        vectors["model"] = None if vector is None else engine.info.model_sha256
    if not text:
        return vectors
    text_vector = await listing_text_vector(torchserve, engine, title, description)
    if text_vector is not None:
        vectors["text_vector"] = text_vector.astype("float32").tobytes()
        vectors["text_model"] = engine.info.text_encoder.sha256
    return vectors


async def suggest(torchserve: TorchServeClient, settings: Settings, title: str,
                  description: str, photos: list[bytes]) -> dict[str, float]:
    """The most likely categories with their probabilities, from the listing model (photo +
    text), else the text model, else an image model (the photo); {} when none is served."""
    for kind in (LISTING, TEXT, IMAGE):
        model = settings.model_of_kind(kind)
        if model is None or (kind == IMAGE and not photos):
            continue
        photo = photos[0] if photos and kind != TEXT else None
        text = {} if kind == IMAGE else {"title": title, "description": description}
        prediction = await torchserve.predict(model, ModelRequest(image=photo, **text))
        ranked = sorted((prediction.probabilities or {}).items(), key=lambda kv: -kv[1])
        return {name: round(float(p), 4) for name, p in ranked[:SUGGESTIONS]}
    return {}
