"""Buyer sessions and their events in one SQLite file (``AICORE_STATE_DIR``/sessions.db, WAL).

What is stored, per session: an opaque random id (``secrets.token_urlsafe``), when it was created
and last seen, and its events -- ``view`` (a listing opened), ``impression`` (the listings a page
showed, in rank order, with the query and where: search or feed) and ``click`` (one of them, with
its 1-based rank). No IP address, user agent or account is stored: a session is only its id.

Bounds: a session keeps its latest ``max_events`` events (older ones are dropped as new ones
arrive), and everything of a session not seen for ``retention_s`` is deleted by :meth:`sweep`,
which runs at start and at most every :data:`SWEEP_EVERY_S` while events arrive. :meth:`erase`
deletes a session's events at once (``DELETE /me/history``).

Durability: every write is one transaction with ``synchronous=FULL``: once ``POST /events`` or
``DELETE /me/history`` has answered, the write survives a crash of the proxy or the machine.
"""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from common.sqlite import connect_durable

SESSIONS_FILE = "sessions.db"
SESSION_COOKIE = "aicore_session"  # the page's session (HttpOnly, SameSite=Lax)
SESSION_HEADER = "X-Session"  # an API client's session; "new" asks for one
SESSION_ID = re.compile(r"[A-Za-z0-9_-]{32}")  # secrets.token_urlsafe(24): 24 random bytes
MAX_EVENTS = 500
RETENTION_S = 30 * 24 * 3600.0
SWEEP_EVERY_S = 3600.0
POPULAR_CACHE_S = 60.0  # popularity is a GROUP BY over every session: recomputed at most this often
EVENT_TYPES = ("view", "impression", "click")

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,          -- unix seconds
    seen REAL NOT NULL              -- last request that used it
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    session TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    at REAL NOT NULL,
    type TEXT NOT NULL,             -- view | impression | click
    source TEXT,                    -- search | feed | similar | listing
    query TEXT,
    ranker TEXT,                    -- what ranked the impression (e.g. fused, feed-mmr)
    listing TEXT,                   -- view, click
    rank INTEGER,                   -- click: 1-based rank in its impression
    shown TEXT                      -- impression: JSON list of listing ids, in rank order
);
CREATE INDEX IF NOT EXISTS events_by_session ON events(session, seq);
CREATE INDEX IF NOT EXISTS events_by_time ON events(at);
"""


@dataclass
class Event:
    """One thing a session did. ``shown`` for impressions, ``listing`` for views and clicks."""

    type: str
    source: str | None = None
    query: str | None = None
    ranker: str | None = None
    listing: str | None = None
    rank: int | None = None
    shown: list[str] = field(default_factory=list)
    at: float | None = None  # set by the store when None
    session: str | None = None  # set when read back
    seq: int | None = None


class SessionStore:
    """Sessions and events; thread-safe (one connection behind a lock: writes are tiny)."""

    def __init__(self, path: Path, max_events: int = MAX_EVENTS,
                 retention_s: float = RETENTION_S, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_events, self.retention_s, self.clock = max_events, retention_s, clock
        self._db = connect_durable(self.path, busy_timeout_s=5.0)
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()
        self._swept = 0.0
        self._popular: tuple[float, list[tuple[str, int]]] | None = None
        self.sweep()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- sessions -------------------------------------------------------------------------------

    def new_session(self) -> str:
        """A fresh session id (24 random bytes, URL-safe)."""
        session = secrets.token_urlsafe(24)
        now = self.clock()
        with self._lock:
            self._db.execute("INSERT INTO sessions VALUES (?, ?, ?)", (session, now, now))
        return session

    def exists(self, session: str | None) -> bool:
        """Whether ``session`` is a live session (a malformed or swept id is not)."""
        if not session or not SESSION_ID.fullmatch(session):
            return False
        with self._lock:
            row = self._db.execute("SELECT seen FROM sessions WHERE id = ?", (session,)).fetchone()
        return row is not None and row["seen"] >= self.clock() - self.retention_s

    # --- events ---------------------------------------------------------------------------------

    def record(self, session: str, events: Sequence[Event]) -> None:
        """Append ``events`` to ``session`` (one transaction), then drop its oldest beyond
        ``max_events``."""
        now = self.clock()
        rows = [(session, event.at if event.at is not None else now, event.type, event.source,
                 event.query, event.ranker, event.listing, event.rank,
                 json.dumps(event.shown) if event.type == "impression" else None)
                for event in events]
        with self._lock, self._transaction():
            self._db.executemany(
                "INSERT INTO events (session, at, type, source, query, ranker, listing, rank, "
                "shown) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            self._db.execute("UPDATE sessions SET seen = ? WHERE id = ?", (now, session))
            self._db.execute(
                "DELETE FROM events WHERE session = ? AND seq <= (SELECT seq FROM events WHERE "
                "session = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                (session, session, self.max_events))
        if now - self._swept > SWEEP_EVERY_S:
            self.sweep()

    def views(self, session: str | None, limit: int) -> list[str]:
        """The listings ``session`` opened, most recent first, each once, at most ``limit``."""
        if not session:
            return []
        with self._lock:
            rows = self._db.execute(
                "SELECT listing, MAX(seq) AS last FROM events WHERE session = ? AND type = 'view' "
                "GROUP BY listing ORDER BY last DESC LIMIT ?", (session, limit)).fetchall()
        return [row["listing"] for row in rows]

    def history(self, session: str) -> list[Event]:
        """Every stored event of ``session``, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM events WHERE session = ? ORDER BY seq",
                                    (session,)).fetchall()
        return [_event(row) for row in rows]

    def erase(self, session: str) -> int:
        """Delete every event of ``session`` (the id itself stays valid); how many were deleted."""
        with self._lock, self._transaction():
            deleted = self._db.execute("DELETE FROM events WHERE session = ?", (session,)).rowcount
        self._popular = None
        return deleted

    def events(self, since: float | None = None) -> Iterator[Event]:
        """Every stored event (of every session), by session then time: the click log."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM events WHERE at >= ? ORDER BY session, seq",
                (since or 0.0,)).fetchall()
        return (_event(row) for row in rows)

    def popular(self, limit: int) -> list[tuple[str, int]]:
        """The listings most viewed or clicked by distinct sessions in the retention period,
        with their counts, most first (cached for :data:`POPULAR_CACHE_S`)."""
        now = self.clock()
        if self._popular is None or now - self._popular[0] > POPULAR_CACHE_S:
            with self._lock:
                rows = self._db.execute(
                    "SELECT listing, COUNT(DISTINCT session) AS n FROM events WHERE type IN "
                    "('view', 'click') GROUP BY listing ORDER BY n DESC, listing LIMIT 1000"
                ).fetchall()
            self._popular = (now, [(row["listing"], row["n"]) for row in rows])
        return self._popular[1][:limit]

    def sweep(self) -> int:
        """Delete sessions not seen, and events not made, within the retention period; how many
        events went."""
        cutoff = self.clock() - self.retention_s
        with self._lock, self._transaction():
            gone = self._db.execute("DELETE FROM events WHERE at < ? OR session IN (SELECT id "
                                    "FROM sessions WHERE seen < ?)", (cutoff, cutoff)).rowcount
            self._db.execute("DELETE FROM sessions WHERE seen < ?", (cutoff,))
        self._swept = self.clock()
        return gone

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    """``BEGIN IMMEDIATE`` .. ``COMMIT`` (``ROLLBACK`` on an exception)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: type | None, *_: object) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")


def _event(row: sqlite3.Row) -> Event:
    return Event(type=row["type"], source=row["source"], query=row["query"],
                 ranker=row["ranker"], listing=row["listing"], rank=row["rank"],
                 shown=json.loads(row["shown"]) if row["shown"] else [], at=row["at"],
                 session=row["session"], seq=row["seq"])
