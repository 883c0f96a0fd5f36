"""Relevance of an index on the judged dev and test queries, every method side by side.

    python -m bench.relevance --index indexes/reltext [--queries data/relevance/queries] [--repeat 2]

For each split (dev, test) of ``make relevanceset``: nDCG@10, P@10, recall@100 and MAP of

- **plain BM25**: bm25s over the same listings, title x3 + description (a baseline outside the
  project: the issue's "plain BM25");
- **lexical / dense / fused, untuned**: the previous method (equal-weight RRF, k = 60, title x4);
- **lexical / dense / fused, tuned**: the index's stored ranking (``python -m search.tune`` on dev);

each personalised by the queries' viewed listings (which are never returned), and then the
ambiguous queries alone, plain vs personalised. The tuned fusion is tested against every other
method on every metric (paired randomization test, :mod:`search.significance`): a difference of
a few thousandths on 41 queries is noise until the test says otherwise. The engine's latency is
timed ``--repeat`` times (p50/p99 of each pass, to give their spread).
Writes ``bench/out/relevance-<index name>.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common.atomic import atomic_write_text
from common.cli import positive_int, run
from common.trec import Query, read_qrels, read_queries
from search import judged, significance
from search.engine import SearchEngine
from search.metrics import percentiles_ms
from search.ranking import Ranking

OUT_DIR = Path("bench/out")
FUSION_KEYS = ("fusion", "dense_weight", "lexical_weight", "rrf_k")
TITLE_REPEAT = 3  # the plain baseline's title weight: the title written three times
PLAIN_BM25 = "plain BM25 (bm25s, title x3 + description)"
FUSED = "fused, tuned"  # the method the significance table tests against every other


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.relevance",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, required=True, metavar="INDEX_DIR",
                        help="an index built by python -m search.build (tuned or not)")
    parser.add_argument("--queries", type=Path, default=Path("data/relevance/queries"),
                        help="folder of dev.tsv, dev.qrels, test.tsv, test.qrels "
                             "(default: data/relevance/queries)")
    parser.add_argument("--repeat", type=positive_int, default=2,
                        help="timed passes over the queries (default: 2)")
    parser.add_argument("--out", type=Path, help="the JSON report "
                                                 "(default: bench/out/relevance-<index name>.json)")
    return parser


def main(args: argparse.Namespace) -> dict:
    engine = SearchEngine.open(args.index)
    encode = judged.query_encoder(engine)
    baseline = PlainBM25(engine)
    report = {"index": str(engine.generation), "arch": engine.meta["arch"],
              "ranking": engine.ranking.to_json(), "tuned": "tuned" in engine.meta, "splits": {}}
    for split in ("dev", "test"):
        queries = read_queries(args.queries / f"{split}.tsv")
        qrels = read_qrels(args.queries / f"{split}.qrels")
        judged.check_judgments(queries, qrels, args.queries / f"{split}.qrels")
        vectors, _ = judged.embed_all(encode, queries)
        report["splits"][split] = measure_split(engine, baseline, queries, qrels, vectors, args.repeat)
    out = args.out or OUT_DIR / f"relevance-{Path(args.index).name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(report, indent=2) + "\n")
    print_report(report)
    print(f"-> {out}")
    return report


def measure_split(engine: SearchEngine, baseline: PlainBM25, queries: list[Query], qrels: dict,
                  vectors: dict, repeat: int) -> dict:
    plain_bm25 = baseline.rank_all(queries)
    rows = [{"method": PLAIN_BM25, **judged.measure(qrels, plain_bm25)}]
    rankings = {PLAIN_BM25: plain_bm25}
    for name, ranking in (("untuned", Ranking()), ("tuned", engine.ranking)):
        results, runs = judged.evaluate(engine, queries, qrels, vectors, ranking)
        rows.extend({"method": f"{r['retriever']}, {name}", **r} for r in results)
        rankings.update({f"{retriever}, {name}": run for retriever, run in runs.items()})
    for method, ranking in best_by_fusion(engine).items():
        results, _ = judged.evaluate(engine, queries, qrels, vectors, ranking, retrievers=["fused"])
        rows.append({"method": f"fused, best {method} on dev", **results[0]})
    ambiguous = [q for q in queries if q.viewed]
    personal = []
    for name, ranking in (("untuned", Ranking()), ("tuned", engine.ranking)):
        for plain in (True, False):
            results, _ = judged.evaluate(engine, ambiguous, {q.qid: qrels[q.qid] for q in ambiguous},
                                         vectors, ranking, plain=plain)
            personal.extend({"method": f"{r['retriever']}, {name}, {'plain' if plain else 'personal'}",
                             **r} for r in results if r["retriever"] != "lexical")
    passes = []
    for _ in range(repeat):
        _, seconds = judged.rank_all(engine, queries, vectors, "fused", engine.ranking)
        passes.append(percentiles_ms(seconds))
    return {"queries": len(queries), "ambiguous": len(ambiguous), "results": rows,
            "significance": fused_against_others(qrels, rankings),
            "personalisation": personal, "fused_latency_passes": passes}


def fused_against_others(qrels: dict, rankings: dict[str, dict[str, list[str]]]) -> list[dict]:
    """The tuned fusion against every other method, metric by metric: the mean per-query
    difference and the paired randomization test's p-value (:mod:`search.significance`)."""
    if FUSED not in rankings:  # an index with one retriever has no fusion to test
        return []
    fused = judged.per_query(qrels, rankings[FUSED])
    return [{"against": method, **significance.compare(fused, judged.per_query(qrels, run))}
            for method, run in rankings.items() if method != FUSED]


def best_by_fusion(engine: SearchEngine) -> dict[str, Ranking]:
    """The best fusion of each method that search.tune found on dev, with the index's other
    choices (BM25 fields, personalisation): both methods are measured, one is stored."""
    steps = {step["step"]: step for step in engine.meta.get("tuned", {}).get("steps", [])}
    if "never loses" in steps:  # the last choice, made with every other setting in place
        return {method: Ranking.from_json(found) for method, found in
                steps["never loses"].get("best_by_fusion", {}).items() if found}
    rankings = {}
    for method, found in steps.get("fusion", {}).get("best_by_fusion", {}).items():
        if found:
            rankings[method] = engine.ranking.but(**{key: found[key] for key in FUSION_KEYS})
    return rankings


class PlainBM25:
    """bm25s over the index's listings: the title three times, then the description."""

    def __init__(self, engine: SearchEngine) -> None:
        import bm25s

        self._bm25s = bm25s
        records = engine.records.fetch(list(range(len(engine))))
        self.ids = [r["id"] for r in records]
        corpus = [" ".join([r["title"]] * TITLE_REPEAT + [r["description"]]) for r in records]
        self.model = bm25s.BM25()
        self.model.index(bm25s.tokenize(corpus, stopwords="en", show_progress=False),
                         show_progress=False)

    def rank_all(self, queries: list[Query]) -> dict[str, list[str]]:
        rankings = {}
        for query in queries:
            tokens = self._bm25s.tokenize([query.text], stopwords="en", return_ids=False,
                                          show_progress=False)
            depth = min(len(self.ids), judged.DEPTH + len(query.viewed))
            found, scores = self.model.retrieve(tokens, k=depth, show_progress=False)
            ids = [self.ids[int(i)] for i, s in zip(found[0], scores[0], strict=True) if s > 0]
            rankings[query.qid] = [i for i in ids if i not in query.viewed][:judged.DEPTH]
        return rankings


def print_report(report: dict) -> None:
    print(f"{report['arch']} index {report['index']} (tuned: {report['tuned']})")
    for split, data in report["splits"].items():
        print(f"\n{split}: {data['queries']} queries ({data['ambiguous']} with viewed listings)")
        _table(data["results"])
        if data.get("significance"):
            print(f"\n{split}: {FUSED} minus each method (paired randomization test, "
                  f"* = p < {significance.ALPHA})")
            _significance_table(data["significance"])
        print(f"\n{split}: the {data['ambiguous']} ambiguous queries, plain vs personalised")
        _table(data["personalisation"])
        spread = ", ".join(f"p50 {p['p50']:.2f} / p99 {p['p99']:.2f} ms"
                           for p in data["fused_latency_passes"])
        print(f"fused (tuned) engine latency per pass: {spread}")


def _significance_table(rows: list[dict]) -> None:
    print(f"| {'against':45s} | " + " | ".join(f"{m:15s}" for m in judged.METRICS) + " |")
    print(f"|{'-' * 47}|" + "|".join("-" * 17 for _ in judged.METRICS) + "|")
    for row in rows:
        cells = [f"{row[m]['diff']:+.3f} p={row[m]['p']:.3f}{'*' if row[m]['significant'] else ' '}"
                 for m in judged.METRICS]
        print(f"| {row['against']:45s} | " + " | ".join(f"{c:15s}" for c in cells) + " |")


def _table(rows: list[dict]) -> None:
    print(f"| {'method':45s} | nDCG@10 | P@10  | R@100 | MAP   |")
    print(f"|{'-' * 47}|---------|-------|-------|-------|")
    for row in rows:
        print(f"| {row['method']:45s} | {row['ndcg@10']:.3f}   | {row['p@10']:.3f} | "
              f"{row['recall@100']:.3f} | {row['map']:.3f} |")


if __name__ == "__main__":
    run(main, get_args_parser())
