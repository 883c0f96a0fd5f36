"""The query encoder's runtimes side by side: speed of one query, and what each does to accuracy.

    python -m bench.query_runtimes --index INDEX --queries dev.tsv --qrels dev.qrels

For eager PyTorch, ONNX Runtime fp32 and ONNX Runtime int8 (exported and quantised exactly as
``handler.query_archive`` builds ``query.mar``), on one thread: milliseconds per query (one at a
time, as the served model mostly sees them; p50/p99 over ``--repeat`` passes of the dev queries),
the cosine of each query vector to eager's, and dense nDCG@10 on judged dev queries (ir-measures)
against the index's listing vectors (built by eager). This is the gate's evidence:
docs/relevance.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from aicore.sentence import OnnxSentenceEncoder, SentenceEncoder, default_folder
from bench.encoder_budget import _ndcg, _queries
from common.cli import positive_int, run
from handler import query_archive
from search.engine import SearchEngine
from search.metrics import percentiles_ms


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.query_runtimes",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, required=True, help="an index the encoder built")
    parser.add_argument("--queries", type=Path, required=True, help="judged dev queries (TSV)")
    parser.add_argument("--qrels", type=Path, required=True, help="their TREC qrels")
    parser.add_argument("--repeat", type=positive_int, default=3, help="timed passes (default: 3)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    return parser


def main(args: argparse.Namespace) -> list[dict]:
    import torch

    torch.set_num_threads(1)
    engine = SearchEngine.open(args.index)
    listings = engine.records.fetch(list(range(len(engine))))
    ids = [record["id"] for record in listings]
    vectors = np.asarray(engine.vectors.vectors)[[engine.position(i) for i in ids]]
    queries = _queries(args.queries)
    texts = list(queries.values())
    eager = SentenceEncoder(default_folder())
    reference = eager.encode(texts)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("eager", "onnx-fp32", "onnx-int8"):
            encoder = eager if name == "eager" else _onnx(eager, Path(tmp) / name, name)
            rows.append(_measure(name, encoder, texts, reference, queries, args, ids, vectors))
            print(json.dumps(rows[-1]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return rows


def _onnx(eager: SentenceEncoder, stage: Path, runtime: str) -> OnnxSentenceEncoder:
    stage.mkdir(parents=True)
    fp32 = stage / "fp32.onnx"
    query_archive.export_onnx(eager, fp32)
    path = fp32
    if runtime == "onnx-int8":
        path = stage / "int8.onnx"
        query_archive.quantize_int8(fp32, path)
    return OnnxSentenceEncoder(default_folder(), path, eager.token_budget, eager.dim)


def _measure(name: str, encoder, texts: list[str], reference: np.ndarray, queries: dict,
             args: argparse.Namespace, ids: list[str], vectors: np.ndarray) -> dict:
    served = encoder.encode(texts)  # (Q, 384)
    seconds = []
    for _ in range(args.repeat):
        for text in texts:
            started = time.perf_counter()
            encoder.encode([text])
            seconds.append(time.perf_counter() - started)
    cosines = (served * reference).sum(1)
    listings = [_Id(i) for i in ids]
    return {"runtime": name, "query_ms": percentiles_ms(seconds),
            "cosine_to_eager_min": round(float(cosines.min()), 5),
            "dev_ndcg@10_dense": round(_ndcg(served, queries, args.qrels, listings, vectors), 4)}


class _Id:
    """What ``_ndcg`` reads of a listing: its id."""

    def __init__(self, listing_id: str) -> None:
        self.id = listing_id


if __name__ == "__main__":
    run(main, get_args_parser())
