"""The "for you" feed (``GET /feed``): listings near a session's taste, diversified.

- **With views**: the user vector is the engine's own (:meth:`SearchEngine.user_vector`: the
  decayed mean of the viewed listings' embeddings, latest first, the index's ranking's decay).
  Candidates are the engine's dense retrieval around it (:data:`CANDIDATES`, viewed listings
  left out, and whatever the engine no longer holds -- a sold live listing -- never appears).
  Maximal marginal relevance (Carbonell & Goldstein 1998) then picks ``k`` of them: each step takes
  the candidate maximising ``lambda * sim(c, user) - (1 - lambda) * max sim(c, picked)``, so a
  buyer whose views are all of one kind sees mostly, not only, that kind. ``lambda`` =
  :data:`MMR_LAMBDA`, chosen on the judged dev data by ``python -m bench.feed``
  (docs/buyers.md). Each item's reason names the viewed listing it is closest to.
- **Without views** (a new session, or an erased one): popular listings (viewed or clicked by the
  most sessions, :meth:`SessionStore.popular`) and new ones (live listings, newest first, then
  the index's last positions),
  interleaved and diversified by the same MMR. A personal feed shorter than ``k`` is filled the
  same way.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

from search import SearchEngine, SearchRequest
from search.limits import FUSION_DEPTH, MAX_VIEWED

MMR_LAMBDA = 0.7  # bench.feed: the dev sweep in docs/buyers.md
FEED_DECAY: float | None = 0.9  # bench.feed on dev kinds; None: the index ranking's (search's)
CANDIDATES = FUSION_DEPTH  # dense candidates the MMR chooses from
RANKER = "feed-mmr"


@dataclass
class FeedItem:
    """One feed listing: the fields of a search hit, and why it is there."""

    id: str
    title: str
    price: float | None
    location: str
    category: str
    score: float  # personal: cosine similarity to the user vector; else the cold-start score
    reason: str  # "like <title of a viewed listing>", "popular" or "new"


def mmr(relevance: np.ndarray, vectors: np.ndarray, k: int, lam: float) -> list[int]:
    """Indices of ``k`` candidates picked greedily by maximal marginal relevance.

    Args:
        relevance: ``(C,)`` each candidate's relevance (cosine similarity to the user).
        vectors: ``(C, D)`` unit embeddings of the candidates.
        k: how many to pick (fewer when there are fewer candidates).
        lam: 1 = relevance only; 0 = diversity only.
    """
    count = len(relevance)
    closest = np.zeros(count, np.float32)  # (C,) max similarity to an already picked candidate
    free = np.ones(count, bool)
    picked: list[int] = []
    for _ in range(min(k, count)):
        score = np.where(free, lam * relevance - (1 - lam) * closest, -np.inf)
        best = int(np.argmax(score))
        picked.append(best)
        free[best] = False
        closest = np.maximum(closest, vectors @ vectors[best])
    return picked


def feed(engine: SearchEngine, views: Sequence[str], popular: Sequence[str], k: int,
         lam: float = MMR_LAMBDA, decay: float | None = FEED_DECAY) -> list[FeedItem]:
    """``k`` feed items for a session that viewed ``views`` (most recent first, ids the engine
    holds), given the ``popular`` listing ids (most first). ``decay``: the weight of each older
    view (None: the index's ranking's, as search uses)."""
    views = list(views)[:MAX_VIEWED]
    items = personal(engine, views, k, lam, decay) if views else []
    if len(items) < k:
        taken = {item.id for item in items} | set(views)
        items += cold(engine, [p for p in popular if p not in taken], k - len(items), lam, taken)
    return items


def held(engine: SearchEngine, views: Sequence[str]) -> list[str]:
    """``views`` that the engine still holds with an embedding, in order: a sold or deleted live
    listing, or one a rebuilt index dropped, falls out (the user vector needs an embedding)."""
    known = engine.records.position_of(list(views))
    live = engine.live
    return [view for view in views
            if view in known or (live is not None and live.vector(view) is not None)]


def personal(engine: SearchEngine, views: Sequence[str], k: int, lam: float,
             decay: float | None = FEED_DECAY) -> list[FeedItem]:
    """MMR over the dense neighbours of the session's user vector (views left out)."""
    user = engine.user_vector(views, engine.ranking.decay if decay is None else decay)
    found = engine.search(SearchRequest(vector=user, k=min(CANDIDATES, engine.max_k),
                                        retriever="dense", exclude=list(views)))
    hits = found.hits
    if not hits:
        return []
    vectors = _vectors(engine, [hit.id for hit in hits])  # (C, D)
    relevance = np.asarray([hit.score for hit in hits], np.float32)  # (C,) cosine to the user
    chosen = mmr(relevance, vectors, k, lam)
    viewed = [engine.get(v) for v in views]
    nearest = np.argmax(vectors[chosen] @ _vectors(engine, views).T, axis=1)  # (k,)
    return [FeedItem(hits[i].id, hits[i].title, hits[i].price, hits[i].location,
                     hits[i].category, round(float(hits[i].score), 6),
                     f"like {viewed[int(j)]['title']}") for i, j in zip(chosen, nearest, strict=True)]


def cold(engine: SearchEngine, popular: Sequence[str], k: int, lam: float,
         taken: Collection[str] = ()) -> list[FeedItem]:
    """Popular and new listings, interleaved, diversified by MMR; none of ``taken``."""
    if k <= 0:
        return []
    depth = max(2 * k, CANDIDATES)  # enough "new" candidates for MMR to span several kinds
    liked = held(engine, popular)[:depth]
    skip = {*taken, *liked}
    new = [i for i in _newest(engine, depth + len(skip)) if i not in skip][:depth]
    # popular first (each a bit above the new listing at its rank), then MMR spreads the kinds
    reasons = {**{listing: "new" for listing in new}, **{listing: "popular" for listing in liked}}
    scores = {listing: 1.0 - i / (depth + 1) for i, listing in enumerate(new)}
    for i, listing in enumerate(liked):
        scores[listing] = 1.05 - i / (depth + 1)
    ids = list(scores)
    if not ids:
        return []
    relevance = np.asarray([scores[i] for i in ids], np.float32)
    chosen = [ids[i] for i in mmr(relevance, _vectors(engine, ids), k, lam)]
    records = [engine.get(i) for i in chosen]
    return [FeedItem(r["id"], r["title"], r["price"], r["location"], r["category"],
                     round(scores[r["id"]], 6), reasons[r["id"]]) for r in records]


def _newest(engine: SearchEngine, n: int) -> list[str]:
    """The ``n`` listings added last: live ones (newest first, with an embedding), then the
    index's last positions (its build order)."""
    ids: list[str] = []
    live = engine.live
    if live is not None:
        with live.lock:
            ids = [record["id"] for row, record in reversed(list(enumerate(live.records)))
                   if record is not None and live.has_vector[row]][:n]
    last = len(engine) - 1
    positions = range(last, max(-1, last - (n - len(ids))), -1)
    return ids + [record["id"] for record in engine.records.fetch(list(positions))]


def _vectors(engine: SearchEngine, ids: Sequence[str]) -> np.ndarray:
    """``(len(ids), D)`` unit embeddings of ``ids`` (of the index or live), in that order."""
    positions = engine.records.position_of(list(ids))
    return np.stack([np.asarray(engine.vectors.vectors[positions[i]], np.float32)
                     if i in positions else engine.vector_of(i) for i in ids])
