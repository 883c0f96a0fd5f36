"""Choose the index's ranking on judged dev queries and store it with the index.

    python -m search.tune --index INDEX --queries DEV.tsv --qrels DEV.qrels [--json OUT] [--dry-run]

Four choices, each by nDCG@10 on the dev queries (ir-measures, :mod:`search.judged`), in order:

1. **BM25 field weights** (title, description, category path; location kept): a grid, scored on
   the lexical retriever alone;
2. **fusion**: weighted RRF (k = 60) and normalised score fusion, the dense retriever's weight
   against the lexical one's from 0 (lexical alone, then dense results after) up to dense alone,
   scored on the queries without their viewed listings. Both single retrievers are candidates, so
   on dev the fused ranking is never worse than the better of the two;
3. **personalisation**: the user vector's share of the dense query (0 = not personalised), the
   decay of older views and the dense retriever's fusion weight when a query is personalised,
   scored on the queries that have viewed listings;
4. **never loses**: the fusion settings again (method, weights, the depth each retriever hands
   to fusion, the personalised dense weight), on every dev query as ``search.evaluate`` scores
   them, with BM25 and the user vector as chosen.

On an image or multimodal index with text vectors (three retrievers: the run's dense one, BM25 and
text-dense), the text-dense retriever plays the dense one's part in steps 2-4 (text queries
reach the image vectors only through a personalised query's user vector), and steps 3-4 also
choose the image-dense retriever's weight for a personalised query. The image-dense weight of a
query with a photo keeps its default (1): no judged query has a photo.

Fusion is chosen among the candidates that are, on the dev queries, at least as good as the best
single retriever on every metric (nDCG@10, P@10, recall@100, MAP) -- fusion that never loses --
and only when none is, by nDCG@10 alone (the report says so); a current choice that loses is
replaced even by a lower nDCG@10 that does not. Otherwise a choice replaces the current one only
when it scores higher. The result is written into a new
index generation (the live one's files hard-linked, ``meta.json`` with ``"ranking"`` and
``"tuned"``) published atomically: a running proxy picks it up at its next request. Tune on dev
queries only; measure on test with ``python -m search.evaluate``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

from common.atomic import atomic_write_text
from common.cli import UserError, run
from common.trec import Query, read_qrels, read_queries
from search import judged, layout
from search.engine import SearchEngine
from search.ranking import FUSIONS, Ranking

OBJECTIVE = "ndcg@10"
TITLE_WEIGHTS = (1.0, 2.0, 4.0, 8.0)
DESCRIPTION_WEIGHTS = (0.5, 1.0, 2.0)
CATEGORY_WEIGHTS = (0.0, 1.0, 2.0, 4.0)
# the dense retriever's weight relative to the lexical one's; the last pair is dense alone
FUSION_WEIGHTS = ((0.0, 1.0), (0.1, 1.0), (0.2, 1.0), (0.3, 1.0), (0.5, 1.0), (0.7, 1.0),
                  (1.0, 1.0), (1.0, 0.7), (1.0, 0.5), (1.0, 0.3), (1.0, 0.1), (1.0, 0.0))
PERSONAL_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
DECAYS = (0.5, 0.7, 1.0)
PERSONAL_DENSE_WEIGHTS = (None, 0.5, 1.0, 2.0, 4.0)  # None: the plain queries' dense weight
# the image-dense retriever's weight in a personalised text query of an index with text vectors
PERSONAL_IMAGE_WEIGHTS = (0.0, 0.1, 0.3, 1.0)
# candidates per retriever handed to fusion (search.limits.FUSION_DEPTH is the untuned one)
DEPTHS = (100, 200, 400)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m search.tune",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, required=True, metavar="INDEX_DIR",
                        help="an index built by python -m search.build")
    parser.add_argument("--queries", type=Path, required=True, metavar="DEV.tsv",
                        help="dev queries: qid<TAB>text<TAB>viewed ids (never the test queries)")
    parser.add_argument("--qrels", type=Path, required=True, metavar="DEV.qrels",
                        help="their TREC qrels: qid 0 listing_id grade")
    parser.add_argument("--json", type=Path, metavar="OUT", help="write what was tried and chosen")
    parser.add_argument("--dry-run", action="store_true", help="choose and print, store nothing")
    return parser


def main(args: argparse.Namespace) -> Ranking:
    queries, qrels = read_queries(args.queries), read_qrels(args.qrels)
    judged.check_judgments(queries, qrels, args.qrels)
    queries = [q for q in queries if q.qid in qrels]
    engine = SearchEngine.open(args.index)
    vectors, _ = judged.embed_all(judged.query_encoder(engine), queries)
    tuner = Tuner(engine, queries, qrels, vectors)
    start = Ranking()  # the previous method: what an untuned index does
    ranking = tuner.bm25(start)
    if tuner.main in judged.retrievers_for(engine):  # a retriever of the query text's vector
        ranking = tuner.fusion(ranking)
        ranking = tuner.personalisation(ranking)
        ranking = tuner.never_loses(ranking)
    report = {"index": str(engine.generation), "queries": str(args.queries), "qrels": str(args.qrels),
              "objective": OBJECTIVE, "untuned": start.to_json(), "chosen": ranking.to_json(),
              "steps": tuner.steps}
    if args.json:
        atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")
    if not args.dry_run:
        store(Path(args.index), engine, ranking, report)
    return ranking


class Tuner:
    """Scores candidate rankings on the dev queries and keeps a log of each step."""

    def __init__(self, engine: SearchEngine, queries: list[Query], qrels: dict, vectors: dict) -> None:
        self.engine, self.qrels, self.vectors = engine, qrels, vectors
        self.queries = queries
        self.viewed = [q for q in queries if q.viewed]
        self.steps: list[dict] = []
        self._cache: dict[tuple, dict] = {}
        self.singles = [r for r in judged.retrievers_for(engine) if r != "fused"]
        # the retriever of the query text's vector: the text encoder's when the index has one
        self.main = "text_dense" if engine.text_vectors is not None else "dense"
        # the other dense retriever (image) of such an index: personalised queries only
        self.other = "dense" if self.main == "text_dense" else None

    def weights(self, main: float, lexical: float) -> dict[str, float]:
        """The :class:`Ranking` fields of the text-vector retriever's and BM25's weights."""
        return {f"{self.main}_weight": main, "lexical_weight": lexical}

    def personal(self, main: float | None, other: float | None = None) -> dict:
        """The fields of the personalised dense weights (``other``: the image-dense one of an
        index with text vectors; ignored without it)."""
        changes: dict = {f"personal_{self.main}_weight": main}
        if self.other is not None:
            changes[f"personal_{self.other}_weight"] = other
        return changes

    def measure(self, ranking: Ranking, retriever: str, queries: list[Query], plain: bool) -> dict:
        key = (ranking, retriever, tuple(q.qid for q in queries), plain)
        if key not in self._cache:
            rankings, _ = judged.rank_all(self.engine, queries, self.vectors, retriever, ranking, plain)
            self._cache[key] = judged.measure({q.qid: self.qrels[q.qid] for q in queries}, rankings)
        return self._cache[key]

    def floor(self, ranking: Ranking, queries: list[Query], plain: bool) -> dict[str, float]:
        """The better single retriever on each metric, under ``ranking``: what fusion must reach."""
        alone = [self.measure(ranking.single(), r, queries, plain) for r in self.singles]
        return {metric: max(m[metric] for m in alone) for metric in judged.METRICS}

    def best(self, name: str, current: Ranking, candidates: list[Ranking], retriever: str,
             queries: list[Query], plain: bool, fused: bool = False) -> Ranking:
        """The candidate with the best objective; ``current`` unless one beats it. With ``fused``,
        only among the candidates that lose to neither retriever alone on any metric (when
        some do: else the best objective, and the step says the floor was missed)."""
        if not queries:
            return current
        scored = [(self.measure(c, retriever, queries, plain), c) for c in [current, *candidates]]
        keep = [pair for pair in scored
                if not fused or never_loses(pair[0], self.floor(pair[1], queries, plain))]
        top_metrics, top = max(keep or scored, key=lambda pair: pair[0][OBJECTIVE])  # first: current
        step = {"step": name, "retriever": retriever, "queries": len(queries),
                "before": scored[0][0], "after": top_metrics, "chosen": top.to_json(),
                "tried": len(scored)}
        if fused:
            step["never_loses"] = {"candidates": len(keep), "floor": self.floor(top, queries, plain)}
            # the best of each fusion method, so both can be measured on test
            step["best_by_fusion"] = {
                method: max(((m, c.to_json()) for m, c in keep or scored if c.fusion == method),
                            key=lambda pair: pair[0][OBJECTIVE], default=(None, None))[1]
                for method in FUSIONS}
        self.steps.append(step)
        floor = "" if not fused else f" ({len(keep)} of {len(scored)} never lose to a single retriever)"
        print(f"{name:16s} {retriever:8s} {len(queries):3d} dev queries: nDCG@10 "
              f"{scored[0][0][OBJECTIVE]:.4f} -> {top_metrics[OBJECTIVE]:.4f}{floor}", flush=True)
        return top

    def bm25(self, current: Ranking) -> Ranking:
        location = current.bm25_weights[3]
        grid = [current.but(bm25_weights=(t, d, c, location)) for t, d, c in
                itertools.product(TITLE_WEIGHTS, DESCRIPTION_WEIGHTS, CATEGORY_WEIGHTS)]
        return self.best("bm25 fields", current, grid, "lexical", self.queries, plain=True)

    def fusion(self, current: Ranking) -> Ranking:
        grid = [current.but(fusion=method, **self.weights(d, lex))
                for method in FUSIONS for d, lex in FUSION_WEIGHTS]
        return self.best("fusion", current, grid, "fused", self.queries, plain=True, fused=True)

    def personalisation(self, current: Ranking) -> Ranking:
        others = PERSONAL_IMAGE_WEIGHTS if self.other is not None else (None,)
        grid = [current.but(personal_weight=w, decay=decay, **self.personal(dense, other))
                for w, decay, dense, other in itertools.product(PERSONAL_WEIGHTS, DECAYS,
                                                                PERSONAL_DENSE_WEIGHTS, others)]
        # by nDCG@10 alone: a never-lose floor here would be the dense retriever personalised by
        # the same candidate, which favours a weak user vector (measured: it chose none at all)
        return self.best("personalisation", current, grid, "fused", self.viewed, plain=False)

    def never_loses(self, current: Ranking) -> Ranking:
        """The fusion (method, weights, depth, personalised dense weight) with the best nDCG@10
        among those that lose to neither retriever alone on any metric, on every dev query as
        ``search.evaluate`` scores them (personalised where they have viewed listings).

        The fusion step checks plain queries and personalisation is chosen by nDCG@10 alone, so
        their combination can still lose (measured: fused below dense on dev recall@100 and MAP);
        this step only moves the fusion settings, keeping BM25 and the user vector. Dense alone
        (lexical weight 0) is among the candidates, so one always qualifies unless the lexical
        retriever beats the dense one on some metric.
        """
        main = getattr(current, f"personal_{self.main}_weight")
        # the image-dense personal weight: as chosen, or out of the fusion
        others = ((None,) if self.other is None
                  else tuple(dict.fromkeys((getattr(current, f"personal_{self.other}_weight"), 0.0))))
        grid = [current.but(fusion=method, depth=depth, **self.weights(d, lex),
                            **self.personal(personal, other))
                for method in FUSIONS for d, lex in FUSION_WEIGHTS for depth in DEPTHS
                for personal in dict.fromkeys((main, *PERSONAL_DENSE_WEIGHTS))
                for other in others]
        return self.best("never loses", current, grid, "fused", self.queries, plain=False,
                         fused=True)


def never_loses(metrics: dict[str, float], floor: dict[str, float]) -> bool:
    return all(metrics[name] >= floor[name] - 1e-9 for name in floor)


def store(index_dir: Path, engine: SearchEngine, ranking: Ranking, report: dict) -> Path:
    """Publish a generation of the same index with ``ranking`` in its meta.

    Raises:
        UserError: when a build published another generation since ``engine`` was opened.
    """
    with layout.build_lock(index_dir):
        if layout.current_generation(index_dir) != engine.generation:
            raise UserError(f"{index_dir} was rebuilt while tuning; tune the new index again")
        meta = {**engine.meta, "ranking": ranking.to_json(),
                "tuned": {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                          "queries": report["queries"], "qrels": report["qrels"],
                          "objective": OBJECTIVE, "steps": report["steps"]}}
        generation = layout.derive_generation(index_dir, engine.generation, meta)
        layout.publish(index_dir, generation)
    print(f"{index_dir}: ranking stored in generation {generation.name}: {ranking.to_json()}")
    return generation


if __name__ == "__main__":
    run(main, get_args_parser())
