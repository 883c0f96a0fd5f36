"""A request's buyer session: the ``aicore_session`` cookie, or the ``X-Session`` header.

The page's session is an ``HttpOnly``, ``SameSite=Lax`` cookie (``Secure`` when the request came
over https), so page scripts never read it and other sites' forms and scripts never send it with
a POST or DELETE. An API client may send the id as ``X-Session`` instead (``X-Session: new``
asks for one); the answer to a request that sent the header carries the session's id in the same
header. A session is created lazily, by the first request that writes to it (opening a listing,
``POST /events``); an unknown, malformed or expired id is never adopted: a new one is issued
(no session fixation). The store opens on first use (``AICORE_STATE_DIR``/sessions.db).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Depends, HTTPException, Request, Response
from starlette.concurrency import run_in_threadpool

from buyers.feed import held
from buyers.store import SESSION_COOKIE, SESSION_HEADER, SESSIONS_FILE, Event, SessionStore
from proxy.settings import Settings
from search import SearchEngine
from search.limits import MAX_VIEWED

logger = logging.getLogger(__name__)

COOKIE = SESSION_COOKIE
HEADER = SESSION_HEADER
_open_lock = threading.Lock()
T = TypeVar("T")


def open_store(app_state: object, settings: Settings) -> SessionStore:
    """The app's session store, opened on first use.

    Raises:
        HTTPException: 503 when the state directory or its database cannot be opened.
    """
    store = getattr(app_state, "sessions", None)
    if store is not None:
        return store
    with _open_lock:
        store = getattr(app_state, "sessions", None)
        if store is None:
            path = settings.state_dir / SESSIONS_FILE
            try:
                store = SessionStore(path, settings.session_max_events,
                                     settings.session_retention_days * 24 * 3600)
            except (OSError, sqlite3.Error) as exc:
                logger.error("cannot open the sessions database %s: %r", path, exc)
                raise HTTPException(503, f"the sessions database cannot be opened ({exc}): make "
                                    "AICORE_STATE_DIR a writable directory; the proxy's log has "
                                    "the details", headers={"Retry-After": "30"}) from None
            app_state.sessions = store  # type: ignore[attr-defined]
    return store


class BuyerSession:
    """The session a request names (if any is live), creating one on :meth:`ensure`."""

    def __init__(self, request: Request, response: Response) -> None:
        self.request, self.response = request, response
        self.settings: Settings = request.app.state.settings
        self.via_header = HEADER in request.headers
        self.given = request.headers.get(HEADER) if self.via_header else request.cookies.get(COOKIE)
        self._id: str | None = None
        self._checked = False

    def store(self) -> SessionStore:
        return open_store(self.request.app.state, self.settings)

    async def run(self, method: Callable[..., T], *args: object) -> T:
        """``method(*args)`` (a method of :meth:`store`) in a worker thread; a database error is
        a 503 naming the sessions database, not the search index's."""
        try:
            return await run_in_threadpool(method, *args)
        except (OSError, sqlite3.Error) as exc:
            logger.error("sessions database error in %s: %r", method.__name__, exc)
            raise HTTPException(503, f"the sessions database failed ({type(exc).__name__}): "
                                "check AICORE_STATE_DIR (disk full, permissions); the proxy's "
                                "log has the details", headers={"Retry-After": "30"}) from None

    async def current(self) -> str | None:
        """The live session the request names, else None (nothing is created)."""
        if not self._checked:
            self._checked = True
            if self.given and await self.run(self.store().exists, self.given):
                self._id = self.given
                self._announce(created=False)
        return self._id

    async def ensure(self) -> str:
        """The request's session, a new one when it names none that is live."""
        session = await self.current()
        if session is None:
            session = await self.run(self.store().new_session)
            self._id = session
        self._announce(created=True)  # a write renews the cookie's lifetime
        return session

    def _announce(self, created: bool) -> None:
        """Tell the client its session: the header it used, or the cookie (set when created or
        renewed by a write)."""
        assert self._id is not None
        if self.via_header:
            self.response.headers[HEADER] = self._id
        elif created:
            self.response.set_cookie(
                COOKIE, self._id, max_age=int(self.settings.session_retention_days * 24 * 3600),
                path="/", httponly=True, samesite="lax",
                secure=self.request.url.scheme == "https")


async def get_session(request: Request, response: Response) -> BuyerSession:
    return BuyerSession(request, response)


Session = Annotated[BuyerSession, Depends(get_session)]


async def session_views(session: BuyerSession, engine: SearchEngine) -> list[str]:
    """The session's recent views that the index still holds, most recent first (none when the
    request names no live session)."""
    session_id = await session.current()
    if session_id is None:
        return []
    views = await session.run(session.store().views, session_id, MAX_VIEWED)
    return held(engine, views)


async def record_view(session: BuyerSession, listing_id: str) -> None:
    """Store that the session opened ``listing_id``; a store that fails loses the view, not the
    answer (logged)."""
    try:
        session_id = await session.ensure()
        await session.run(session.store().record, session_id,
                          [Event(type="view", source="listing", listing=listing_id)])
    except HTTPException as exc:
        logger.warning("a view of %r was not recorded: %s", listing_id, exc.detail)
