"""The judged-query file formats: writers and readers round-trip, and unreadable files are named.

Parsing of hand-written lines (bad lines, duplicate qids) is pinned in tests/search/test_evaluate.py.
"""

import pytest

from common.cli import UserError
from common.trec import Query, read_qrels, read_queries, run_lines, write_qrels, write_queries, write_run


def test_write_queries_round_trips_viewed_ids_in_order(tmp_path):
    queries = [Query("q1", "red sofa", ("b", "a")), Query("q2", "kettle"), Query("q3", "pram", ("c",))]
    path = tmp_path / "q.tsv"

    write_queries(path, queries)

    assert path.read_text(encoding="utf-8") == "q1\tred sofa\tb,a\nq2\tkettle\t\nq3\tpram\tc\n"
    assert read_queries(path) == queries


def test_write_qrels_round_trips_grades(tmp_path):
    qrels = {"q1": {"a": 2, "b": 0}, "q2": {"c": 1}}
    path = tmp_path / "q.qrels"

    write_qrels(path, qrels)

    assert path.read_text(encoding="utf-8") == "q1 0 a 2\nq1 0 b 0\nq2 0 c 1\n"
    assert read_qrels(path) == qrels


def test_write_run_writes_the_run_lines(tmp_path):
    path = tmp_path / "run.txt"
    ranking = {"q1": ["x", "y"], "q2": ["z"]}

    write_run(path, ranking, "lexical")

    assert path.read_text(encoding="utf-8").splitlines() == run_lines(ranking, "lexical") == [
        "q1 Q0 x 1 2 lexical", "q1 Q0 y 2 1 lexical", "q2 Q0 z 1 1 lexical"]


def test_read_queries_skips_blank_lines_and_strips_spaces(tmp_path):
    path = tmp_path / "q.tsv"
    path.write_text("\n q1 \t red sofa \t b , ,a \n\n", encoding="utf-8")

    assert read_queries(path) == [Query("q1", "red sofa", ("b", "a"))]


@pytest.mark.parametrize("text, message", [
    ("q1\t\t\n", "line 1: expected qid<TAB>text"),
    ("q1\tsofa\ta\textra\n", "line 1: expected qid<TAB>text"),
    ("\tsofa\t\n", "line 1: expected qid<TAB>text"),
])
def test_read_queries_refuses_a_line_without_qid_or_text(tmp_path, text, message):
    path = tmp_path / "q.tsv"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(UserError, match=message):
        read_queries(path)


@pytest.mark.parametrize("text, message", [
    ("q1 0 a\n", "line 1: expected 'qid 0 listing_id grade'"),
    ("q1 0 a 1 extra\n", "line 1: expected 'qid 0 listing_id grade'"),
    ("\n\n", "holds no judgment"),
])
def test_read_qrels_refuses_a_malformed_or_empty_file(tmp_path, text, message):
    path = tmp_path / "q.qrels"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(UserError, match=message):
        read_qrels(path)


def test_read_names_a_missing_or_non_utf8_file(tmp_path):
    binary = tmp_path / "q.tsv"
    binary.write_bytes(b"q1\t\xff\xfe\n")

    with pytest.raises(UserError, match=f"cannot read {tmp_path / 'absent.qrels'}"):
        read_qrels(tmp_path / "absent.qrels")
    with pytest.raises(UserError, match=f"cannot read {binary}"):
        read_queries(binary)
