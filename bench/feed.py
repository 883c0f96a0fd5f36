"""Buyers' sessions on the real judged data: search with a session's views, and the feed.

    python -m bench.feed --index indexes/relminilm [--queries data/relevance/queries]

1. **Judged ambiguous queries through the session path** (dev and test): each query's viewed
   listings are recorded as views of a fresh session in a real :class:`SessionStore`, read back
   as ``/search`` reads them (latest first, only listings the index holds) and the query ranked
   with them; next to the same query plain (its viewed listings left out as well) and with the
   explicit ``viewed`` list. nDCG@10 / P@10 / R@100 / AP by ir-measures.
2. **Feed replay**: sessions that view listings of one kind (root category), the views drawn at
   random from that kind (``--repeat`` seeds). The index's kinds are split in two: ``lambda`` and
   the feed's decay are chosen on the dev kinds, the figures quoted for the test kinds.
   - share of the viewed kind in the feed's top 10 after 1, 3, 5 and 10 views, the number of
     distinct kinds and the intra-list diversity (mean pairwise 1 - cosine) of the top 10, and
     the expected clicks of a buyer who wants that kind (0.7) and one other (0.3) under the
     simulator's position-biased click model (``buyers.simulate``), for each ``lambda``;
   - a change of interest: after 10 views of kind A, views of kind B one at a time: how many it
     takes until B is at least half of the top 10 (capped at :data:`MAX_FOLLOW`), and how much A
     keeps after 10 views of A and one stray view of B, for each decay.
   Baselines: the share of each kind in the index (a random feed) and the cold feed.

``lambda``: the lowest on the dev kinds whose share of the viewed kind after 5 views keeps
:data:`RETAIN` of the undiversified feed's (``lambda`` = 1): mostly, not only, that kind; decay:
the fastest to follow a change whose share of A after one stray view stays at least 0.5.
Writes ``bench/out/feed-<index name>.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from buyers.feed import cold, feed, held
from buyers.simulate import ETA, PRIMARY, SECONDARY, STRAY
from buyers.store import Event, SessionStore
from common.atomic import atomic_write_text
from common.cli import positive_int, run
from common.trec import Query, read_qrels, read_queries
from search import judged
from search.engine import SearchEngine
from search.limits import MAX_VIEWED

OUT_DIR = Path("bench/out")
K = 10
LAMBDAS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.3)
DECAYS = (1.0, 0.9, 0.8, 0.7, 0.5)
VIEW_COUNTS = (1, 3, 5, 10)
RETAIN = 0.9  # lambda keeps >= 90% of the undiversified feed's share of the viewed kind
MAX_FOLLOW = 15
A_VIEWS = 10  # views of the first interest before the change
MIN_KIND = 40  # kinds with fewer listings cannot fill a feed of one kind plus views


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.feed",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, required=True, metavar="INDEX_DIR",
                        help="an index of data/relevance (e.g. make text-index)")
    parser.add_argument("--queries", type=Path, default=Path("data/relevance/queries"),
                        help="folder of dev/test .tsv and .qrels (default: data/relevance/queries)")
    parser.add_argument("--repeat", type=positive_int, default=3,
                        help="random draws of views per kind (default: 3)")
    parser.add_argument("--out", type=Path,
                        help="the JSON report (default: bench/out/feed-<index name>.json)")
    return parser


def main(args: argparse.Namespace) -> dict:
    engine = SearchEngine.open(args.index)
    with tempfile.TemporaryDirectory() as state:
        store = SessionStore(Path(state) / "sessions.db")
        report = {"index": str(engine.generation), "ranking": engine.ranking.to_json(),
                  "session_search": {split: session_search(engine, store, args.queries, split)
                                     for split in ("dev", "test")}}
        store.close()
    report["feed"] = feed_replay(engine, args.repeat)
    print_report(report)
    out = args.out or OUT_DIR / f"feed-{Path(args.index).name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return report


# --- 1. judged queries through the session path --------------------------------------------------

def session_search(engine: SearchEngine, store: SessionStore, folder: Path, split: str) -> dict:
    queries = [q for q in read_queries(folder / f"{split}.tsv") if q.viewed]
    qrels = {qid: docs for qid, docs in read_qrels(folder / f"{split}.qrels").items()
             if qid in {q.qid for q in queries}}
    vectors, _ = judged.embed_all(judged.query_encoder(engine), queries)
    through_session = []
    for query in queries:
        session = store.new_session()
        # recorded oldest first, so the query's first viewed id is the latest view
        store.record(session, [Event(type="view", source="listing", listing=v)
                               for v in reversed(query.viewed)])
        views = held(engine, store.views(session, MAX_VIEWED))
        through_session.append(Query(query.qid, query.text, tuple(views)))
    runs = {"plain": judged.rank_all(engine, queries, vectors, "fused", plain=True)[0],
            "viewed (explicit)": judged.rank_all(engine, queries, vectors, "fused")[0],
            "session views": judged.rank_all(engine, through_session, vectors, "fused")[0]}
    return {"queries": len(queries),
            "same_as_explicit": sum(runs["session views"][q.qid] == runs["viewed (explicit)"][q.qid]
                                    for q in queries),
            "methods": {name: judged.measure(qrels, ranking) for name, ranking in runs.items()}}


# --- 2. the feed ---------------------------------------------------------------------------------

def feed_replay(engine: SearchEngine, repeat: int) -> dict:
    by_kind = _listings_by_kind(engine)
    kinds = sorted(kind for kind, ids in by_kind.items() if len(ids) >= MIN_KIND)
    splits = {"dev": kinds[0::2], "test": kinds[1::2]}
    index_share = {kind: round(len(by_kind[kind]) / len(engine), 4) for kind in kinds}
    kind_of = {listing: kind for kind, ids in by_kind.items() for listing in ids}
    lambdas = {split: {str(lam): _views_of_one_kind(engine, by_kind, kind_of, names, lam, repeat)
                       for lam in LAMBDAS} for split, names in splits.items()}
    dev = lambdas["dev"]
    focused = dev[str(max(LAMBDAS))]["share_after"]["5"]  # no diversification
    lam = min(float(x) for x in dev if dev[x]["share_after"]["5"] >= RETAIN * focused)
    decays = {split: {str(decay): _follow(engine, by_kind, kind_of, names, lam, decay, repeat)
                      for decay in DECAYS} for split, names in splits.items()}
    steady = [d for d in decays["dev"] if decays["dev"][d]["share_a_after_stray"] >= 0.5]
    decay = min(steady or list(decays["dev"]), key=lambda d: (decays["dev"][d]["views_to_follow"],
                                                             -float(d)))
    cold_items = cold(engine, [], K, lam)
    return {"kinds": splits, "index_share": index_share,
            "random_feed_share": {s: round(float(np.mean([index_share[k] for k in names])), 4)
                                  for s, names in splits.items()},
            "cold_feed_kinds": len({item.category for item in cold_items}),
            "by_lambda": lambdas, "chosen_lambda": lam,
            "by_decay": decays, "chosen_decay": float(decay)}


def _views_of_one_kind(engine: SearchEngine, by_kind: dict, kind_of: dict, kinds: Sequence[str],
                       lam: float, repeat: int) -> dict:
    shares: dict[int, list[float]] = {n: [] for n in VIEW_COUNTS}
    distinct, diversity, clicks = [], [], []
    per_seed = []  # each seed's mean share after 5 views: the spread of the draws
    for seed in range(repeat):
        per_seed.append(len(shares[5]))
        rng = np.random.default_rng(seed)
        for i, kind in enumerate(kinds):
            views = list(rng.choice(by_kind[kind], max(VIEW_COUNTS), replace=False))
            second = kinds[(i + 1) % len(kinds)]
            for n in VIEW_COUNTS:
                items = feed(engine, views[:n], [], K, lam)
                shares[n].append(_share(items, kind))
                if n == 5:
                    distinct.append(len({item.category for item in items}))
                    diversity.append(_intra_list_diversity(engine, [item.id for item in items]))
                    clicks.append(_expected_clicks([kind_of[item.id] for item in items],
                                                   {kind: PRIMARY, second: SECONDARY}))
    bounds = [*per_seed, len(shares[5])]
    seeds = [_mean(shares[5][a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]
    return {"share_after": {str(n): _mean(values) for n, values in shares.items()},
            "share_after_5_seeds": seeds,
            "share_after_5_min": round(min(shares[5]), 4),
            "distinct_kinds_after_5": _mean(distinct), "diversity_after_5": _mean(diversity),
            "expected_clicks_after_5": _mean(clicks)}


def _follow(engine: SearchEngine, by_kind: dict, kind_of: dict, kinds: Sequence[str],
            lam: float, decay: float, repeat: int) -> dict:
    steps, kept = [], []
    per_seed = []
    for seed in range(repeat):
        per_seed.append(len(steps))
        rng = np.random.default_rng(100 + seed)
        for i, a in enumerate(kinds):
            b = kinds[(i + 1 + seed) % len(kinds)]
            if a == b:
                continue
            a_views = list(rng.choice(by_kind[a], A_VIEWS, replace=False))
            b_views = list(rng.choice(by_kind[b], MAX_FOLLOW, replace=False))
            kept.append(_share(feed(engine, b_views[:1] + a_views, [], K, lam, decay), a))
            for n in range(1, MAX_FOLLOW + 1):
                items = feed(engine, b_views[:n][::-1] + a_views, [], K, lam, decay)
                if _share(items, b) >= 0.5 or n == MAX_FOLLOW:
                    steps.append(n)
                    break
    bounds = [*per_seed, len(steps)]
    return {"views_to_follow": _mean(steps), "views_to_follow_max": int(max(steps, default=0)),
            "views_to_follow_seeds": [_mean(steps[a:b])
                                      for a, b in zip(bounds, bounds[1:], strict=False)],
            "capped": int(sum(s == MAX_FOLLOW for s in steps)), "pairs": len(steps),
            "share_a_after_stray": _mean(kept)}


def _listings_by_kind(engine: SearchEngine) -> dict[str, list[str]]:
    records = engine.records.fetch(list(range(len(engine))))
    by_kind: dict[str, list[str]] = {}
    for record in records:
        by_kind.setdefault(record["category"], []).append(record["id"])
    return by_kind


def _share(items: Sequence, kind: str) -> float:
    return sum(item.category == kind for item in items) / max(1, len(items))


def _intra_list_diversity(engine: SearchEngine, ids: Sequence[str]) -> float:
    positions = engine.records.position_of(list(ids))
    vectors = np.asarray(engine.vectors.vectors[[positions[i] for i in ids]], np.float32)
    similarity = vectors @ vectors.T  # (k, k)
    pairs = len(ids) * (len(ids) - 1)
    return float((pairs - (similarity.sum() - np.trace(similarity))) / max(1, pairs))


def _expected_clicks(kinds: Sequence[str], attraction: dict[str, float]) -> float:
    return float(sum(attraction.get(kind, STRAY) / rank ** ETA
                     for rank, kind in enumerate(kinds, start=1)))


def _mean(values: Sequence[float]) -> float:
    return round(float(np.mean(values)), 4) if len(values) else float("nan")


def print_report(report: dict) -> None:
    for split, part in report["session_search"].items():
        print(f"\n{split}: {part['queries']} ambiguous judged queries "
              f"({part['same_as_explicit']} ranked as with the explicit viewed list)")
        print(f"{'method':20} {'nDCG@10':>8} {'P@10':>6} {'R@100':>6} {'AP':>6}")
        for name, m in part["methods"].items():
            print(f"{name:20} {m['ndcg@10']:8.4f} {m['p@10']:6.3f} {m['recall@100']:6.3f} "
                  f"{m['map']:6.3f}")
    feed_part = report["feed"]
    print(f"\nfeed: random-feed share of a kind dev {feed_part['random_feed_share']['dev']}, "
          f"test {feed_part['random_feed_share']['test']}; cold feed spans "
          f"{feed_part['cold_feed_kinds']} kinds")
    for split in ("dev", "test"):
        print(f"{split} kinds {feed_part['kinds'][split]}")
        counts = " ".join(f"{'@' + str(n):>6}" for n in VIEW_COUNTS)
        print(f"{'lambda':>6} share {counts} {'kinds':>6} {'ILD':>6} {'E[clicks]':>9}")
        for lam, m in feed_part["by_lambda"][split].items():
            shares = " ".join(f"{share:6.3f}" for share in m["share_after"].values())
            print(f"{lam:>6}       {shares} {m['distinct_kinds_after_5']:6.2f} "
                  f"{m['diversity_after_5']:6.3f} {m['expected_clicks_after_5']:9.3f}")
        print(f"{'decay':>6} {'views to follow':>16} {'max':>4} {'capped':>7} {'A kept':>7}")
        for decay, m in feed_part["by_decay"][split].items():
            print(f"{decay:>6} {m['views_to_follow']:16.2f} {m['views_to_follow_max']:4d} "
                  f"{m['capped']:4d}/{m['pairs']:<2d} {m['share_a_after_stray']:7.3f}")
    print(f"chosen on dev: lambda {feed_part['chosen_lambda']}, decay {feed_part['chosen_decay']}")


if __name__ == "__main__":
    run(main, get_args_parser())
