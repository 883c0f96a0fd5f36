"""What a page may report with ``POST /events``: impressions and clicks, validated like any input.

- impression: ``{"type": "impression", "listings": [ids in rank order], "query": "sofa",
  "source": "search" | "feed" | "similar", "ranker": "fused"}`` (query and ranker optional);
- click: ``{"type": "click", "listing": id, "rank": 1-based, "query": ..., "source": ...}``
  (query optional; source "search" when a query is given, else "feed").

The shapes are checked by pydantic (a 422 naming the field); :func:`check_listings` then refuses
ids the index does not hold (the same 422, its ``loc`` ``["body", "listings", i]`` or
``["body", "listing"]``), so the log only holds listings that existed when they were shown.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from buyers.store import Event
from search import SearchEngine
from search.limits import MAX_K, MAX_TEXT_CHARS

SOURCES = ("search", "feed", "similar")
MAX_ID_CHARS = 200
ListingId = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)]
Query = Annotated[str | None, Field(None, max_length=MAX_TEXT_CHARS,
                                    description="the query text (none for the feed)")]
Ranker = Annotated[str | None, Field(None, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$",
                                     description="what ranked the list: a search's `retriever`, "
                                                 "the feed's `ranker`")]


class Impression(BaseModel):
    """Listings shown to the buyer, best first."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["impression"]
    listings: list[ListingId] = Field(min_length=1, max_length=MAX_K)
    query: Query = None
    source: Literal["search", "feed", "similar"]
    ranker: Ranker = None


class Click(BaseModel):
    """One shown listing the buyer opened."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["click"]
    listing: ListingId
    rank: int = Field(ge=1, le=MAX_K, description="1-based position in the list it was shown in")
    query: Query = None
    source: Literal["search", "feed", "similar"] | None = None
    ranker: Ranker = None

    @model_validator(mode="after")
    def _default_source(self) -> Click:
        if self.source is None:
            self.source = "search" if self.query else "feed"
        return self


EventBody = Annotated[Impression | Click, Field(discriminator="type")]


class EventUnknown(ValueError):
    """An event names a listing the index does not hold; ``loc`` is the field's path
    (``("listings", 2)`` or ``("listing",)``), as in a validation error."""

    def __init__(self, loc: tuple[str | int, ...], listing: str) -> None:
        field = loc[0] if len(loc) == 1 else f"{loc[0]}[{loc[1]}]"
        super().__init__(f"{field}: no listing {listing!r} in the index; report ids from the "
                         "results you showed")
        self.loc, self.listing = loc, listing


def check_listings(engine: SearchEngine, body: Impression | Click) -> None:
    """Raises :class:`EventUnknown` for the first id of ``body`` the index does not hold."""
    ids = body.listings if isinstance(body, Impression) else [body.listing]
    known = engine.records.position_of(ids)
    live = engine.live
    for i, listing in enumerate(ids):
        if listing not in known and (live is None or live.get(listing) is None):
            raise EventUnknown(("listings", i) if isinstance(body, Impression) else ("listing",),
                               listing)


def to_event(body: Impression | Click) -> Event:
    if isinstance(body, Impression):
        return Event(type="impression", source=body.source, query=body.query,
                     ranker=body.ranker, shown=list(body.listings))
    return Event(type="click", source=body.source, query=body.query, ranker=body.ranker,
                 listing=body.listing, rank=body.rank)
