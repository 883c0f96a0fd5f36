"""The judged half of ``query.mar``'s accuracy gate: dense dev nDCG@10 within
:data:`MAX_NDCG_DROP` of eager PyTorch.

The cosine half (``handler.query_archive``) checks each vector; this one checks what the vectors
are for. On the judged benchmark ``make relevanceset`` builds (``data/relevance``: cleaned
listings + dev queries with TREC qrels), every listing is embedded by eager PyTorch, as the
index build embeds it, and each dev query twice: by eager and by the runtime being gated. Each
query's ranking is the listings by cosine (its viewed listings left out, as the engine leaves
them out), scored by nDCG@10 with ir-measures; the runtime passes when its mean is at most
:data:`MAX_NDCG_DROP` below eager's. Dense retrieval alone, not personalised: the gate is about
the query encoder, not the fusion around it.

Without the benchmark (a fresh checkout before ``make relevanceset``) the gate cannot be measured
and the archive's ``runtime.json`` says so (``"ndcg": {"measured": false, "why": ...}``).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from aicore.sentence import listing_text
from common.dataset_format import PRODUCTS_FILE
from common.trec import read_qrels, read_queries

RELEVANCE_DIR = Path("data") / "relevance"  # what `make relevanceset` writes
MAX_NDCG_DROP = 0.01
RANK_DEPTH = 100  # ranked per query (nDCG@10 reads 10; the rest costs nothing here)


class Encoder(Protocol):
    def encode(self, texts: list[str]) -> np.ndarray:
        """``(B, H)`` unit rows."""


@dataclass(frozen=True)
class JudgedQueries:
    """The benchmark's listings and judged dev queries."""

    listing_ids: list[str]
    listing_texts: list[str]
    query_ids: list[str]
    query_texts: list[str]
    viewed: list[tuple[str, ...]]
    qrels: dict[str, dict[str, int]]


def find_judged(relevance_dir: Path | None) -> tuple[JudgedQueries | None, str]:
    """The judged dev queries under ``relevance_dir``, or None and why they cannot be read."""
    if relevance_dir is None:
        return None, "no judged queries given"
    relevance_dir = Path(relevance_dir)
    products = relevance_dir / "clean" / PRODUCTS_FILE
    queries, qrels = (relevance_dir / "queries" / f"dev.{ext}" for ext in ("tsv", "qrels"))
    missing = [str(path) for path in (products, queries, qrels) if not path.is_file()]
    if missing:
        return None, f"{', '.join(missing)} missing (`make relevanceset` builds them)"
    with products.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    judgments = read_qrels(qrels)
    judged = [q for q in read_queries(queries) if q.qid in judgments]
    if not judged:
        return None, f"no query of {queries} has judgments in {qrels}"
    return JudgedQueries(
        listing_ids=[row["id"] for row in rows],
        listing_texts=[listing_text(row["product_name"], row["product_description"]) for row in rows],
        query_ids=[q.qid for q in judged], query_texts=[q.text for q in judged],
        viewed=[tuple(q.viewed) for q in judged], qrels=judgments), ""


def not_measured(why: str) -> dict:
    """The gate record when nDCG could not be measured."""
    return {"measured": False, "why": why, "max_drop": MAX_NDCG_DROP}


class NdcgGate:
    """Eager's listing vectors and nDCG@10, computed once; then :meth:`check` per runtime."""

    def __init__(self, eager: Encoder, judged: JudgedQueries) -> None:
        self.judged = judged
        self.listings = eager.encode(judged.listing_texts)  # (N, H)
        self.eager = self.ndcg(eager)

    def ndcg(self, encoder: Encoder) -> float:
        """Mean dense nDCG@10 of ``encoder``'s query vectors over the judged dev queries."""
        return float(np.mean(list(self.per_query(encoder).values())))

    def per_query(self, encoder: Encoder) -> dict[str, float]:
        """Dense nDCG@10 of each judged dev query (0 for one that retrieves nothing judged)."""
        import ir_measures

        measure = ir_measures.parse_measure("nDCG@10")
        scores = encoder.encode(self.judged.query_texts) @ self.listings.T  # (Q, N)
        run: dict[str, dict[str, float]] = {}
        for qid, row, viewed in zip(self.judged.query_ids, scores, self.judged.viewed, strict=True):
            ranked = [i for i in np.argsort(-row) if self.judged.listing_ids[i] not in viewed]
            run[qid] = {self.judged.listing_ids[i]: float(RANK_DEPTH - rank)
                        for rank, i in enumerate(ranked[:RANK_DEPTH])}
        found = {row.query_id: float(row.value) for row in
                 ir_measures.iter_calc([measure], self.judged.qrels, run)}
        return {qid: found.get(qid, 0.0) for qid in self.judged.query_ids}

    def check(self, encoder: Encoder) -> dict:
        """The gate record of one runtime: both means, the drop, whether it passed."""
        served = self.ndcg(encoder)
        drop = self.eager - served
        return {"measured": True, "queries": len(self.judged.query_ids),
                "eager": round(self.eager, 4), "runtime": round(served, 4),
                "drop": round(drop, 4), "max_drop": MAX_NDCG_DROP,
                "passed": bool(drop <= MAX_NDCG_DROP + 1e-9)}
