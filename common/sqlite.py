"""The one way a store that promises durability opens its SQLite file.

WAL lets readers run beside the one writer; ``synchronous=FULL`` fsyncs the WAL at every commit, so
whatever a route answered as stored (a 201, a 202) survives a crash of the process or the machine.
Used by the sellers' store (:mod:`market.store`) and the buyers' sessions (:mod:`buyers.store`).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


def connect_durable(path: Path, busy_timeout_s: float) -> sqlite3.Connection:
    """An autocommit connection (transactions are explicit) in WAL mode with ``synchronous=FULL``,
    foreign keys on, rows as :class:`sqlite3.Row`; a writer waits ``busy_timeout_s`` for another's."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_s)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA foreign_keys=ON")
    return db
