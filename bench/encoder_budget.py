"""Where does cutting a listing's text stop mattering? The token budget of the text encoder.

    python -m bench.encoder_budget --data data/relevance/clean \\
        --queries data/relevance/queries/dev.tsv --qrels data/relevance/queries/dev.qrels

Embeds every listing at the encoder's maximum (256 word pieces for all-MiniLM-L6-v2), then again
at each smaller budget (only the listings longer than it change), and prints per budget: the
share of listings it cuts, the mean and 5th-percentile cosine of the cut vectors to the full ones,
and -- with judged dev queries -- dense nDCG@10 (ir-measures). Dev queries only: the budget is a
tuning choice (docs/relevance.md).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from aicore.sentence import SentenceEncoder, default_folder, listing_text
from common.cli import run
from search.listings import read_listings

DEFAULT_BUDGETS = "32,64,96,128,192,256"


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.encoder_budget",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a cleaned dataset with text")
    parser.add_argument("--queries", type=Path, help="judged dev queries (qid<TAB>text<TAB>viewed)")
    parser.add_argument("--qrels", type=Path, help="their TREC qrels")
    parser.add_argument("--budgets", default=DEFAULT_BUDGETS,
                        help=f"word-piece budgets, comma-separated (default: {DEFAULT_BUDGETS})")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    return parser


def main(args: argparse.Namespace) -> dict:
    import torch

    torch.set_num_threads(1)
    listings, _ = read_listings(args.data)
    texts = [listing_text(x.title, x.description) for x in listings]
    budgets = sorted(int(b) for b in args.budgets.split(","))
    full_encoder = SentenceEncoder(default_folder(), budgets[-1])
    lengths = np.array([len(e.ids) for e in _plain_tokenizer(full_encoder).encode_batch(texts)])
    started = time.perf_counter()
    full = full_encoder.encode(texts)  # (N, 384)
    rows = []
    queries = _queries(args.queries) if args.queries else {}
    for budget in budgets:
        vectors = full.copy()
        cut = np.flatnonzero(lengths > budget)
        if len(cut):
            vectors[cut] = SentenceEncoder(default_folder(), budget).encode([texts[i] for i in cut])
        cosines = (vectors[cut] * full[cut]).sum(1) if len(cut) else np.ones(1)
        row = {"budget": budget, "cut_share": round(len(cut) / len(texts), 3),
               "cosine_mean": round(float(cosines.mean()), 4),
               "cosine_p5": round(float(np.percentile(cosines, 5)), 4)}
        if queries:
            row["dev_ndcg@10"] = round(_ndcg(full_encoder, queries, args.qrels, listings, vectors), 4)
        rows.append(row)
        print(json.dumps(row), flush=True)
    report = {"listings": len(texts), "tokens_median": int(np.median(lengths)),
              "tokens_p90": int(np.percentile(lengths, 90)), "budgets": rows,
              "seconds": round(time.perf_counter() - started, 1)}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in report.items() if k != "budgets"}))
    return report


def _plain_tokenizer(encoder: SentenceEncoder):
    """The encoder's tokenizer without truncation or padding: each text's full length."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(encoder.tokenizer.to_str())
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def _queries(path: Path) -> dict[str, str]:
    rows = (line.split("\t") for line in path.read_text(encoding="utf-8").splitlines() if line)
    return {row[0]: row[1] for row in rows}


def _ndcg(encoder: SentenceEncoder, queries: dict[str, str], qrels: Path, listings,
          vectors: np.ndarray) -> float:
    import ir_measures
    from ir_measures import ScoredDoc, nDCG

    qvectors = encoder.encode(list(queries.values()))  # (Q, 384)
    scores = qvectors @ vectors.T  # (Q, N)
    run_docs = []
    for qid, row in zip(queries, scores, strict=True):
        for pos in np.argsort(-row)[:100]:
            run_docs.append(ScoredDoc(qid, listings[pos].id, float(row[pos])))
    judged = list(ir_measures.read_trec_qrels(str(qrels)))
    return ir_measures.calc_aggregate([nDCG @ 10], judged, run_docs)[nDCG @ 10]


if __name__ == "__main__":
    run(main, get_args_parser())
