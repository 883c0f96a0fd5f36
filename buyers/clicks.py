"""The event log as training data, and click metrics per ranker.

    python -m buyers.clicks --state-dir state --out clicks.jsonl [--json metrics.json]

Each impression becomes one JSON line: ``{"session": n, "source", "ranker", "query", "shown":
[ids, best first], "clicked": [ids], "clicked_ranks": [1-based], "at"}``, its clicks joined to it
(a click joins the session's latest impression of the same source and query that showed its
listing at its rank; a click that matches none is counted as ``orphan_clicks``). Sessions are
numbered per export: the ids of the store never leave it.

Per ``(source, ranker)``: impressions, clicks, CTR (share of impressions with at least one
click), clicks per impression, MRR of clicks (mean of 1 / rank of an impression's first click,
0 without one) and the CTR at each of the first 10 ranks (the position bias a learnt ranker must
undo). A ranker learnt from clicks is judged offline by these figures on a held-out log, next
to the ranker that produced it.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from buyers.store import SESSIONS_FILE, Event, SessionStore
from common.atomic import atomic_write_text

RANKS = 10  # CTR per rank is reported for the first RANKS ranks


def impressions(events: Iterable[Event]) -> tuple[list[dict], int]:
    """The impressions of ``events`` (ordered by session, then time) with their clicks, and the
    number of clicks that joined no impression."""
    rows: list[dict] = []
    latest: dict[tuple, dict] = {}
    numbers: dict[str, int] = {}
    orphans = 0
    for event in events:
        key = (event.session, event.source, event.query or None)
        if event.type == "impression":
            row = {"session": numbers.setdefault(event.session or "", len(numbers)),
                   "source": event.source, "ranker": event.ranker, "query": event.query,
                   "shown": event.shown, "clicked": [], "clicked_ranks": [], "at": event.at}
            rows.append(row)
            latest[key] = row
        elif event.type == "click":
            row = latest.get(key)
            rank = event.rank or 0
            if row is None or not 1 <= rank <= len(row["shown"]) or \
                    row["shown"][rank - 1] != event.listing:
                orphans += 1
            elif event.listing not in row["clicked"]:
                row["clicked"].append(event.listing)
                row["clicked_ranks"].append(rank)
    return rows, orphans


def metrics(rows: Iterable[dict]) -> dict[str, dict]:
    """``{"source/ranker": {impressions, clicks, ctr, clicks_per_impression, mrr,
    ctr_at_rank}}``."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[f"{row['source']}/{row['ranker'] or '-'}"].append(row)
    report = {}
    for name, group in sorted(groups.items()):
        shown_at = [sum(len(r["shown"]) >= rank for r in group) for rank in range(1, RANKS + 1)]
        clicked_at = [sum(rank in r["clicked_ranks"] for r in group)
                      for rank in range(1, RANKS + 1)]
        report[name] = {
            "impressions": len(group),
            "clicks": sum(len(r["clicked"]) for r in group),
            "ctr": round(sum(bool(r["clicked"]) for r in group) / len(group), 4),
            "clicks_per_impression": round(sum(len(r["clicked"]) for r in group) / len(group), 4),
            "mrr": round(sum(1 / min(r["clicked_ranks"]) if r["clicked_ranks"] else 0.0
                             for r in group) / len(group), 4),
            "ctr_at_rank": [round(c / s, 4) if s else None
                            for c, s in zip(clicked_at, shown_at, strict=True)],
        }
    return report


def export(store: SessionStore, out: Path | None, since: float | None = None) -> dict:
    """Write the training data to ``out`` (JSONL, when given); return the metrics report."""
    rows, orphans = impressions(store.events(since))
    if out is not None:
        atomic_write_text(out, "".join(json.dumps(row) + "\n" for row in rows))
    return {"impressions": len(rows), "orphan_clicks": orphans, "rankers": metrics(rows)}


def format_report(report: dict) -> str:
    lines = [f"{report['impressions']} impressions, {report['orphan_clicks']} orphan clicks",
             f"{'source/ranker':24} {'impr.':>6} {'clicks':>6} {'CTR':>6} {'MRR':>6}  "
             "CTR at rank 1..5"]
    for name, m in report["rankers"].items():
        at = " ".join("-" if c is None else f"{c:.2f}" for c in m["ctr_at_rank"][:5])
        lines.append(f"{name:24} {m['impressions']:6d} {m['clicks']:6d} {m['ctr']:6.3f} "
                     f"{m['mrr']:6.3f}  {at}")
    return "\n".join(lines)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Export buyers' impressions and clicks as "
                                     "training data and report CTR and MRR per ranker")
    parser.add_argument("--state-dir", type=Path, default=Path("state"),
                        help="the proxy's AICORE_STATE_DIR, holding sessions.db (default: state)")
    parser.add_argument("--out", type=Path, help="write the impressions here as JSON lines")
    parser.add_argument("--json", type=Path, help="write the metrics report here")
    parser.add_argument("--since-days", type=float,
                        help="only events of the last N days (default: all stored)")
    return parser


def main(args: argparse.Namespace) -> dict:
    path = args.state_dir / SESSIONS_FILE
    if not path.is_file():
        raise SystemExit(f"no sessions database at {path}: point --state-dir at the proxy's "
                         "AICORE_STATE_DIR")
    store = SessionStore(path, retention_s=float("inf"))  # an export never sweeps
    try:
        since = None if args.since_days is None else store.clock() - args.since_days * 86400
        report = export(store, args.out, since)
    finally:
        store.close()
    print(format_report(report))
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main(get_args_parser().parse_args())
