"""Where does cutting a listing's text stop mattering? The token budget of the text encoder.

    python -m bench.encoder_budget --data data/relevance/clean \\
        --queries data/relevance/queries/dev.tsv --qrels data/relevance/queries/dev.qrels

Starts from the vectors of an index the encoder built (``--index``, at the default budget) and
re-embeds, per budget, only the listings whose text is longer than it (256 word pieces is
all-MiniLM-L6-v2's maximum, the reference). Prints per budget: the
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
from search.engine import SearchEngine
from search.listings import read_listings

DEFAULT_BUDGETS = "32,64,128,256"


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.encoder_budget",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a cleaned dataset with text")
    parser.add_argument("--index", type=Path,
                        help="an index the default encoder built of --data: its vectors are reused")
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
    started = time.perf_counter()
    lengths = np.array([len(e.ids) for e in _plain_tokenizer().encode_batch(texts)])
    print(f"{len(texts)} listings; word pieces median {int(np.median(lengths))}, "
          f"p90 {int(np.percentile(lengths, 90))}, over 256: {np.mean(lengths > 256):.1%}", flush=True)
    base_budget, base = _base_vectors(args.index, listings)
    vectors = {}
    for budget in budgets:
        vectors[budget] = base.copy()
        redo = np.flatnonzero(lengths > min(budget, base_budget))  # only these differ from base
        if len(redo) and budget != base_budget:
            encoder = SentenceEncoder(default_folder(), budget)
            vectors[budget][redo] = encoder.encode([texts[i] for i in redo])
        print(f"budget {budget}: {len(redo)} listings re-embedded", flush=True)
    full = vectors[budgets[-1]]
    queries = _queries(args.queries) if args.queries else {}
    query_vectors = SentenceEncoder(default_folder()).encode(list(queries.values())) if queries else None
    rows = []
    for budget in budgets:
        cut = np.flatnonzero(lengths > budget)
        cosines = (vectors[budget][cut] * full[cut]).sum(1) if len(cut) else np.ones(1)
        row = {"budget": budget, "cut_share": round(len(cut) / len(texts), 3),
               "cosine_mean": round(float(cosines.mean()), 4),
               "cosine_p5": round(float(np.percentile(cosines, 5)), 4)}
        if queries:
            row["dev_ndcg@10"] = round(_ndcg(query_vectors, queries, args.qrels, listings,
                                             vectors[budget]), 4)
        rows.append(row)
        print(json.dumps(row), flush=True)
    report = {"listings": len(texts), "tokens_median": int(np.median(lengths)),
              "tokens_p90": int(np.percentile(lengths, 90)), "budgets": rows,
              "seconds": round(time.perf_counter() - started, 1)}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def _base_vectors(index: Path | None, listings) -> tuple[int, np.ndarray]:
    """The vectors of an index the encoder built from the same data (saves embedding them again),
    and its budget; without ``--index``, every listing embedded at the default budget."""
    from aicore.sentence import DEFAULT_TOKEN_BUDGET

    if index is None:
        texts = [listing_text(x.title, x.description) for x in listings]
        return DEFAULT_TOKEN_BUDGET, SentenceEncoder(default_folder()).encode(texts)
    engine = SearchEngine.open(index)
    rows = np.asarray(engine.vectors.vectors)
    return int(engine.meta["encoder"]["token_budget"]), rows[[engine.position(x.id) for x in listings]]


def _plain_tokenizer():
    """The default encoder's tokenizer without truncation or padding: each text's full length."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(default_folder() / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def _queries(path: Path) -> dict[str, str]:
    rows = (line.split("\t") for line in path.read_text(encoding="utf-8").splitlines() if line)
    return {row[0]: row[1] for row in rows}


def _ndcg(qvectors: np.ndarray, queries: dict[str, str], qrels: Path, listings,
          vectors: np.ndarray) -> float:
    import ir_measures
    from ir_measures import ScoredDoc, nDCG

    scores = qvectors @ vectors.T  # (Q, N)
    run_docs = []
    for qid, row in zip(queries, scores, strict=True):
        for pos in np.argsort(-row)[:100]:
            run_docs.append(ScoredDoc(qid, listings[pos].id, float(row[pos])))
    judged = list(ir_measures.read_trec_qrels(str(qrels)))
    return ir_measures.calc_aggregate([nDCG @ 10], judged, run_docs)[nDCG @ 10]


if __name__ == "__main__":
    run(main, get_args_parser())
