"""Buyers' routes: ``GET /feed``, ``POST /events``, ``GET`` and ``DELETE /me/history``.

The session comes from the ``aicore_session`` cookie or the ``X-Session`` header
(:mod:`proxy.sessions`); the store, the feed and the event checks live in :mod:`buyers`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from buyers import feed as feeds
from buyers.events import EventBody, EventUnknown, check_listings, to_event
from buyers.store import Event
from proxy.deps import Engine, error_doc
from proxy.search_routes import SEARCH_ERRORS
from proxy.search_schemas import SearchHit
from proxy.sessions import Session, session_views
from search.limits import MAX_K, MAX_VIEWED

router = APIRouter(tags=["buyers"])
POPULAR = 200  # popular listings the cold feed chooses from


class FeedHit(SearchHit):
    """A feed listing: a search hit's fields and why it is in the feed."""

    reason: str = Field(description="\"like <title of a listing you viewed>\", \"popular\" "
                        "(viewed or clicked by many sessions) or \"new\" (added last)")


class FeedResponse(BaseModel):
    personalised: bool = Field(description="the session's views chose the listings")
    ranker: str = Field(description="what ranked the feed; report it with impressions and clicks")
    index: str = Field(description="the index generation that answered")
    results: list[FeedHit]


class EventAnswer(BaseModel):
    recorded: str = Field(description="the type of the event stored")


class HistoryResponse(BaseModel):
    views: list[str] = Field(description="listings the session opened, most recent first")
    events: list[dict[str, Any]] = Field(description="every stored event, oldest first")


class Erased(BaseModel):
    erased: int = Field(description="events deleted (views, impressions, clicks)")


SESSION_503 = error_doc("No index, or the sessions database cannot be opened",
                        "the sessions database cannot be opened (...): make AICORE_STATE_DIR "
                        "a writable directory")


@router.get("/feed", response_model=FeedResponse, responses={**SEARCH_ERRORS, 503: SESSION_503},
            summary="Listings for you")
async def feed(engine: Engine, session: Session, k: Annotated[int, Query(
        ge=1, le=MAX_K, description=f"listings to return, 1..{MAX_K}")] = 10) -> FeedResponse:
    """Listings near the session's recent views (decayed by recency), none already viewed,
    diversified by maximal marginal relevance; each with its `reason`. A session without views
    gets popular and new listings."""
    views = await session_views(session, engine)
    popular = [listing for listing, _ in await session.run(session.store().popular, POPULAR)]
    items = await run_in_threadpool(feeds.feed, engine, views, popular, k)
    return FeedResponse(personalised=bool(views), ranker=feeds.RANKER,
                        index=engine.generation.name, results=[_feed_hit(i) for i in items])


@router.post("/events", response_model=EventAnswer, status_code=202,
             responses={400: error_doc("The body cannot be parsed (not UTF-8 JSON)",
                                       "There was an error parsing the body"),
                        503: SESSION_503},
             summary="Report an impression or a click")
async def post_event(engine: Engine, session: Session, body: Annotated[EventBody, Body(
        examples=[{"type": "impression", "listings": ["a", "b"], "query": "sofa",
                   "source": "search", "ranker": "fused"},
                  {"type": "click", "listing": "b", "rank": 2, "query": "sofa"}])]
                     ) -> EventAnswer:
    """Store one event of the session (created if the request has none): an impression (the
    listings shown, in rank order) or a click (one of them and its 1-based rank). A malformed
    event, or a listing the index does not hold, is a 422 whose `loc` names the field. Stored without
    any IP address; kept `AICORE_SESSION_RETENTION_DAYS` (docs/buyers.md)."""
    try:
        check_listings(engine, body)
    except EventUnknown as exc:  # the shape of every other 422: the field's path and why
        raise RequestValidationError([{"type": "unknown_listing", "loc": ("body", *exc.loc),
                                       "msg": str(exc), "input": exc.listing}]) from None
    session_id = await session.ensure()
    await session.run(session.store().record, session_id, [to_event(body)])
    return EventAnswer(recorded=body.type)


@router.get("/me/history", response_model=HistoryResponse, responses={503: SESSION_503},
            summary="What is stored about this session")
async def history(session: Session) -> HistoryResponse:
    session_id = await session.current()
    if session_id is None:
        return HistoryResponse(views=[], events=[])
    store = session.store()
    events = await session.run(store.history, session_id)
    return HistoryResponse(views=await session.run(store.views, session_id, MAX_VIEWED),
                           events=[_event_json(event) for event in events])


@router.delete("/me/history", response_model=Erased, responses={503: SESSION_503},
               summary="Erase this session's history")
async def erase(session: Session) -> Erased:
    """Delete every view, impression and click of the session at once (durably: it stays
    deleted through a crash). The feed becomes the non-personal one."""
    session_id = await session.current()
    if session_id is None:
        return Erased(erased=0)
    return Erased(erased=await session.run(session.store().erase, session_id))


def _feed_hit(item: feeds.FeedItem) -> FeedHit:
    url = f"/listings/{item.id}"
    personal = item.reason.startswith("like ")
    return FeedHit(id=item.id, title=item.title, price=item.price, location=item.location,
                   category=item.category, score=item.score,
                   matched=["dense"] if personal else [],
                   dense_score=item.score if personal else None, url=url,
                   image_url=f"{url}/image", reason=item.reason)


def _event_json(event: Event) -> dict[str, Any]:
    fields = {"type": event.type, "at": event.at, "source": event.source, "query": event.query,
              "ranker": event.ranker, "listing": event.listing, "rank": event.rank,
              "listings": event.shown or None}
    return {key: value for key, value in fields.items() if value is not None}
