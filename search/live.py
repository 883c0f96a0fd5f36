"""Live listings: what sellers publish through the proxy, searchable next to the built index.

A built generation never changes, yet a seller's new listing must be found within a second and a
sold one gone as fast. Each proxy process keeps an overlay of the active live listings in memory,
searched with every query and merged into the generation's results by score:

- **dense**: the listings' unit vectors in one growing ``(capacity, D)`` float32 matrix, scanned
  exactly (what FAISS's ``IndexIDMap(IndexFlatIP)`` computes; with ids as matrix rows an add,
  an edit or a removal is one row write). Exact is cheap at the size a live set reaches between
  two builds (50,000 x 384-d is 19 M multiply-adds, a few ms on one core);
- **lexical**: an in-memory SQLite FTS5 table with the generation's tokenizer and BM25 weights;
- **filters**: price, category and place arrays by row, as the generation has.

The overlay is derived data. The store (``market.db``) is the truth and publishes a change feed
(:class:`LiveFeed`: a strictly increasing sequence number per committed write). Before every
search the overlay asks the feed for its head -- one indexed ``max(seq)`` -- and applies what
changed since the last sequence it applied, so a write committed by any process over the same
store is seen by the next query of every process. A new process (or one restarted after a crash)
starts from sequence 0: the overlay is rebuilt from the store, never trusted from memory.

Vectors are comparable only when made by the index's model: the overlay is bound to the model's
weights (``model_sha256``) and uses only the vectors computed with them; a listing whose vector
came from other weights stays findable by text, filters and id until it is re-embedded
(``make reembed``, :mod:`proxy.reembed`). An index with text vectors (a photo index with the
pretrained text encoder's vectors of every listing's title + description) binds the overlay to
the encoder's weights as well: a live listing's text vector, made by the served ``query`` model
at publish, is searched by the text-dense retriever like the generation's, so a new listing
competes on the same three lists as a built one.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from search.places import place_key, split_location
from search.records import FTS_COLUMNS, fts_query

COMPACT_AFTER = 1024  # dead rows tolerated before the matrix and arrays are rebuilt
FTS_SCHEMA = (f"CREATE VIRTUAL TABLE live_fts USING fts5({', '.join(FTS_COLUMNS)}, "
              "tokenize='porter unicode61 remove_diacritics 2')")  # search.records' tokenizer


@dataclass(frozen=True)
class LiveListing:
    """One active live listing as the store holds it now."""

    id: str
    title: str
    description: str
    price: float
    location: str
    category: str
    image_ids: tuple[str, ...]  # photo names (content hashes), the main one first
    image_paths: tuple[Path, ...]  # absolute
    vector: np.ndarray | None  # (D,) unit float32, or None (no photo on a photo index)
    model: str | None  # SHA-256 of the weights that computed ``vector``
    text_vector: np.ndarray | None = None  # (D',) unit float32 by the index's text encoder
    text_model: str | None = None  # SHA-256 of the encoder's weights that computed it


class LiveFeed(Protocol):
    """The store's change feed, as the overlay reads it."""

    def head(self) -> int:
        """The sequence number of the last committed change (0: none yet)."""

    def changes(self, after: int) -> tuple[int, list[LiveListing], list[str]]:
        """Changes after ``after``: ``(new head, active listings as they are now, ids that are no
        longer active -- sold or deleted)``, one consistent snapshot."""


@dataclass
class LiveQuery:
    """What the overlay needs of a :class:`search.engine.SearchRequest`, resolved by the engine."""

    min_price: float | None = None
    max_price: float | None = None
    category: str | None = None  # an exact category name
    near: str | None = None
    exclude: Sequence[str] = ()


class LiveOverlay:
    """The live listings of one process; thread-safe (one lock: writes are rare and short)."""

    def __init__(self, feed: LiveFeed) -> None:
        self.feed = feed
        self.lock = threading.RLock()
        self.model: str | None = None
        self.dim = 0
        self.text_model: str | None = None  # None: the index has no text vectors
        self.text_dim = 0
        self._reset()

    def _reset(self) -> None:
        self.applied = 0  # the last feed sequence applied
        self.rows: dict[str, int] = {}  # listing id -> row
        self.records: list[dict | None] = []  # by row; None: removed
        self.vectors = np.zeros((0, self.dim), np.float32)
        self.has_vector = np.zeros(0, bool)
        self.text_vectors = np.zeros((0, self.text_dim), np.float32)
        self.has_text_vector = np.zeros(0, bool)
        self.active = np.zeros(0, bool)
        self.price = np.zeros(0, np.float64)
        self.category = np.zeros(0, object)
        self.town = np.zeros(0, object)
        self.region = np.zeros(0, object)
        self.fts = sqlite3.connect(":memory:", check_same_thread=False)
        self.fts.execute(FTS_SCHEMA)

    def __len__(self) -> int:
        return int(self.active.sum())

    # --- keeping up with the store -------------------------------------------------------------

    def bind(self, model: str, dim: int, text_model: str | None = None, text_dim: int = 0) -> None:
        """Serve an index of ``model`` (weights SHA-256) with ``dim``-d vectors, and of
        ``text_model``'s ``text_dim``-d text vectors when it has them; other models than before
        start the overlay over from the store."""
        with self.lock:
            if (model, dim, text_model, text_dim) != (self.model, self.dim, self.text_model,
                                                      self.text_dim):
                self.model, self.dim = model, dim
                self.text_model, self.text_dim = text_model, text_dim
                self._reset()

    def catch_up(self) -> int:
        """Apply every change committed since the last one applied; returns how many listings
        changed. Costs one ``max(seq)`` read when nothing did."""
        if self.feed.head() <= self.applied:
            return 0
        with self.lock:
            head, present, removed = self.feed.changes(self.applied)
            for listing in present:
                self._put(listing)
            for listing_id in removed:
                self._remove(listing_id)
            self.applied = max(self.applied, head)
            if len(self.records) - len(self) > max(COMPACT_AFTER, len(self)):
                self._compact()
            return len(present) + len(removed)

    def _put(self, listing: LiveListing) -> None:
        row = self.rows.get(listing.id)
        if row is None:
            row = self._new_row()
            self.rows[listing.id] = row
        usable = (listing.vector is not None and listing.model == self.model
                  and np.shape(listing.vector) == (self.dim,))
        self.has_vector[row] = usable
        self.vectors[row] = listing.vector if usable else 0.0
        usable = (self.text_model is not None and listing.text_vector is not None
                  and listing.text_model == self.text_model
                  and np.shape(listing.text_vector) == (self.text_dim,))
        self.has_text_vector[row] = usable
        self.text_vectors[row] = listing.text_vector if usable else 0.0
        town, region = split_location(listing.location)
        self.price[row], self.category[row] = listing.price, listing.category
        self.town[row], self.region[row] = place_key(town), place_key(region)
        self.active[row] = True
        self.records[row] = {
            "id": listing.id, "title": listing.title, "description": listing.description,
            "price": listing.price, "location": listing.location, "category": listing.category,
            "category_path": listing.category, "image_ids": list(listing.image_ids),
            "image_paths": [str(path) for path in listing.image_paths], "live": True}
        self.fts.execute("DELETE FROM live_fts WHERE rowid = ?", (row,))
        self.fts.execute(f"INSERT INTO live_fts(rowid, {', '.join(FTS_COLUMNS)}) VALUES (?,?,?,?,?)",
                         (row, listing.title, listing.description, listing.category,
                          listing.location))

    def _remove(self, listing_id: str) -> None:
        row = self.rows.pop(listing_id, None)
        if row is None:
            return
        self.active[row] = self.has_vector[row] = self.has_text_vector[row] = False
        self.records[row] = None
        self.fts.execute("DELETE FROM live_fts WHERE rowid = ?", (row,))

    def _new_row(self) -> int:
        row = len(self.records)
        self.records.append(None)
        if row >= len(self.active):  # grow by doubling: amortised O(1) per listing
            size = max(64, 2 * len(self.active))
            for name in ("vectors", "has_vector", "text_vectors", "has_text_vector", "active",
                         "price", "category", "town", "region"):
                setattr(self, name, _grown(getattr(self, name), size))
        return row

    def _compact(self) -> None:
        """Rebuild without the removed rows (rows are renumbered; ids stay)."""
        live = [(record["id"], row) for row, record in enumerate(self.records) if record]
        saved = [(self.records[row], self.vectors[row].copy() if self.has_vector[row] else None,
                  self.text_vectors[row].copy() if self.has_text_vector[row] else None)
                 for _, row in live]
        applied = self.applied
        self._reset()
        self.applied = applied
        for record, vector, text_vector in saved:
            assert record is not None
            self._put(LiveListing(
                record["id"], record["title"], record["description"], record["price"],
                record["location"], record["category"], tuple(record["image_ids"]),
                tuple(Path(p) for p in record["image_paths"]), vector,
                self.model if vector is not None else None, text_vector,
                self.text_model if text_vector is not None else None))

    # --- queries -------------------------------------------------------------------------------

    def mask(self, query: LiveQuery) -> np.ndarray:
        """``(rows,)`` bool: the active live listings the filters allow."""
        rows = len(self.records)
        mask = self.active[:rows].copy()
        if query.min_price is not None:
            mask &= self.price[:rows] >= query.min_price
        if query.max_price is not None:
            mask &= self.price[:rows] <= query.max_price
        if query.category is not None:
            mask &= self.category[:rows] == query.category
        if query.near:
            town, region = split_location(query.near)
            towns, regions = self.town[:rows], self.region[:rows]
            if region:
                mask &= (towns == place_key(town)) & (regions == place_key(region))
            else:
                mask &= (towns == place_key(town)) | (regions == place_key(town))
        for listing_id in query.exclude:
            if listing_id in self.rows:
                mask[self.rows[listing_id]] = False
        return mask

    def dense(self, vector: np.ndarray, depth: int, mask: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, cosine scores)`` of the ``depth`` nearest allowed live listings by the
        index's model, best first."""
        return _nearest(self.vectors, self.has_vector, vector, depth, mask)

    def text_dense(self, vector: np.ndarray, depth: int, mask: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
        """The same by the text encoder's vectors (none when the index has no text vectors)."""
        return _nearest(self.text_vectors, self.has_text_vector, vector, depth, mask)

    def lexical(self, text: str, depth: int, mask: np.ndarray, weights: Sequence[float],
                common: frozenset[str] = frozenset()) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, -bm25)`` of the best allowed live listings for ``text``, best first."""
        query = fts_query(text, common)
        if query is None:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        columns = ", ".join(str(float(w)) for w in weights)  # floats only: nothing user-given
        found, scores = [], []
        for row, score in self.fts.execute(
                f"SELECT rowid, bm25(live_fts, {columns}) AS s FROM live_fts WHERE live_fts "
                "MATCH ? ORDER BY s", (query,)):
            if row < len(mask) and mask[row]:
                found.append(row)
                scores.append(-score)
                if len(found) >= depth:
                    break
        return np.array(found, np.int64), np.array(scores, np.float32)

    def fetch(self, rows: Sequence[int]) -> list[dict | None]:
        """The records at ``rows`` (None where a listing was removed meanwhile)."""
        with self.lock:
            return [self.records[int(row)] if int(row) < len(self.records) else None
                    for row in rows]

    def get(self, listing_id: str) -> dict | None:
        with self.lock:
            row = self.rows.get(listing_id)
            return None if row is None else self.records[row]

    def vector(self, listing_id: str) -> np.ndarray | None:
        with self.lock:
            row = self.rows.get(listing_id)
            return None if row is None or not self.has_vector[row] else self.vectors[row].copy()

    def text_vector(self, listing_id: str) -> np.ndarray | None:
        with self.lock:
            row = self.rows.get(listing_id)
            return (None if row is None or not self.has_text_vector[row]
                    else self.text_vectors[row].copy())

    def categories(self) -> set[str]:
        with self.lock:
            return {str(c) for c in self.category[:len(self.records)][self.active[:len(self.records)]]}


def merge(base: tuple[np.ndarray, np.ndarray] | None, live: tuple[np.ndarray, np.ndarray],
          offset: int, depth: int) -> tuple[np.ndarray, np.ndarray] | None:
    """One ranked ``(positions, scores)`` list of a retriever's generation and live results
    (live rows become positions ``offset + row``), best score first, cut at ``depth``."""
    if base is None:
        return None
    positions = np.concatenate([base[0], live[0] + offset])
    scores = np.concatenate([base[1], live[1]]).astype(np.float32)
    order = np.argsort(-scores, kind="stable")[:depth]  # stable: ties keep the generation first
    return positions[order].astype(np.int64), scores[order]


def _nearest(vectors: np.ndarray, has: np.ndarray, vector: np.ndarray, depth: int,
             mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows = np.flatnonzero(mask & has[:len(mask)])
    if len(rows) == 0 or depth <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    scores = vectors[rows] @ np.asarray(vector, np.float32)  # (M,)
    top = np.argsort(-scores, kind="stable")[:depth]
    return rows[top].astype(np.int64), scores[top].astype(np.float32)


def _grown(array: np.ndarray, size: int) -> np.ndarray:
    grown = np.zeros((size, *array.shape[1:]), array.dtype)
    grown[:len(array)] = array
    return grown
