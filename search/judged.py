"""Score an index on judged queries: each retriever's TREC run, measured by ir-measures.

Used by ``python -m search.evaluate --queries --qrels`` (the report) and ``python -m search.tune``
(the same measurement for every candidate ranking). Metrics come from ir-measures over trec_eval
(pytrec_eval-terrier), never from code of ours:

- ``nDCG@10``: graded (gain = the grade), trec_eval's ``ndcg_cut.10``;
- ``P@10``: judged grade >= 1 counts as relevant;
- ``R@100``: recall in the top 100;
- ``AP``: average precision over the top 100 (its mean over queries is MAP).

A judged query the retriever returns nothing for scores 0 on every metric (trec_eval would skip
it, flattering the mean), so every mean is over the same judged queries.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from common.cli import UserError
from search.embedders import TEXT
from search.encoder import index_embedder, text_encoder_embedder
from search.engine import SearchEngine, SearchRequest
from search.limits import RETRIEVERS
from search.errors import BadRequest
from search.metrics import percentiles_ms
from search.ranking import Ranking
from common.trec import Query

DEPTH = 100  # a run's length: the top 100 per query
METRICS = {"ndcg@10": "nDCG@10", "p@10": "P@10", "recall@100": "R@100", "map": "AP"}


def check_judgments(queries: Sequence[Query], qrels: dict[str, dict[str, int]], source: Path) -> None:
    """Every judged qid must be a query (a typo would silently score nothing).

    Raises:
        UserError: naming the first qids of ``source`` that the queries file lacks.
    """
    asked = {q.qid for q in queries}
    missing = [qid for qid in qrels if qid not in asked]
    if missing:
        raise UserError(f"{source} judges {len(missing)} query id(s) the queries file lacks: "
                        f"{', '.join(map(repr, missing[:5]))}")


def missing_judged(engine: SearchEngine, qrels: dict[str, dict[str, int]]) -> dict:
    """How many judged listings (and relevant judgments) the index does not hold."""
    judged = sorted({doc for docs in qrels.values() for doc in docs})
    held = engine.records.position_of(judged)
    absent = [doc for doc in judged if doc not in held]
    gone = set(absent)
    return {"listings": len(absent), "of": len(judged),
            "judgments": sum(doc in gone for docs in qrels.values() for doc in docs),
            "relevant_judgments": sum(doc in gone and grade > 0
                                      for docs in qrels.values() for doc, grade in docs.items()),
            "examples": absent[:5]}


@dataclass(frozen=True)
class QueryVectors:
    """A text query's unit vectors: by the index's model (None: it reads no text) and by the
    index's text encoder (None: the index has no text vectors)."""

    vector: np.ndarray | None
    text_vector: np.ndarray | None = None


def query_encoder(engine: SearchEngine) -> Callable[[str], QueryVectors] | None:
    """Text -> its :class:`QueryVectors`, or None when neither the index's model nor a text
    encoder of the index embeds text."""
    embedder = index_embedder(engine.meta) if TEXT in engine.modalities else None
    text_embedder = text_encoder_embedder(engine.meta)
    if embedder is None and text_embedder is None:
        return None
    return lambda text: QueryVectors(
        embedder.embed_query(text=text) if embedder is not None else None,
        text_embedder.embed_query(text=text) if text_embedder is not None else None)


def retrievers_for(engine: SearchEngine) -> list[str]:
    """The retrievers a text query can be judged on: those that can rank it (the image-dense one
    of an index with text vectors only by a personalised query's user vector, an empty ranking
    otherwise)."""
    if engine.text_vectors is not None:
        return list(RETRIEVERS)
    return [r for r in RETRIEVERS if r != "text_dense"] if TEXT in engine.modalities else ["lexical"]


def embed_all(encode: Callable[[str], QueryVectors] | None, queries: Sequence[Query]
              ) -> tuple[dict[str, QueryVectors | None], list[float]]:
    """Each query's vectors (None without an encoder) and the seconds each took."""
    vectors: dict[str, QueryVectors | None] = {}
    seconds = []
    for query in queries:
        started = time.perf_counter()
        vectors[query.qid] = encode(query.text) if encode is not None else None
        seconds.append(time.perf_counter() - started)
    return vectors, seconds


def rank_all(engine: SearchEngine, queries: Sequence[Query], vectors: dict, retriever: str,
             ranking: Ranking | None = None, plain: bool = False
             ) -> tuple[dict[str, list[str]], list[float]]:
    """``{qid: listing ids, best first}`` (top :data:`DEPTH`) and the engine's seconds per query.

    ``plain``: the same queries, not personalised (their viewed listings are still left out, as
    they are of the personalised ranking, so the two are judged on the same listings).

    Raises:
        UserError: a query the engine refuses (an unknown viewed id, ...), named by qid.
    """
    rankings, seconds = {}, []
    for query in queries:
        found = vectors.get(query.qid) or QueryVectors(None)
        request = SearchRequest(text=query.text, vector=found.vector,
                                text_vector=found.text_vector, k=DEPTH,
                                retriever=retriever, viewed=() if plain else query.viewed,
                                exclude=query.viewed if plain else (), ranking=ranking)
        started = time.perf_counter()
        try:
            result = engine.search(request)
        except BadRequest as exc:
            if any(why in str(exc) for why in ("no words to search", "needs query text",
                                               "needs a query embedding")):
                # nothing to match (no words; a text query on the image-dense retriever
                # without viewed listings): an empty ranking, scored 0
                rankings[query.qid] = []
                continue
            raise UserError(f"query {query.qid!r}: {exc}") from None
        seconds.append(time.perf_counter() - started)
        rankings[query.qid] = [hit.id for hit in result.hits]
    return rankings, seconds


def measure(qrels: dict[str, dict[str, int]], rankings: dict[str, list[str]]) -> dict[str, float]:
    """Mean of each of :data:`METRICS` over the judged queries (ir-measures)."""
    return {name: round(float(np.mean(list(values.values()))), 4) if values else 0.0
            for name, values in per_query(qrels, rankings).items()}


def per_query(qrels: dict[str, dict[str, int]], rankings: dict[str, list[str]]
              ) -> dict[str, dict[str, float]]:
    """Each of :data:`METRICS` per judged query, ``{metric: {qid: value}}`` (ir-measures); a
    judged query without a ranking scores 0, so two rankers are compared on the same queries."""
    import ir_measures

    measures = {name: ir_measures.parse_measure(spec) for name, spec in METRICS.items()}
    run = {qid: {doc: float(len(ids) - i) for i, doc in enumerate(ids)}
           for qid, ids in rankings.items() if ids and qid in qrels}
    values: dict[str, dict[str, float]] = {name: dict.fromkeys(qrels, 0.0) for name in measures}
    by_measure = {m: name for name, m in measures.items()}
    for row in ir_measures.iter_calc(list(measures.values()), qrels, run):
        values[by_measure[row.measure]][row.query_id] = float(row.value)
    return values


def evaluate(engine: SearchEngine, queries: Sequence[Query], qrels: dict[str, dict[str, int]],
             vectors: dict, ranking: Ranking | None = None, plain: bool = False,
             retrievers: Sequence[str] | None = None) -> tuple[list[dict], dict[str, dict]]:
    """Each retriever's metrics and latency, and its rankings ``{retriever: {qid: ids}}``."""
    results, runs = [], {}
    for retriever in retrievers or retrievers_for(engine):
        # one untimed query first: the first search of a process pays for cold caches (measured:
        # a 270-330 ms p99 on 41 queries of an index whose other queries take < 20 ms)
        rank_all(engine, queries[:1], vectors, retriever, ranking, plain)
        rankings, seconds = rank_all(engine, queries, vectors, retriever, ranking, plain)
        runs[retriever] = rankings
        results.append({"retriever": retriever, **measure(qrels, rankings),
                        "latency_ms": percentiles_ms(seconds or [0.0])})
    return results, runs
