"""How the engine ranks: fusion, BM25 field weights and personalisation, stored with the index.

The defaults are the method the engine always had (equal-weight reciprocal-rank fusion, k = 60;
title x4; 0.7 query + 0.3 user). ``python -m search.tune`` chooses better values on judged dev
queries and stores them in the index's ``meta.json`` under ``"ranking"``; the engine (and so the
proxy's ``/search`` and ``search.query``) reads them from there.

One weight per retriever (:data:`WEIGHTED`): ``dense_weight`` (the vectors of the index's own
model: a photo, text or both), ``lexical_weight`` (BM25) and ``text_dense_weight`` (the pretrained
text encoder's second vector set of an image or multimodal index, ``meta.json``
``"text_encoder"``). A ranking stored before the third retriever existed has no
``text_dense_weight`` and loads with its default, so its two weights mean what they meant.

Fusion methods, each weighting a retriever by its weight:

- ``rrf``: ``sum of weight / (rrf_k + rank)`` (Cormack et al. 2009, weighted);
- ``score``: each retriever's scores min-max normalised over its own top list, then
  ``sum of weight * normalised score`` (a listing a retriever did not return adds 0).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

import numpy as np

from search.limits import FUSION_DEPTH, MAX_FUSION_DEPTH

FUSIONS = ("rrf", "score")
# the retrievers that fuse, each with its ``<name>_weight`` (and ``personal_<name>_weight``)
WEIGHTED = ("dense", "lexical", "text_dense")
# bm25() column weights, in FTS column order (title, description, category path, location).
DEFAULT_BM25 = (4.0, 1.0, 2.0, 1.0)


@dataclass(frozen=True)
class Ranking:
    fusion: str = "rrf"
    dense_weight: float = 1.0
    lexical_weight: float = 1.0
    text_dense_weight: float = 1.0  # an index with a second, pretrained-text vector set
    rrf_k: float = 60.0
    bm25_weights: tuple[float, ...] = DEFAULT_BM25
    personal_weight: float = 0.3  # the user vector's share of the dense query
    decay: float = 0.7  # the weight of each older view relative to the next more recent one
    # the dense weight of a personalised query (None: dense_weight): the user vector knows what
    # the words alone cannot, so its side of the fusion may deserve more say
    personal_dense_weight: float | None = None
    personal_text_dense_weight: float | None = None  # the same, for the text-dense retriever
    # candidates each retriever hands to fusion (at least k): a deeper lexical list can lift
    # listings the dense top 100 missed into the fused top 100 (recall@100)
    depth: int = FUSION_DEPTH

    def __post_init__(self) -> None:
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion {self.fusion!r} is not one of {', '.join(FUSIONS)}")
        if len(self.bm25_weights) != len(DEFAULT_BM25):
            raise ValueError(f"bm25_weights needs {len(DEFAULT_BM25)} values, got {self.bm25_weights}")
        if not 0 <= self.personal_weight <= 1:
            raise ValueError(f"personal_weight {self.personal_weight} is outside 0..1")
        if not 1 <= self.depth <= MAX_FUSION_DEPTH:
            raise ValueError(f"depth {self.depth} is outside 1..{MAX_FUSION_DEPTH}")

    def to_json(self) -> dict:
        return {**asdict(self), "bm25_weights": list(self.bm25_weights)}

    @classmethod
    def from_json(cls, data: dict | None) -> Ranking:
        """The stored ranking; missing keys keep their defaults (an index built before tuning)."""
        if not data:
            return cls()
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "bm25_weights" in values:
            values["bm25_weights"] = tuple(float(w) for w in values["bm25_weights"])
        return cls(**values)

    def but(self, **changes: object) -> Ranking:
        return replace(self, **changes)  # type: ignore[arg-type]

    def weight(self, retriever: str) -> float:
        """The fusion weight of ``retriever`` (one of :data:`WEIGHTED`)."""
        return float(getattr(self, f"{retriever}_weight"))

    def personalised(self) -> Ranking:
        """The ranking of a query with viewed listings: each dense retriever's personal weight
        where one is set."""
        changes = {f"{name}_weight": personal for name in ("dense", "text_dense")
                   if (personal := getattr(self, f"personal_{name}_weight")) is not None}
        return replace(self, **changes) if changes else self

    def single(self) -> Ranking:
        """This ranking without its fusion settings: what a retriever alone ranks by (its
        results do not depend on them), so the single retrievers are measured once per
        BM25/personalisation setting."""
        return replace(self, fusion="rrf", dense_weight=1.0, lexical_weight=1.0,
                       text_dense_weight=1.0, personal_dense_weight=None,
                       personal_text_dense_weight=None, depth=FUSION_DEPTH)


Result = tuple[np.ndarray, np.ndarray]  # one retriever's (positions, scores), best first


def fuse(ranking: Ranking, dense: Result | None, lexical: Result | None,
         text_dense: Result | None = None) -> dict[int, dict]:
    """``{pos: {"fused": score, "dense": (rank, score), "lexical": (rank, score),
    "text_dense": (rank, score)}}`` over the retrievers' ``(positions, scores)`` lists (best
    first); a retriever that did not run is None."""
    found: dict[int, dict] = {}
    for name, result in zip(WEIGHTED, (dense, lexical, text_dense), strict=True):
        if result is None:
            continue
        weight = ranking.weight(name)
        positions, scores = result
        contributions = _contributions(ranking, np.asarray(scores, dtype=np.float64)) * weight
        for rank, (pos, score, part) in enumerate(zip(positions, scores, contributions, strict=True),
                                                  start=1):
            entry = found.setdefault(int(pos), {"fused": 0.0})
            entry[name] = (rank, float(score))
            entry["fused"] += float(part)
    return found


def _contributions(ranking: Ranking, scores: np.ndarray) -> np.ndarray:
    """What each result of one retriever's list adds to its listing's fused score, unweighted."""
    if ranking.fusion == "rrf":
        return 1.0 / (ranking.rrf_k + np.arange(1, len(scores) + 1))
    if len(scores) == 0:
        return scores
    low, high = float(scores.min()), float(scores.max())
    # one result, or all equal: each counts fully (min-max is undefined there)
    return np.ones_like(scores) if high - low < 1e-12 else (scores - low) / (high - low)
