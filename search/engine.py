"""The search engine over one built index: dense, lexical (BM25) and fused retrieval.

A query has text, a vector (the embedding of a photo, or of text for a text model, made by
TorchServe or :mod:`search.embedders`), or both, and optional filters and viewed listings:

- **dense**: FAISS nearest neighbours of the query vector (cosine similarity);
- **lexical**: SQLite FTS5 BM25 over title, description, category path and location;
- **text_dense**: on an image or multimodal index built with a second vector set
  (``meta.json`` ``"text_encoder"``, :mod:`search.build`), FAISS nearest neighbours of the
  query *text*'s pretrained-encoder vector (``text_vector``) among the listings' text vectors;
- **fused** (the default): the lists that ran merged by weighted fusion (:mod:`search.ranking`: weighted
  reciprocal-rank fusion, or normalised score fusion), each retriever contributing its top
  ``ranking.depth`` (:data:`search.limits.FUSION_DEPTH` untuned). The method, weights and
  depth are the index's stored ranking (``meta.json`` ``"ranking"``, chosen on judged dev
  queries by ``python -m search.tune``); an untuned index uses equal-weight RRF with k = 60
  (Cormack et al. 2009). With one input only one retriever runs and fusion is that retriever.
- **personalisation** (``viewed``: listing ids, most recent first): the user vector of each
  vector set is the decayed mean of the viewed listings' vectors in it, weights ``decay ** i``
  (the latest view counts 1, the one before 0.7, ...), and the dense query becomes
  ``normalise((1 - w) q + w u)`` with ``w`` the ranking's ``personal_weight`` (0.3 untuned),
  per vector set. A text-only query on a photo index uses ``u`` alone as its (image) dense side,
  so the viewed listings re-rank BM25 results through fusion. Viewed listings are never
  returned again. No ``viewed``: the plain query.
- **filters** (price range, category, ``near`` -- see :mod:`search.places`) restrict both
  retrievers before ranking, so ``k`` results come back whenever ``k`` listings qualify.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from search import generations, layout
from search.errors import BadRequest, IndexUnavailable, NotFound
from search.live import LiveOverlay, LiveQuery, merge
from search.limits import MAX_K, check_limits
from search.metrics import StageClock
from search.places import Places
from search.ranking import WEIGHTED, Ranking, fuse
from search.records import Records, fts_query
from search.vectors import IndexSpec, VectorIndex, normalise

logger = logging.getLogger(__name__)

RRF_K = Ranking.rrf_k  # the untuned ranking's; an index's own is engine.ranking
DECAY = Ranking.decay
PERSONAL_WEIGHT = Ranking.personal_weight
DENSE_SET = "dense"  # the index's model's vectors
TEXT_SET = "text_dense"  # the pretrained text encoder's (meta.json "text_encoder")


@dataclass
class SearchRequest:
    """One query. ``vector`` is a unit ``(D,)`` embedding of the query (photo or text) by the
    index's model; ``text_vector`` the query text's by the index's text encoder (an index with a
    second vector set only)."""

    text: str | None = None
    vector: np.ndarray | None = None
    text_vector: np.ndarray | None = None
    k: int = 10
    retriever: str = "fused"
    min_price: float | None = None
    max_price: float | None = None
    category: str | None = None
    near: str | None = None
    viewed: Sequence[str] = ()
    candidates: np.ndarray | None = None  # (N,) bool: only these positions (the evaluation)
    exclude: Sequence[str] = ()  # listing ids never returned (a listing's own "similar")
    ranking: Ranking | None = None  # None: the index's stored ranking (search.tune tries others)


@dataclass
class Hit:
    """One ranked listing and why it is there."""

    id: str
    title: str
    price: float | None
    location: str
    category: str
    score: float  # fused: the fused score (search.ranking); dense: cosine similarity; lexical: -bm25
    matched: list[str]  # the retrievers that found it: "dense", "lexical", "text_dense"
    dense_rank: int | None = None  # 1-based
    dense_score: float | None = None
    lexical_rank: int | None = None
    lexical_score: float | None = None
    text_dense_rank: int | None = None
    text_dense_score: float | None = None  # cosine similarity of the text vectors
    image_ids: list[str] = field(default_factory=list)


@dataclass
class SearchResult:
    hits: list[Hit]
    retriever: str  # what ran: "fused", "dense", "lexical" or "text_dense"
    personalised: bool
    took_ms: float
    # milliseconds per step (prepare = checks, user vector, filters; dense; lexical; fuse;
    # live = merging live listings, when any; hydrate = sort + SQLite records of the top k),
    # what the proxy's Server-Timing header shows
    stages_ms: dict[str, float] = field(default_factory=dict)


class SearchEngine:
    """One loaded index generation. Thread-safe for concurrent searches."""

    def __init__(self, generation: Path, max_k: int = MAX_K) -> None:
        self.generation = Path(generation)
        # Held as long as this engine lives: no build deletes the files it reads lazily.
        self._lease = generations.Lease(self.generation)
        self.max_k = max_k  # the evaluation raises it to rank every relevant listing (MAP@R)
        self.meta = layout.read_meta(self.generation)
        if self.meta.get("format") != layout.FORMAT_VERSION:
            raise IndexUnavailable(f"the index {self.generation.parent} has format "
                                   f"{self.meta.get('format')}, this code reads format "
                                   f"{layout.FORMAT_VERSION}: rebuild it with `make index`")
        self.info = layout.IndexMeta.from_dict(self.meta)  # typed, for other packages
        self.records = Records(self.generation / layout.RECORDS_FILE)
        self.vectors = VectorIndex.load(self.generation, IndexSpec.from_json(self.meta["index"]),
                                        layout.FAISS_FILE, layout.VECTORS_FILE)
        # the second vector set: the listings' text by the pretrained encoder (None: none)
        encoder = self.meta.get("text_encoder")
        self.text_vectors = None if encoder is None else VectorIndex.load(
            self.generation, IndexSpec.from_json(encoder["index"]), layout.TEXT_FAISS_FILE,
            layout.TEXT_VECTORS_FILE)
        attributes = self.records.attributes()
        self.price = attributes["price"]
        self.category_of = attributes["category"]
        self.places = Places(attributes["town"], attributes["region"])
        self.categories = sorted(set(self.category_of))
        self.data_root = Path(self.meta["data"])
        self.ranking = Ranking.from_json(self.meta.get("ranking"))
        self.live: LiveOverlay | None = None  # the sellers' live listings (search.holder sets it)

    @classmethod
    def open(cls, index_dir: Path, max_k: int = MAX_K) -> SearchEngine:
        """The live generation of ``index_dir``.

        Raises:
            IndexUnavailable: when there is none (yet); the message says what to run.
        """
        generation = layout.current_generation(Path(index_dir))
        if generation is None:
            raise unavailable(Path(index_dir))
        return cls(generation, max_k)

    @property
    def modalities(self) -> frozenset[str]:
        """The query inputs the index's model embeds: "image", "text"."""
        return frozenset(self.meta["modalities"])

    def __len__(self) -> int:
        return len(self.vectors)

    # --- queries -----------------------------------------------------------------------------

    def search(self, request: SearchRequest) -> SearchResult:
        """Rank listings for ``request``.

        Raises:
            BadRequest: no text and no vector, ``k`` out of range, min > max price, an unknown
                category or place, a vector of the wrong size, a retriever without its input.
            NotFound: a viewed listing id the index does not hold.
        """
        started = time.perf_counter()
        text = self._check(request)
        ranking = request.ranking or self.ranking
        user = self.user_vector(request.viewed, ranking.decay)
        dense_query = _personal(request.vector, user, ranking.personal_weight)
        text_user = (self.user_vector(request.viewed, ranking.decay, TEXT_SET)
                     if self.text_vectors is not None else None)
        text_query = _personal(request.text_vector, text_user, ranking.personal_weight)
        retriever = self._retriever(request.retriever, text, dense_query, text_query)
        allowed = self._allowed(request)
        depth = request.k if retriever != "fused" else max(request.k, ranking.depth)
        clock = StageClock(started, "prepare")
        dense = (self.vectors.search(dense_query, depth, allowed)
                 if retriever in ("fused", "dense") and dense_query is not None else None)
        clock.lap("dense")
        text_dense = (self.text_vectors.search(text_query, depth, allowed)
                      if self.text_vectors is not None and retriever in ("fused", "text_dense")
                      and text_query is not None else None)
        if self.text_vectors is not None:
            clock.lap("text-dense")
        lexical = (self.records.lexical(text, depth, allowed, ranking.bm25_weights)
                   if retriever in ("fused", "lexical") and text else None)
        clock.lap("lexical")
        if self.live is not None and request.candidates is None:  # an evaluation: the index alone
            dense, lexical, text_dense = self._with_live(request, dense, lexical, text_dense,
                                                         dense_query, text_query, text, depth,
                                                         ranking)
            clock.lap("live")
        personalised = user is not None or text_user is not None
        lists = {"dense": dense, "lexical": lexical, "text_dense": text_dense}
        found = fuse(ranking.personalised() if personalised else ranking, **lists)
        clock.lap("fuse")
        ran = [name for name, result in lists.items() if result is not None]
        hits = self._rank(found, len(ran) > 1, ran[0] if ran else "lexical", request.k)
        clock.lap("hydrate")
        return SearchResult(hits, retriever, personalised,
                            (time.perf_counter() - started) * 1000, clock.stages_ms)

    def similar(self, listing_id: str, k: int = 10, **filters: object) -> SearchResult:
        """The listings closest to ``listing_id`` by embedding (itself left out).

        Raises:
            NotFound: the index has no listing ``listing_id``.
        """
        return self.search(SearchRequest(vector=self.vector_of(listing_id), k=k,
                                         retriever="dense", exclude=[listing_id],
                                         **filters))  # type: ignore[arg-type]

    def get(self, listing_id: str) -> dict:
        """The record of ``listing_id``.

        Raises:
            NotFound: the index has no such listing.
        """
        live = self.live.get(listing_id) if self.live is not None else None
        if live is not None:
            return live
        return self.records.fetch([self.position(listing_id)])[0]

    def vector_of(self, listing_id: str) -> np.ndarray:
        """The unit vector of ``listing_id`` (of the index or live).

        Raises:
            NotFound: no such listing. BadRequest: a live listing without a vector (no photo
                on a photo index).
        """
        if self.live is not None and self.live.get(listing_id) is not None:
            vector = self.live.vector(listing_id)
            if vector is None:
                raise BadRequest(f"listing {listing_id!r} has no embedding (no photo, and this "
                                 f"index's model {self.meta['arch']!r} embeds photos)")
            return vector
        return np.asarray(self.vectors.vectors[self.position(listing_id)])

    def image_path(self, listing_id: str, index: int = 0) -> Path:
        """The cleaned photo ``index`` of ``listing_id`` (0: its main photo).

        Raises:
            NotFound: no such listing, photo, or the file is gone from the dataset directory.
        """
        record = self.get(listing_id)
        paths = record["image_paths"]
        if not paths:
            raise NotFound(f"listing {listing_id!r} has no photo (a text-only dataset)")
        if not 0 <= index < len(paths):
            raise NotFound(f"listing {listing_id!r} has {len(paths)} photo(s); ask for one of "
                           f"0..{len(paths) - 1}")
        path = self.data_root / paths[index]
        if not path.is_file():
            raise NotFound(f"the photo of listing {listing_id!r} is no longer at {path}: the "
                           "dataset directory moved or changed; rebuild the index with `make index`")
        return path

    def position(self, listing_id: str) -> int:
        pos = self.records.position_of([listing_id]).get(listing_id)
        if pos is None:
            raise NotFound(f"no listing {listing_id!r} in the index ({len(self)} listings); "
                           "take ids from a search result")
        return pos

    # --- steps ---------------------------------------------------------------------------------

    def _check(self, request: SearchRequest) -> str:
        """Validate ``request``; return its text stripped ('' when none)."""
        text = check_limits(request, self.max_k)
        if not text and request.vector is None:
            raise BadRequest("empty query: send text (q) or a photo (image), or both")
        if text and request.vector is None and fts_query(text) is None:
            raise BadRequest(f"the query {text!r} has no words to search for: use letters or digits")
        if request.vector is not None and np.shape(request.vector) != (self.vectors.dim,):
            raise BadRequest(f"the query embedding has shape {np.shape(request.vector)}; this "
                             f"index holds {self.vectors.dim}-d vectors of model "
                             f"{self.meta['arch']!r}")
        if request.text_vector is not None:
            if self.text_vectors is None:
                raise BadRequest("a query text vector was given, but this index has no text "
                                 "vectors (built with --no-text-encoder, or without --run)")
            if np.shape(request.text_vector) != (self.text_vectors.dim,):
                raise BadRequest(f"the query text embedding has shape "
                                 f"{np.shape(request.text_vector)}; this index holds "
                                 f"{self.text_vectors.dim}-d text vectors")
        return text

    def user_vector(self, viewed: Sequence[str], decay: float = DECAY,
                    vector_set: str = DENSE_SET) -> np.ndarray | None:
        """Decayed mean of the viewed listings' vectors (most recent first) in ``vector_set``
        (:data:`DENSE_SET`: the index's model's; :data:`TEXT_SET`: the text encoder's); None for a
        cold user."""
        viewed = [v for v in viewed if v]
        if not viewed:
            return None
        if vector_set == TEXT_SET:
            return self._text_user_vector(viewed, decay)
        positions = self.records.position_of(viewed)
        unknown = [v for v in viewed if v not in positions
                   and (self.live is None or self.live.vector(v) is None)]
        if unknown:
            raise BadRequest(f"viewed listing(s) not in the index: {', '.join(map(repr, unknown[:5]))}"
                           "; send ids from search results")
        weights = decay ** np.arange(len(viewed), dtype=np.float32)  # (V,)
        stack = np.stack([self.vector_of(v) for v in viewed])  # (V, D)
        return normalise(weights @ stack)

    def _text_user_vector(self, viewed: list[str], decay: float) -> np.ndarray | None:
        """A viewed listing without a text vector (a live one published before its encoder was
        served) is left out; unknown ids: :meth:`user_vector` said so already."""
        assert self.text_vectors is not None
        positions = self.records.position_of(viewed)
        weights = decay ** np.arange(len(viewed), dtype=np.float32)  # (V,)
        held = []
        for weight, listing_id in zip(weights, viewed, strict=True):
            if listing_id in positions:
                held.append((weight, np.asarray(self.text_vectors.vectors[positions[listing_id]])))
            elif self.live is not None and (vector := self.live.text_vector(listing_id)) is not None:
                held.append((weight, vector))
        if not held:
            return None
        stack = np.stack([vector for _, vector in held])  # (V', D')
        return normalise(np.array([w for w, _ in held], np.float32) @ stack)

    def _retriever(self, wanted: str, text: str, dense_query: np.ndarray | None,
                   text_query: np.ndarray | None = None) -> str:
        if wanted == "text_dense":
            if self.text_vectors is None:
                raise BadRequest("this index has no text vectors, so no text_dense retriever "
                                 "(build it with --run of an image or multimodal run, without "
                                 "--no-text-encoder); use retriever=dense, lexical or fused")
            if text_query is None:
                raise BadRequest("text_dense retrieval needs query text (q)")
            return wanted
        if wanted == "dense" and dense_query is None:
            raise BadRequest(f"dense retrieval needs a query embedding: this index's model "
                             f"({self.meta['arch']}) embeds {' and '.join(sorted(self.modalities))}"
                             "; send a photo, or use retriever=lexical")
        if wanted == "lexical" and not text:
            raise BadRequest("lexical retrieval needs query text (q)")
        if wanted == "fused":
            ran = [name for name, runs in (("dense", dense_query is not None),
                                           ("lexical", bool(text)),
                                           ("text_dense", text_query is not None)) if runs]
            return ran[0] if len(ran) == 1 else wanted
        return wanted

    def _allowed(self, request: SearchRequest) -> np.ndarray | None:
        """(N,) bool mask of the listings the filters allow; None when nothing is filtered."""
        mask = None if request.candidates is None else np.asarray(request.candidates, bool).copy()

        def narrow(keep: np.ndarray) -> None:
            nonlocal mask
            mask = keep if mask is None else mask & keep

        with np.errstate(invalid="ignore"):  # NaN (no price) compares False: filtered out
            if request.min_price is not None:
                narrow(self.price >= request.min_price)
            if request.max_price is not None:
                narrow(self.price <= request.max_price)
        if request.category:
            narrow(self.category_of == self._category(request.category))
        if request.near:
            narrow(self.places.near(request.near))
        # a listing the user viewed is not news to them; "similar" leaves its own listing out
        excluded = [*request.exclude, *(v for v in request.viewed if v)]
        if excluded:
            keep = np.ones(len(self), bool)
            keep[list(self.records.position_of(excluded).values())] = False
            narrow(keep)
        return mask

    def _with_live(self, request: SearchRequest, dense, lexical, text_dense,
                   vector: np.ndarray | None, text_vector: np.ndarray | None, text: str,
                   depth: int, ranking: Ranking) -> tuple:
        """Each retriever's generation results merged by score with the live listings' (live
        row r is position ``len(self) + r``; :mod:`search.live`)."""
        assert self.live is not None
        category = self._category(request.category) if request.category else None
        query = LiveQuery(request.min_price, request.max_price, category, request.near,
                          [*request.exclude, *(v for v in request.viewed if v)])
        empty = (np.zeros(0, np.int64), np.zeros(0, np.float32))
        with self.live.lock:
            mask = self.live.mask(query)
            live_dense = (self.live.dense(vector, depth, mask)
                          if dense is not None and vector is not None else empty)
            live_lexical = (self.live.lexical(text, depth, mask, ranking.bm25_weights,
                                              self.records.common)
                            if lexical is not None else empty)
            live_text = (self.live.text_dense(text_vector, depth, mask)
                         if text_dense is not None and text_vector is not None else empty)
        return (merge(dense, live_dense, len(self), depth),
                merge(lexical, live_lexical, len(self), depth),
                merge(text_dense, live_text, len(self), depth))

    def _category(self, name: str) -> str:
        live = self.live.categories() if self.live is not None else set()
        for category in sorted({*self.categories, *live}):
            if category.casefold() == name.strip().casefold():
                return category
        raise BadRequest(f"unknown category {name!r}: choose one of "
                         f"{', '.join(sorted({*self.categories, *live}))}")

    def _rank(self, found: dict[int, dict], fused: bool, only: str, k: int) -> list[Hit]:
        def key(item: tuple[int, dict]) -> tuple:
            pos, entry = item
            if fused:  # ties: the closer by the index's vectors, then by the text vectors
                return (-entry["fused"], -entry.get("dense", (0, -2.0))[1],
                        -entry.get("text_dense", (0, -2.0))[1], pos)
            return (entry[only][0], pos)

        ranked = sorted(found.items(), key=key)[:k + self._live_slack()]
        records = self._fetch([pos for pos, _ in ranked])
        return [self._hit(record, entry, fused, only) for (_, entry), record in
                zip(ranked, records, strict=True) if record is not None][:k]

    def _live_slack(self) -> int:
        return 0 if self.live is None else 8  # live hits removed between retrieval and fetch

    def _fetch(self, positions: list[int]) -> list[dict | None]:
        """The records of generation positions and live rows (``len(self) + row``)."""
        base = [p for p in positions if p < len(self)]
        found: dict[int, dict | None] = dict(zip(base, self.records.fetch(base), strict=True))
        live = [p for p in positions if p >= len(self)]
        if live and self.live is not None:
            found.update(zip(live, self.live.fetch([p - len(self) for p in live]), strict=True))
        return [found.get(p) for p in positions]

    @staticmethod
    def _hit(record: dict, entry: dict, fused: bool, only: str) -> Hit:
        dense, lexical, text = entry.get("dense"), entry.get("lexical"), entry.get("text_dense")
        return Hit(
            id=record["id"], title=record["title"], price=record["price"],
            location=record["location"], category=record["category"],
            score=entry["fused"] if fused else entry[only][1],
            matched=[name for name in WEIGHTED if name in entry],
            dense_rank=dense[0] if dense else None, dense_score=dense[1] if dense else None,
            lexical_rank=lexical[0] if lexical else None,
            lexical_score=lexical[1] if lexical else None,
            text_dense_rank=text[0] if text else None, text_dense_score=text[1] if text else None,
            image_ids=record["image_ids"],
        )


def _personal(query: np.ndarray | None, user: np.ndarray | None, weight: float
              ) -> np.ndarray | None:
    """The dense query of one vector set: ``normalise((1 - w) q + w u)``, ``u`` alone without a
    query vector, ``q`` for a cold user."""
    if user is None or query is None:
        return query if user is None else user
    return normalise((1 - weight) * query + weight * user)


def unavailable(index_dir: Path) -> IndexUnavailable:
    """Why ``index_dir`` has no live index, and what to run."""
    pid = layout.building_pid(index_dir)
    if pid is not None:
        return IndexUnavailable(f"the search index {index_dir} is being built (pid {pid}); "
                                "retry in a minute", retry_after_s=30)
    return IndexUnavailable(f"no search index in {index_dir}: build one with `make index` (or "
                            f"python -m search.build --data CLEAN_DIR --run RUN_DIR --out {index_dir})")
