"""Judged queries in, rankings out: the file formats of `python -m search.evaluate --queries --qrels`.

- **queries** (TSV, UTF-8, no header): ``qid<TAB>text<TAB>viewed`` where ``viewed`` is the listing
  ids the user viewed, most recent first, comma-separated (the column may be empty or absent);
- **qrels** (TREC): ``qid 0 listing_id grade`` separated by spaces or tabs, ``grade`` an integer
  (0 = judged not relevant, higher = more relevant);
- **run** (TREC): ``qid Q0 listing_id rank score tag``, ranks from 1, best first.

Plain parsing, shared by the benchmark's generator (:mod:`datagen.relevanceset`) and the evaluation
(:mod:`search.judged`, whose metrics come from ir-measures).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from common.atomic import atomic_write_text
from common.cli import UserError


@dataclass(frozen=True)
class Query:
    """One judged query: its text and what the user viewed before asking it."""

    qid: str
    text: str
    viewed: tuple[str, ...] = field(default_factory=tuple)


def read_queries(path: Path) -> list[Query]:
    """The queries of a TSV file, in file order.

    Raises:
        UserError: an unreadable file, a line without text, or a qid given twice (names the line).
    """
    queries: dict[str, Query] = {}
    for number, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 2 or len(parts) > 3 or not parts[0].strip() or not parts[1].strip():
            raise UserError(f"{path} line {number}: expected qid<TAB>text<TAB>viewed ids "
                            f"(the last column may be empty), got {line[:80]!r}")
        qid = parts[0].strip()
        if qid in queries:
            raise UserError(f"{path} line {number}: query {qid!r} is given twice")
        viewed = tuple(v.strip() for v in (parts[2] if len(parts) == 3 else "").split(",") if v.strip())
        queries[qid] = Query(qid, parts[1].strip(), viewed)
    if not queries:
        raise UserError(f"{path} holds no query")
    return list(queries.values())


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """``{qid: {listing_id: grade}}`` of a TREC qrels file.

    Raises:
        UserError: an unreadable file or a malformed line (names the line).
    """
    qrels: dict[str, dict[str, int]] = {}
    for number, line in enumerate(_lines(path), start=1):
        parts = line.split()
        if not parts:
            continue
        try:
            if len(parts) != 4:
                raise ValueError
            qid, _, doc, grade = parts
            qrels.setdefault(qid, {})[doc] = int(grade)
        except ValueError:
            raise UserError(f"{path} line {number}: expected 'qid 0 listing_id grade' with an "
                            f"integer grade, got {line[:80]!r}") from None
    if not qrels:
        raise UserError(f"{path} holds no judgment")
    return qrels


def write_qrels(path: Path, qrels: dict[str, dict[str, int]]) -> None:
    lines = [f"{qid} 0 {doc} {grade}" for qid, docs in qrels.items() for doc, grade in docs.items()]
    atomic_write_text(path, "\n".join(lines) + "\n")


def write_queries(path: Path, queries: Iterable[Query]) -> None:
    lines = [f"{q.qid}\t{q.text}\t{','.join(q.viewed)}" for q in queries]
    atomic_write_text(path, "\n".join(lines) + "\n")


def run_lines(ranking: dict[str, list[str]], tag: str) -> list[str]:
    """TREC run lines of ``{qid: [listing ids, best first]}``.

    The score is ``len - rank + 1``: strictly decreasing, so every TREC tool (which re-sorts by
    score) reads exactly the engine's order, ties in the engine's own scores included.
    """
    lines = []
    for qid, ids in ranking.items():
        lines.extend(f"{qid} Q0 {doc} {rank} {len(ids) - rank + 1} {tag}"
                     for rank, doc in enumerate(ids, start=1))
    return lines


def write_run(path: Path, ranking: dict[str, list[str]], tag: str) -> None:
    atomic_write_text(path, "\n".join(run_lines(ranking, tag)) + "\n")


def _lines(path: Path) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None
