"""Measure retrieval quality and latency of an index, like a search engine is measured.

    python -m search.evaluate --index INDEX --queries QUERIES.tsv --qrels QRELS [--run-out DIR] [--json OUT]
    python -m search.evaluate --index indexes/demo [--proxy http://127.0.0.1:8000]

**Judged queries** (``--queries`` and ``--qrels``, formats in :mod:`search.trec` and
docs/relevance.md): each retriever (fused, dense, lexical) ranks the top 100 for every query,
personalised by the query's viewed listings (``--plain``: not personalised); ir-measures scores
nDCG@10, P@10, recall@100 and MAP (:mod:`search.judged`), and the engine's latency is timed.
``--run-out DIR`` writes ``DIR/<retriever>.run`` (fused, dense, lexical; text_dense on an index
with text vectors) in TREC run format; ``--json OUT`` the
report. Judged listings the index does not hold are counted and reported.

**Without judgments** (the second form): with the split saved by the index's training run, the
**test** listings are the queries and the **training** listings the candidates (validation
listings are left out). A result is relevant when it has the query's root category. Query kinds,
whichever the dataset and model allow:

- ``text``: the listing's title (an export; image-folder datasets have no text);
- ``image``: its main photo (when the model embeds photos);
- ``text+image``: both.

On an index with text vectors the text is also embedded by its pretrained encoder and searched by
the ``text_dense`` retriever (fused with the others at the index's ranking).

For each kind, each retriever that can run (dense, lexical, fused) is scored with precision@10,
MAP@R (R = the relevant candidates) and nDCG@10, and timed: the index alone, query embedding
excluded. ``--proxy`` also times GET /search (text) and POST /search (photo, + text) through a
running proxy, embedding by TorchServe included. Writes ``INDEX_DIR/eval.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from common.dataset_format import SPLIT_FILE
from common.atomic import atomic_write_text
from common.cli import UserError, positive_int, run
from search import layout
from search.embedders import IMAGE, TEXT, load_embedder
from search.encoder import text_encoder_embedder
from search.engine import SearchEngine, SearchRequest
from search.metrics import map_at_r, ndcg_at_k, percentiles_ms, precision_at_k
from common import trec
from search import judged

K = 10
MAX_DEPTH = 1000  # MAP@R ranks at most this many results per query
DEFAULT_MAX_QUERIES = 500
PROXY_TIMEOUT_S = 60


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m search.evaluate",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, required=True, metavar="INDEX_DIR",
                        help="an index built by python -m search.build")
    parser.add_argument("--proxy", metavar="URL",
                        help="also time queries through this running proxy, e.g. http://127.0.0.1:8000")
    parser.add_argument("--max-queries", type=positive_int, default=DEFAULT_MAX_QUERIES,
                        help=f"use at most this many test listings, a seeded sample "
                             f"(default: {DEFAULT_MAX_QUERIES})")
    parser.add_argument("--seed", type=int, default=0, help="seeds the query sample (default: 0)")
    judged_args = parser.add_argument_group("judged queries (both or neither)")
    judged_args.add_argument("--queries", type=Path, metavar="QUERIES.tsv",
                             help="qid<TAB>text<TAB>viewed ids (comma-separated, may be empty)")
    judged_args.add_argument("--qrels", type=Path, metavar="QRELS",
                             help="TREC qrels: qid 0 listing_id grade")
    judged_args.add_argument("--run-out", type=Path, metavar="DIR",
                             help="write DIR/<retriever>.run: fused, dense, lexical (+ text_dense on an "
                                  "index with text vectors), TREC run, top 100")
    judged_args.add_argument("--json", type=Path, metavar="OUT", help="write the report as JSON")
    judged_args.add_argument("--plain", action="store_true",
                             help="do not personalise by the viewed listings (still left out)")
    return parser


def main(args: argparse.Namespace) -> dict:
    if (args.queries is None) != (args.qrels is None):
        raise UserError("--queries and --qrels go together: give both, or neither for the "
                        "same-category evaluation")
    if args.queries is not None:
        return main_judged(args)
    if args.run_out or args.json or args.plain:
        raise UserError("--run-out, --json and --plain need --queries and --qrels")
    engine = SearchEngine.open(args.index, max_k=MAX_DEPTH)
    queries, candidates = split_positions(engine, args.max_queries, args.seed)
    records = engine.records.fetch(queries)
    embedder = load_embedder(Path(engine.meta["run"]))
    text_embedder = text_encoder_embedder(engine.meta)  # an index with text vectors
    kinds = query_kinds(engine)
    results = []
    for kind in kinds:
        inputs = [query_input(engine, record, kind) for record in records]
        vectors = [(embed(embedder, engine, text, image),
                    text_embedder.embed_query(text=text) if text_embedder and text else None)
                   for text, image in inputs]
        for retriever in retrievers_for(kind, engine):
            results.append(score(engine, records, inputs, vectors, candidates, kind, retriever))
    report = {"index": str(engine.generation), "arch": engine.meta["arch"],
              "queries": len(queries), "candidates": int(candidates.sum()),
              "relevance": "same root category", "results": results}
    if args.proxy:
        report["proxy"] = time_proxy(args.proxy.rstrip("/"), records, inputs_by_kind(engine, records, kinds))
    atomic_write_text(Path(args.index) / layout.EVAL_FILE, json.dumps(report, indent=2) + "\n")
    print_report(report)
    return report


def main_judged(args: argparse.Namespace) -> dict:
    """Score the index on judged queries; see the module docstring."""
    queries, qrels = trec.read_queries(args.queries), trec.read_qrels(args.qrels)
    judged.check_judgments(queries, qrels, args.qrels)
    engine = SearchEngine.open(args.index)
    vectors, embed_seconds = judged.embed_all(judged.query_encoder(engine), queries)
    results, runs = judged.evaluate(engine, queries, qrels, vectors, plain=args.plain)
    report = {"index": str(engine.generation), "arch": engine.meta["arch"],
              "queries": str(args.queries), "qrels": str(args.qrels),
              "judged_queries": len(qrels), "unjudged_queries": [q.qid for q in queries
                                                                 if q.qid not in qrels],
              "personalised": not args.plain and any(q.viewed for q in queries),
              "missing_judged": judged.missing_judged(engine, qrels),
              "ranking": engine.ranking.to_json(), "results": results}
    if any(v is not None for v in vectors.values()):
        report["embedding_ms"] = percentiles_ms(embed_seconds)
    if args.run_out:
        args.run_out.mkdir(parents=True, exist_ok=True)
        for retriever, rankings in runs.items():
            trec.write_run(args.run_out / f"{retriever}.run", rankings, f"aicore-{retriever}")
    if args.json:
        atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")
    print_judged(report)
    return report


def print_judged(report: dict) -> None:
    missing = report["missing_judged"]
    print(f"{report['judged_queries']} judged queries ({report['arch']}"
          f"{', personalised by viewed listings' if report['personalised'] else ''}); "
          f"{missing['listings']} of {missing['of']} judged listings are not in the index "
          f"({missing['relevant_judgments']} relevant judgments lost)")
    if report["unjudged_queries"]:
        print(f"{len(report['unjudged_queries'])} queries have no judgment and are not scored: "
              f"{', '.join(report['unjudged_queries'][:5])}")
    print(f"{'retriever':10s} {'nDCG@10':>8s} {'P@10':>7s} {'R@100':>7s} {'MAP':>7s} "
          f"{'p50 ms':>8s} {'p99 ms':>8s}")
    for row in report["results"]:
        latency = row["latency_ms"]
        print(f"{row['retriever']:10s} {row['ndcg@10']:8.3f} {row['p@10']:7.3f} "
              f"{row['recall@100']:7.3f} {row['map']:7.3f} {latency['p50']:8.2f} {latency['p99']:8.2f}")
    if "embedding_ms" in report:
        print(f"query embedding (in-process): p50 {report['embedding_ms']['p50']:.2f} ms, "
              f"p99 {report['embedding_ms']['p99']:.2f} ms")


def split_positions(engine: SearchEngine, max_queries: int, seed: int) -> tuple[list[int], np.ndarray]:
    """Positions of the test listings (queries, a seeded sample of at most ``max_queries``) and
    the ``(N,)`` mask of the training listings (candidates), from the run's ``split.json``.

    Raises:
        UserError: without a split, or when the split shares no listing with the index.
    """
    path = Path(engine.meta["run"]) / SPLIT_FILE
    try:
        split = json.loads(path.read_text(encoding="utf-8"))
        train, test = set(split["train"]), set(split["test"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"cannot read the run's split {path}: {exc}") from None
    first_photo = [ids[0] for ids in _image_ids(engine)]
    queries = [pos for pos, image in enumerate(first_photo) if image in test]
    candidates = np.array([image in train for image in first_photo], dtype=bool)
    if not queries or not candidates.any():
        raise UserError(f"the split {path} has no test or no training listing in the index: was "
                        "the index built from the run's own dataset?")
    if len(queries) > max_queries:
        rng = np.random.default_rng(seed)
        queries = sorted(rng.choice(queries, size=max_queries, replace=False).tolist())
    return queries, candidates


def _image_ids(engine: SearchEngine) -> list[list[str]]:
    rows = engine.records._connection().execute("SELECT image_ids FROM listings ORDER BY pos")
    return [json.loads(row[0]) for row in rows]


def query_kinds(engine: SearchEngine) -> list[str]:
    kinds = []
    if engine.meta.get("has_text"):
        kinds.append("text")
    if IMAGE in engine.modalities and engine.meta.get("has_photos", True):
        kinds.append("image")
        if engine.meta.get("has_text"):
            kinds.append("text+image")
    return kinds


def retrievers_for(kind: str, engine: SearchEngine) -> list[str]:
    dense = IMAGE in kind and IMAGE in engine.modalities or TEXT in kind and TEXT in engine.modalities
    lexical = TEXT in kind
    text_dense = TEXT in kind and engine.text_vectors is not None
    return (["dense"] if dense else []) + (["lexical"] if lexical else []) + \
        (["text_dense"] if text_dense else []) + \
        (["fused"] if dense + lexical + text_dense > 1 else [])


def query_input(engine: SearchEngine, record: dict, kind: str) -> tuple[str | None, bytes | None]:
    text = record["title"] if TEXT in kind else None
    image = (engine.data_root / record["image_paths"][0]).read_bytes() if IMAGE in kind else None
    return text, image


def inputs_by_kind(engine: SearchEngine, records: list[dict], kinds: list[str]) -> dict:
    return {kind: [query_input(engine, record, kind) for record in records] for kind in kinds}


def embed(embedder, engine: SearchEngine, text: str | None, image: bytes | None) -> np.ndarray | None:
    text = text if TEXT in engine.modalities else None
    image = image if IMAGE in engine.modalities else None
    if text is None and image is None:
        return None
    return embedder.embed_query(text=text, image=image)


def score(engine: SearchEngine, records: list[dict], inputs: list, vectors: list,
          candidates: np.ndarray, kind: str, retriever: str) -> dict:
    """Metrics and index latency of one (query kind, retriever) over every query; ``vectors``:
    each query's (vector by the index's model, text vector by its text encoder)."""
    precision, maps, ndcgs, seconds = [], [], [], []
    for record, (text, _), (vector, text_vector) in zip(records, inputs, vectors, strict=True):
        relevant_total = int(np.sum(candidates & (engine.category_of == record["category"])))
        request = SearchRequest(text=text, vector=vector, text_vector=text_vector,
                                retriever=retriever,
                                k=min(MAX_DEPTH, max(K, relevant_total)), candidates=candidates)
        started = time.perf_counter()
        result = engine.search(request)
        seconds.append(time.perf_counter() - started)
        relevant = [hit.category == record["category"] for hit in result.hits]
        precision.append(precision_at_k(relevant, K))
        maps.append(map_at_r(relevant, relevant_total))
        ndcgs.append(ndcg_at_k(relevant, K, relevant_total))
    return {"query": kind, "retriever": retriever, "precision@10": round(float(np.mean(precision)), 4),
            "map@r": round(float(np.mean(maps)), 4), "ndcg@10": round(float(np.mean(ndcgs)), 4),
            "latency_ms": percentiles_ms(seconds)}


def time_proxy(url: str, records: list[dict], inputs: dict) -> list[dict]:
    """p50/p99 of GET /search (text) and POST /search (photo [+ text]) through the proxy.

    Raises:
        UserError: when the proxy does not answer 200 (its detail is passed on).
    """
    import requests

    timings = []
    with requests.Session() as session:
        session.trust_env = False  # a loopback proxy, never through an HTTP proxy
        for kind, rows in inputs.items():
            seconds = []
            for text, image in rows:
                started = time.perf_counter()
                if image is None:
                    response = session.get(f"{url}/search", params={"q": text, "k": K},
                                           timeout=PROXY_TIMEOUT_S)
                else:
                    response = session.post(f"{url}/search", params={"k": K},
                                            data={"q": text} if text else None,
                                            files={"image": ("query.png", image)},
                                            timeout=PROXY_TIMEOUT_S)
                seconds.append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise UserError(f"the proxy at {url} answered {response.status_code}: "
                                    f"{response.text[:300]}")
            timings.append({"query": kind, "route": "GET /search" if kind == "text" else "POST /search",
                            "latency_ms": percentiles_ms(seconds)})
    return timings


def print_report(report: dict) -> None:
    print(f"{report['queries']} test listings as queries against {report['candidates']} training "
          f"listings ({report['arch']}; relevant = same root category)")
    print(f"{'query':11s} {'retriever':10s} {'P@10':>7s} {'MAP@R':>7s} {'nDCG@10':>8s} "
          f"{'p50 ms':>8s} {'p99 ms':>8s}")
    for row in report["results"]:
        latency = row["latency_ms"]
        print(f"{row['query']:11s} {row['retriever']:10s} {row['precision@10']:7.3f} "
              f"{row['map@r']:7.3f} {row['ndcg@10']:8.3f} {latency['p50']:8.2f} {latency['p99']:8.2f}")
    for row in report.get("proxy", []):
        latency = row["latency_ms"]
        print(f"proxy {row['route']:12s} {row['query']:11s} p50 {latency['p50']:.1f} ms, "
              f"p99 {latency['p99']:.1f} ms over {latency['n']} queries (embedding included)")


if __name__ == "__main__":
    run(main, get_args_parser())
