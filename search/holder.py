"""The served engine of an index directory: swapped when a build publishes a new generation,
with the live listings (:mod:`search.live`) attached to whichever generation is served."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from search import layout
from search.engine import SearchEngine, unavailable
from search.errors import IndexUnavailable
from search.live import LiveOverlay

logger = logging.getLogger(__name__)


class EngineHolder:
    """The live engine of an index directory, swapped when a build publishes a new generation.

    ``get()`` costs a read of the small ``CURRENT`` file. When it names a new generation, the
    calling thread loads it while every other request keeps using the old engine. A generation
    that fails to load is logged once and never retried (a generation never changes once
    published): the old engine keeps serving, or, at start, the newest generation that loads.
    """

    def __init__(self, index_dir: Path, live: LiveOverlay | None = None) -> None:
        self.index_dir = Path(index_dir)
        self.live = live  # the live listings every engine of this holder searches too
        self._engine: SearchEngine | None = None
        self._failed: set[str] = set()  # generation names that did not load
        self._lock = threading.Lock()

    def get(self) -> SearchEngine:
        """The engine of the live generation (or of the newest readable one).

        Raises:
            IndexUnavailable: no generation can be read.
        """
        generation = layout.current_generation(self.index_dir)
        engine = self._engine
        if generation is not None and generation.name not in self._failed and (
                engine is None or engine.generation != generation):
            engine = self._load([generation], wait=engine is None)
        if engine is None and self.index_dir.is_dir():
            engine = self._load(layout.all_generations(self.index_dir), wait=True)
        if engine is None and self._failed:
            raise IndexUnavailable(f"the search index {self.index_dir} cannot be read (generation "
                                   f"{', '.join(sorted(self._failed))}; the proxy's log says why): "
                                   "rebuild it with `make index`")
        if engine is None:
            raise unavailable(self.index_dir)
        if self.live is not None:
            # bound to the generation's model (a rebuild with other weights restarts the overlay),
            # then caught up with the store: every search sees every committed write
            encoder = engine.info.text_encoder
            self.live.bind(engine.info.model_sha256, engine.vectors.dim,
                           None if encoder is None else encoder.sha256,
                           0 if engine.text_vectors is None else engine.text_vectors.dim)
            engine.live = self.live
            self.live.catch_up()
        return engine

    def _load(self, candidates: list[Path], wait: bool) -> SearchEngine | None:
        """The first of ``candidates`` that loads (it becomes the served engine), else the
        engine already served."""
        if not self._lock.acquire(blocking=wait):
            return self._engine  # another request is loading; keep serving the old one
        try:
            for generation in candidates:
                if self._engine is not None and self._engine.generation == generation:
                    return self._engine
                if generation.name in self._failed:
                    continue
                try:
                    self._engine = SearchEngine(generation)
                except Exception:  # the cause goes to the log, once
                    logger.exception("cannot load search index generation %s; it will not be "
                                     "retried", generation)
                    self._failed.add(generation.name)
                    continue
                logger.info("search index %s loaded (%d listings)", generation, len(self._engine))
                return self._engine
            return self._engine
        finally:
            self._lock.release()
