"""The marketplace's source of truth: sellers, their listings and the change feed, in SQLite.

``state/market.db`` (``AICORE_STATE_DIR``) in WAL mode with ``synchronous=FULL``: a transaction
that returned from ``COMMIT`` is in the fsynced write-ahead log, so it survives a ``kill -9`` of
the process and a power cut. A listing's row, its vector, the change row that tells every proxy
process about it and the answer of its ``Idempotency-Key`` are written in ONE transaction, so a
crash leaves all of them or none. The photo files a row names are written (and fsynced) before
that transaction starts (:mod:`market.photos`).

Every write appends to ``changes`` (``seq`` strictly increasing in commit order: SQLite has one
writer at a time). A reader that applied everything up to ``seq`` reads what changed since with
:meth:`MarketStore.changes`; the search overlay of each proxy process does exactly that.

One connection per thread (SQLite connections must not be shared by concurrent threads); several
processes may open the same file (WAL: readers never block the writer).
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from common.sqlite import connect_durable
from market import tokens

BUSY_TIMEOUT_MS = 10_000  # a writer waits this long for another process's transaction
STATUSES = ("active", "sold")
SCHEMA = """
CREATE TABLE IF NOT EXISTS sellers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    token_sha256 TEXT NOT NULL UNIQUE,  -- the token itself is never stored
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS listings (
    id TEXT PRIMARY KEY,
    seller_id TEXT NOT NULL REFERENCES sellers(id),
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    price REAL NOT NULL,
    location TEXT NOT NULL,
    category TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'sold')),
    photos TEXT NOT NULL,       -- JSON list of photo file names (content hashes), main photo first
    vector BLOB,                -- float32 unit vector of the index's model; NULL: none (lexical only)
    model TEXT,                 -- SHA-256 of the weights that computed vector
    created REAL NOT NULL,
    updated REAL NOT NULL,
    version INTEGER NOT NULL,   -- 1 at creation, +1 per edit
    text_vector BLOB,           -- float32 unit vector of the title + description by the index's
                                -- text encoder (an index with text vectors); NULL: none
    text_model TEXT             -- SHA-256 of the encoder's weights that computed text_vector
);
CREATE INDEX IF NOT EXISTS listings_seller ON listings(seller_id);
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    listing_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency (
    seller_id TEXT NOT NULL,
    key TEXT NOT NULL,
    answer TEXT NOT NULL,       -- the JSON body of the first answer
    created REAL NOT NULL,
    PRIMARY KEY (seller_id, key)
);
"""
FIELDS = ("title", "description", "price", "location", "category", "status")
# Columns added to ``listings`` after stores were first written: (name, type), added in order to
# a store that lacks them when it is opened (SQLite's ADD COLUMN: no rewrite, old rows NULL).
ADDED_COLUMNS = (("text_vector", "BLOB"), ("text_model", "TEXT"))


@dataclass
class StoredListing:
    """One row of ``listings``."""

    id: str
    seller_id: str
    title: str
    description: str
    price: float
    location: str
    category: str
    status: str
    photos: list[str]
    vector: bytes | None
    model: str | None
    created: float
    updated: float
    version: int
    text_vector: bytes | None = None
    text_model: str | None = None

    def public(self) -> dict:
        """What the seller's API shows (no vector)."""
        return {name: getattr(self, name) for name in
                ("id", "title", "description", "price", "location", "category", "status",
                 "created", "updated", "version")} | {"photos": len(self.photos)}


@dataclass
class NewListing:
    """What ``create_listing`` writes (the id is made here)."""

    title: str
    description: str
    price: float
    location: str
    category: str
    photos: list[str] = field(default_factory=list)
    vector: bytes | None = None
    model: str | None = None
    text_vector: bytes | None = None
    text_model: str | None = None


class MarketStore:
    """``market.db``: open (and create) it with :meth:`open`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._db().executescript(SCHEMA)  # idempotent; executescript commits on its own
        self._add_columns()

    def _add_columns(self) -> None:
        """Bring a store written by an earlier release up to :data:`ADDED_COLUMNS`; a current
        one is only read (no write lock taken each time a process opens the store)."""
        if not self._missing_columns(self._db()):
            return
        with self._write() as db:  # one writer: two processes opening an old store add once
            for name, kind in self._missing_columns(db):
                db.execute(f"ALTER TABLE listings ADD COLUMN {name} {kind}")

    @staticmethod
    def _missing_columns(db: sqlite3.Connection) -> list[tuple[str, str]]:
        have = {row["name"] for row in db.execute("PRAGMA table_info(listings)")}
        return [(name, kind) for name, kind in ADDED_COLUMNS if name not in have]

    @classmethod
    def open(cls, state_dir: Path) -> MarketStore:
        Path(state_dir).mkdir(parents=True, exist_ok=True)
        return cls(Path(state_dir) / "market.db")

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = connect_durable(self.path, BUSY_TIMEOUT_MS / 1000)  # the 201 promise
            self._local.db = db
        return db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at its start (IMMEDIATE: no upgrade deadlock)."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # --- sellers -------------------------------------------------------------------------------

    def create_seller(self, name: str) -> tuple[str, str]:
        """A new seller; returns ``(id, token)`` -- the token exists only in this answer."""
        seller_id, token = f"s-{secrets.token_hex(8)}", tokens.new_token()
        with self._write() as db:
            db.execute("INSERT INTO sellers VALUES (?,?,?,?)",
                       (seller_id, name, tokens.digest(token), time.time()))
        return seller_id, token

    def seller_of_token(self, token: str) -> str | None:
        """The seller whose token this is, or None."""
        wanted = tokens.digest(token)
        row = self._db().execute("SELECT id, token_sha256 FROM sellers WHERE token_sha256 = ?",
                                 (wanted,)).fetchone()
        return row["id"] if row is not None and tokens.same(row["token_sha256"], wanted) else None

    def rotate_token(self, seller_id: str) -> str:
        """A new token for ``seller_id``; the old one stops working at this commit."""
        token = tokens.new_token()
        with self._write() as db:
            db.execute("UPDATE sellers SET token_sha256 = ? WHERE id = ?",
                       (tokens.digest(token), seller_id))
        return token

    # --- listings ------------------------------------------------------------------------------

    def answer_of(self, seller_id: str, key: str) -> dict | None:
        """The stored first answer of an ``Idempotency-Key``, or None."""
        row = self._db().execute("SELECT answer FROM idempotency WHERE seller_id = ? AND key = ?",
                                 (seller_id, key)).fetchone()
        return None if row is None else json.loads(row["answer"])

    def create_listing(self, seller_id: str, listing: NewListing, answer: dict,
                       idempotency_key: str | None = None) -> tuple[str, dict]:
        """Insert the listing, its change row and its answer in one transaction.

        ``answer`` is the 201 body without ``id``/``url`` (added here). With an
        ``idempotency_key`` that already has an answer, nothing is written and that answer is
        returned. Returns ``(listing id, answer)``.
        """
        listing_id = f"live-{secrets.token_hex(8)}"
        now = time.time()
        with self._write() as db:
            if idempotency_key is not None:
                row = db.execute("SELECT answer FROM idempotency WHERE seller_id = ? AND key = ?",
                                 (seller_id, idempotency_key)).fetchone()
                if row is not None:
                    first = json.loads(row["answer"])
                    return first["id"], first
            answer = {"id": listing_id, **answer, "url": f"/listings/{listing_id}"}
            db.execute("INSERT INTO listings (id, seller_id, title, description, price, location, "
                       "category, status, photos, vector, model, created, updated, version, "
                       "text_vector, text_model) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                       (listing_id, seller_id, listing.title, listing.description, listing.price,
                        listing.location, listing.category, "active", json.dumps(listing.photos),
                        listing.vector, listing.model, now, now, 1, listing.text_vector,
                        listing.text_model))
            db.execute("INSERT INTO changes (listing_id) VALUES (?)", (listing_id,))
            if idempotency_key is not None:
                db.execute("INSERT INTO idempotency VALUES (?,?,?,?)",
                           (seller_id, idempotency_key, json.dumps(answer), now))
        return listing_id, answer

    def update_listing(self, listing_id: str, changes: dict, vector: bytes | None = None,
                       model: str | None = None, text_vector: bytes | None = None,
                       text_model: str | None = None) -> StoredListing | None:
        """Apply ``changes`` (a subset of :data:`FIELDS`; with a new ``vector`` and
        ``text_vector`` when the text that made them changed) in one transaction with its change
        row; None when the listing is gone (deleted meanwhile)."""
        unknown = set(changes) - set(FIELDS)
        if unknown:
            raise ValueError(f"not listing fields: {sorted(unknown)}")
        vector_sets, vector_values = _vector_columns(vector, model, text_vector, text_model)
        sets = [f"{name} = ?" for name in changes] + vector_sets
        values = list(changes.values()) + vector_values
        with self._write() as db:
            updated = db.execute(
                f"UPDATE listings SET {', '.join(sets + ['updated = ?', 'version = version + 1'])}"
                " WHERE id = ?", [*values, time.time(), listing_id]).rowcount
            if not updated:  # deleted meanwhile: nothing to change, nothing to announce
                return None
            db.execute("INSERT INTO changes (listing_id) VALUES (?)", (listing_id,))
        return self.listing(listing_id)

    def set_vectors(self, listing_id: str, version: int, vector: bytes | None = None,
                    model: str | None = None, text_vector: bytes | None = None,
                    text_model: str | None = None) -> bool:
        """Store vectors made again by other weights (a rebuilt index's) for the listing as it is
        at ``version``: a re-embedding, not an edit, so ``version`` and ``updated`` stay. With its
        change row, so every process's overlay applies it. False when the listing was edited or
        deleted meanwhile (an edit makes its own vectors) or there is nothing to store."""
        sets, values = _vector_columns(vector, model, text_vector, text_model)
        if not sets:
            return False
        with self._write() as db:
            updated = db.execute(f"UPDATE listings SET {', '.join(sets)} WHERE id = ? AND version = ?",
                                 [*values, listing_id, version]).rowcount
            if updated:
                db.execute("INSERT INTO changes (listing_id) VALUES (?)", (listing_id,))
        return bool(updated)

    def delete_listing(self, listing_id: str) -> list[str]:
        """Delete the row (its change row in the same transaction); returns the photo names no
        other listing uses, for the caller to remove after the commit."""
        with self._write() as db:
            row = db.execute("SELECT photos FROM listings WHERE id = ?", (listing_id,)).fetchone()
            if row is None:
                return []
            db.execute("DELETE FROM listings WHERE id = ?", (listing_id,))
            db.execute("INSERT INTO changes (listing_id) VALUES (?)", (listing_id,))
        return [name for name in json.loads(row["photos"]) if not self.photo_in_use(name)]

    def listing(self, listing_id: str) -> StoredListing | None:
        row = self._db().execute("SELECT * FROM listings WHERE id = ?", (listing_id,)).fetchone()
        return None if row is None else _listing(row)

    def listings_of(self, seller_id: str) -> list[StoredListing]:
        rows = self._db().execute("SELECT * FROM listings WHERE seller_id = ? ORDER BY created DESC",
                                  (seller_id,)).fetchall()
        return [_listing(row) for row in rows]

    def all_listings(self, batch: int = 500) -> Iterator[StoredListing]:
        """Every listing in id order, ``batch`` rows per read (no transaction is held between
        reads: a listing created meanwhile with a smaller id is not seen, one deleted is not
        returned after its deletion)."""
        after = ""
        while True:
            rows = self._db().execute("SELECT * FROM listings WHERE id > ? ORDER BY id LIMIT ?",
                                      (after, batch)).fetchall()
            yield from (_listing(row) for row in rows)
            if len(rows) < batch:
                return
            after = rows[-1]["id"]

    def photo_in_use(self, name: str) -> bool:
        # photo names are hex digests + suffix: no LIKE wildcard can be in them
        row = self._db().execute("SELECT 1 FROM listings WHERE photos LIKE ? LIMIT 1",
                                 (f'%"{name}"%',)).fetchone()
        return row is not None

    def photos_in_use(self) -> set[str]:
        rows = self._db().execute("SELECT photos FROM listings").fetchall()
        return {name for row in rows for name in json.loads(row["photos"])}

    # --- the change feed -----------------------------------------------------------------------

    def head(self) -> int:
        """The sequence number of the last committed change (0: none)."""
        row = self._db().execute("SELECT max(seq) FROM changes").fetchone()
        return int(row[0] or 0)

    def changes(self, after: int) -> tuple[int, list[StoredListing], list[str]]:
        """What changed after ``after``: ``(new head, listings as they are now, deleted ids)``.

        Read in one transaction, so the head and the rows are one consistent snapshot.
        """
        db = self._db()
        db.execute("BEGIN")
        try:
            head = int(db.execute("SELECT coalesce(max(seq), 0) FROM changes").fetchone()[0])
            ids = [row[0] for row in db.execute(
                "SELECT DISTINCT listing_id FROM changes WHERE seq > ? AND seq <= ?", (after, head))]
            present: list[StoredListing] = []
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                rows = db.execute(f"SELECT * FROM listings WHERE id IN ({','.join('?' * len(chunk))})",
                                  chunk).fetchall()
                present += [_listing(row) for row in rows]
        finally:
            db.execute("COMMIT")
        found = {listing.id for listing in present}
        return head, present, [listing_id for listing_id in ids if listing_id not in found]


def _vector_columns(vector: bytes | None, model: str | None, text_vector: bytes | None,
                    text_model: str | None) -> tuple[list[str], list]:
    """``SET`` clauses and values for the vectors given (None: that vector stays as stored),
    each with the hash of the weights that made it."""
    sets, values = [], []
    if vector is not None:
        sets += ["vector = ?", "model = ?"]
        values += [vector, model]
    if text_vector is not None:
        sets += ["text_vector = ?", "text_model = ?"]
        values += [text_vector, text_model]
    return sets, values


def _listing(row: sqlite3.Row) -> StoredListing:
    values = dict(row)
    values["photos"] = json.loads(values["photos"])
    return StoredListing(**values)
