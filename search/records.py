"""Listing records in SQLite, with FTS5 as the lexical (BM25) retriever.

One table ``listings`` (``pos`` = the row of the listing's vector in the FAISS index) and one
external-content FTS5 table over title, description, category path and location, tokenised by
``porter unicode61 remove_diacritics 2`` (case, accents and English inflections ignored:
"Sofas" finds "sofa", "Café" finds "cafe").

A query's words are matched with OR and ranked by BM25 with per-column weights (the index's stored
ranking, :mod:`search.ranking`; a title match counts most); user text never reaches FTS5's query
syntax (every word is quoted). Words in more than :data:`COMMON_SHARE` of the listings (the build
counts them: "gumtree", "in", "collection" on the demo data) are left out of a query that has
other words: their BM25 weight is near zero, but matching them would make SQLite score every
listing (measured on the demo index: the test titles' lexical p50 fell from 35 to N ms).

The database is opened read-only and ``immutable`` by the search engine: no locks, no journal,
safe to share between threads through one connection per thread.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from search.listings import Listing
from search.ranking import DEFAULT_BM25
from search.places import place_key, split_location

FTS_COLUMNS = ("title", "description", "category_path", "location")  # bm25() weights' order
MAX_QUERY_WORDS = 32
COMMON_SHARE = 0.5
_WORD = re.compile(r"\w+", re.UNICODE)

SCHEMA = """
CREATE TABLE listings (
    pos INTEGER PRIMARY KEY,        -- row of the listing's vector
    id TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    price REAL,                     -- NULL: no price
    location TEXT NOT NULL,
    town TEXT NOT NULL,             -- place_key() of the location's town ('' when none)
    region TEXT NOT NULL,           -- place_key() of its region
    category TEXT NOT NULL,         -- root category
    category_path TEXT NOT NULL,
    image_ids TEXT NOT NULL,        -- JSON list
    image_paths TEXT NOT NULL       -- JSON list, relative to the dataset directory
);
CREATE TABLE common_words (word TEXT PRIMARY KEY);  -- word_key()s in > COMMON_SHARE of listings
CREATE VIRTUAL TABLE listings_fts USING fts5(
    title, description, category_path, location,
    content='listings', content_rowid='pos',
    tokenize='porter unicode61 remove_diacritics 2'
);
"""


def write_records(path: Path, listings: Sequence[Listing], data_root: Path) -> None:
    """Create the database at ``path`` (which must not exist) for ``listings`` in pos order."""
    connection = sqlite3.connect(path)
    try:
        with connection:
            connection.executescript(SCHEMA)
            connection.executemany(
                "INSERT INTO listings VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (_row(pos, listing, data_root) for pos, listing in enumerate(listings)))
            connection.execute(
                f"INSERT INTO listings_fts(rowid, {', '.join(FTS_COLUMNS)}) "
                f"SELECT pos, {', '.join(FTS_COLUMNS)} FROM listings")
            connection.execute("INSERT INTO listings_fts(listings_fts) VALUES ('optimize')")
            connection.executemany("INSERT INTO common_words VALUES (?)",
                                   ((word,) for word in common_words(listings)))
    finally:
        connection.close()


def _row(pos: int, listing: Listing, data_root: Path) -> tuple:
    town, region = split_location(listing.location)
    paths = [str(Path(p).relative_to(data_root)) for p in listing.image_paths]
    return (pos, listing.id, listing.title, listing.description, listing.price, listing.location,
            place_key(town), place_key(region), listing.category, listing.category_path,
            json.dumps(list(listing.image_ids)), json.dumps(paths))


def word_key(word: str) -> str:
    return place_key(word)  # case and accents folded, as the FTS5 tokenizer folds them


def common_words(listings: Sequence[Listing]) -> list[str]:
    """The words (:func:`word_key`) found in more than ``COMMON_SHARE`` of the listings' text."""
    counts: Counter = Counter()
    for listing in listings:
        text = " ".join((listing.title, listing.description, listing.category_path, listing.location))
        counts.update({word_key(w) for w in _WORD.findall(text)})
    return sorted(w for w, n in counts.items() if n > COMMON_SHARE * len(listings))


def fts_query(text: str, skip: frozenset[str] = frozenset()) -> str | None:
    """The FTS5 query for free text: its words, each quoted, joined by OR; None without words.

    Words in ``skip`` (the index's common words) are left out unless nothing else is left.
    """
    words = _WORD.findall(text)[:MAX_QUERY_WORDS]
    if not words:
        return None
    words = [w for w in words if word_key(w) not in skip] or words
    return " OR ".join('"' + word.replace('"', '""') + '"' for word in dict.fromkeys(words))


class Records:
    """Read access to a built ``listings.sqlite``: records by position or id, BM25 search."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        connection = self._connection()  # fail now, not on the first request
        self.count = connection.execute("SELECT count(*) FROM listings").fetchone()[0]
        self.common = frozenset(row[0] for row in connection.execute("SELECT word FROM common_words"))

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            uri = f"{self.path.resolve().as_uri()}?mode=ro&immutable=1"
            connection = sqlite3.connect(uri, uri=True, check_same_thread=False)
            connection.row_factory = sqlite3.Row
            self._local.connection = connection
        return connection

    def attributes(self) -> dict[str, np.ndarray]:
        """The filterable columns as arrays indexed by pos: price (NaN = none), category, town,
        region (strings as object arrays)."""
        rows = self._connection().execute(
            "SELECT price, category, town, region FROM listings ORDER BY pos").fetchall()
        price = np.array([np.nan if r[0] is None else r[0] for r in rows], dtype=np.float64)
        columns = {name: np.array([r[i] for r in rows], dtype=object)
                   for i, name in enumerate(("category", "town", "region"), start=1)}
        return {"price": price, **columns}

    def position_of(self, listing_ids: Sequence[str]) -> dict[str, int]:
        """``{id: pos}`` for the ids that exist."""
        found: dict[str, int] = {}
        connection = self._connection()
        for start in range(0, len(listing_ids), 500):
            chunk = list(listing_ids[start:start + 500])
            marks = ",".join("?" * len(chunk))
            for row in connection.execute(f"SELECT id, pos FROM listings WHERE id IN ({marks})", chunk):
                found[row["id"]] = row["pos"]
        return found

    def fetch(self, positions: Sequence[int]) -> list[dict]:
        """The records at ``positions``, in that order."""
        if not len(positions):
            return []
        marks = ",".join("?" * len(positions))
        rows = self._connection().execute(
            f"SELECT * FROM listings WHERE pos IN ({marks})", [int(p) for p in positions]).fetchall()
        by_pos = {row["pos"]: _record(row) for row in rows}
        return [by_pos[int(p)] for p in positions]

    def lexical(self, text: str, depth: int, allowed: np.ndarray | None = None,
                weights: Sequence[float] = DEFAULT_BM25) -> tuple[np.ndarray, np.ndarray]:
        """BM25 search: up to ``depth`` ``(positions, scores)``, best first; score = -bm25 (higher
        is better). ``allowed`` (a bool mask by pos) drops listings as they stream by, so a
        selective filter still fills ``depth`` when enough listings match."""
        query = fts_query(text, self.common)
        if query is None:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        positions, scores = [], []
        for pos, score in self._ranked(query, depth if allowed is None else None, weights):
            if allowed is not None and not allowed[pos]:
                continue
            positions.append(pos)
            scores.append(-score)
            if len(positions) >= depth:
                break
        return np.array(positions, dtype=np.int64), np.array(scores, dtype=np.float32)

    def _ranked(self, query: str, limit: int | None, weights: Sequence[float]
                ) -> Iterator[tuple[int, float]]:
        columns = ", ".join(str(float(w)) for w in weights)  # floats only: nothing user-given
        sql = (f"SELECT rowid, bm25(listings_fts, {columns}) AS score FROM listings_fts "
               "WHERE listings_fts MATCH ? ORDER BY score")
        params: list = [query]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        yield from self._connection().execute(sql, params)


def _record(row: sqlite3.Row) -> dict:
    record = dict(row)
    record["image_ids"] = json.loads(record["image_ids"])
    record["image_paths"] = json.loads(record["image_paths"])
    return record
