"""Judged-query evaluation: the file formats, metrics on hand-made qrels, and the command on a real index."""

import json
import math
import shutil

import pytest

from common.cli import UserError
from common.trec import Query, read_qrels, read_queries, run_lines
from search import evaluate, judged


def test_read_queries_takes_viewed_ids_in_order(tmp_path):
    path = tmp_path / "q.tsv"
    path.write_text("q1\tred sofa\tb,a\nq2\tkettle\t\nq3\tdesk\n", encoding="utf-8")

    assert read_queries(path) == [Query("q1", "red sofa", ("b", "a")), Query("q2", "kettle"),
                                  Query("q3", "desk")]


@pytest.mark.parametrize("text, message", [
    ("q1 no tab here\n", "line 1: expected qid<TAB>text"),
    ("q1\tsofa\t\nq1\tdesk\t\n", "line 2: query 'q1' is given twice"),
    ("\n", "holds no query"),
])
def test_read_queries_names_the_bad_line(tmp_path, text, message):
    path = tmp_path / "q.tsv"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(UserError, match=message):
        read_queries(path)


def test_read_qrels_keeps_grades_and_names_a_bad_line(tmp_path):
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_text("q1 0 a 2\nq1\t0\tb\t0\nq2 0 c 1\n", encoding="utf-8")
    bad.write_text("q1 0 a 2\nq1 0 b high\n", encoding="utf-8")

    assert read_qrels(good) == {"q1": {"a": 2, "b": 0}, "q2": {"c": 1}}
    with pytest.raises(UserError, match="line 2: expected 'qid 0 listing_id grade'"):
        read_qrels(bad)


def test_run_lines_are_trec_with_strictly_falling_scores():
    lines = run_lines({"q1": ["b", "a", "c"], "q2": []}, "aicore-fused")

    assert lines == ["q1 Q0 b 1 3 aicore-fused", "q1 Q0 a 2 2 aicore-fused", "q1 Q0 c 3 1 aicore-fused"]


def test_measure_matches_hand_computed_values():
    # q1: the grade-2 listing "a" at rank 2 of 3; "b" (grade 1) not found; "c" judged 0.
    # q2: nothing returned: every metric 0, and it still counts in the mean.
    qrels = {"q1": {"a": 2, "b": 1, "c": 0}, "q2": {"d": 1}}
    rankings = {"q1": ["c", "a", "x"], "q2": []}

    got = judged.measure(qrels, rankings)

    ndcg_q1 = (2 / math.log2(3)) / (2 / math.log2(2) + 1 / math.log2(3))  # gain = grade
    assert got["ndcg@10"] == pytest.approx(ndcg_q1 / 2, abs=1e-4)
    assert got["p@10"] == pytest.approx((1 / 10) / 2)
    assert got["recall@100"] == pytest.approx((1 / 2) / 2)  # 1 of the 2 relevant (grade >= 1)
    assert got["map"] == pytest.approx(((1 / 2) / 2) / 2)  # precision 1/2 at its rank, over R = 2


def test_per_query_scores_an_unranked_judged_query_zero_and_averages_to_measure():
    qrels = {"q1": {"a": 2, "b": 1, "c": 0}, "q2": {"d": 1}}
    rankings = {"q1": ["c", "a", "x"]}  # q2 never ranked

    values = judged.per_query(qrels, rankings)

    assert {metric: set(scores) for metric, scores in values.items()} == {
        metric: {"q1", "q2"} for metric in judged.METRICS}
    assert values["recall@100"] == {"q1": 0.5, "q2": 0.0}
    assert judged.measure(qrels, rankings)["map"] == pytest.approx(values["map"]["q1"] / 2, abs=1e-4)


def test_check_judgments_names_a_qid_the_queries_lack(tmp_path):
    with pytest.raises(UserError, match="judges 1 query id.*'q9'"):
        judged.check_judgments([Query("q1", "sofa")], {"q1": {"a": 1}, "q9": {"b": 1}},
                               tmp_path / "qrels")


def _judged_files(tmp_path, queries: str, qrels: str):
    (tmp_path / "q.tsv").write_text(queries, encoding="utf-8")
    (tmp_path / "qrels").write_text(qrels, encoding="utf-8")
    return ["--queries", str(tmp_path / "q.tsv"), "--qrels", str(tmp_path / "qrels")]


def test_evaluate_judged_writes_runs_and_counts_missing_listings(text_search_index, tmp_path):
    # "kettle" names the 6 Appliances listings (prod-00-*); "ghost" is judged but not indexed.
    # "pram" was asked by a user who viewed prod-01-000: the other 5 prams are what they want.
    kettles = "".join(f"k 0 prod-00-{p:03d} 2\n" for p in range(6))
    prams = "".join(f"p 0 prod-01-{p:03d} 2\n" for p in range(1, 6))
    files = _judged_files(tmp_path, "k\tkettle\t\np\tpram\tprod-01-000\n",
                          kettles + "k 0 ghost 1\n" + prams)
    args = evaluate.get_args_parser().parse_args(
        ["--index", str(text_search_index["index"]), *files, "--run-out", str(tmp_path / "runs"),
         "--json", str(tmp_path / "report.json")])

    report = evaluate.main(args)

    assert report["missing_judged"]["listings"] == 1 and report["missing_judged"]["examples"] == ["ghost"]
    assert [r["retriever"] for r in report["results"]] == ["fused", "dense", "lexical"]
    assert json.loads((tmp_path / "report.json").read_text())["judged_queries"] == 2
    lexical = next(r for r in report["results"] if r["retriever"] == "lexical")
    found = sum(2 / math.log2(i + 2) for i in range(6))
    ideal = found + 1 / math.log2(8)  # the missing grade-1 listing still counts in the ideal
    assert lexical["ndcg@10"] == pytest.approx((found / ideal + 1.0) / 2, abs=1e-3)  # "pram": 5 of 5
    for retriever in ("fused", "dense", "lexical"):
        rows = [line.split() for line in (tmp_path / "runs" / f"{retriever}.run").read_text().splitlines()]
        assert {row[0] for row in rows} == {"k", "p"}
        assert all(row[1] == "Q0" and row[5] == f"aicore-{retriever}" for row in rows)
        assert "prod-01-000" not in {row[2] for row in rows if row[0] == "p"}  # viewed: not again
        ranks = [int(row[3]) for row in rows if row[0] == "k"]
        assert ranks == list(range(1, len(ranks) + 1)) and len(ranks) <= judged.DEPTH


def test_evaluate_judged_refuses_judgments_of_an_unknown_query(search_index, tmp_path):
    files = _judged_files(tmp_path, "k\tkettle\t\n", "k 0 prod-00-000 2\nk2 0 prod-00-001 2\n")
    args = evaluate.get_args_parser().parse_args(["--index", str(search_index["index"]), *files])

    with pytest.raises(UserError, match="'k2'"):
        evaluate.main(args)


def test_evaluate_needs_queries_and_qrels_together(search_index, tmp_path):
    args = evaluate.get_args_parser().parse_args(
        ["--index", str(search_index["index"]), "--queries", str(tmp_path / "q.tsv")])

    with pytest.raises(UserError, match="--queries and --qrels go together"):
        evaluate.main(args)


def test_evaluate_judged_on_three_retrievers_writes_a_run_per_retriever(multimodal_search_index,
                                                                        tmp_path):
    kettles = "".join(f"k 0 prod-00-{p:03d} 2\n" for p in range(6))
    prams = "".join(f"p 0 prod-01-{p:03d} 2\n" for p in range(1, 6))
    files = _judged_files(tmp_path, "k\tkettle\t\np\tpram\tprod-01-000\n", kettles + prams)
    args = evaluate.get_args_parser().parse_args(
        ["--index", str(multimodal_search_index["index"]), *files,
         "--run-out", str(tmp_path / "runs")])

    report = evaluate.main(args)

    rows = {r["retriever"]: r for r in report["results"]}
    assert list(rows) == ["fused", "dense", "lexical", "text_dense"]
    assert rows["text_dense"]["ndcg@10"] > 0.5  # MiniLM knows a kettle from a pram
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [
        "dense.run", "fused.run", "lexical.run", "text_dense.run"]
    image = [line.split() for line in (tmp_path / "runs" / "dense.run").read_text().splitlines()]
    # the CNN reads no text: only the personalised query ("pram", one view) reaches its vectors
    assert {row[0] for row in image} == {"p"}
    assert all(row[5] == "aicore-text_dense" for row in
               (line.split() for line in (tmp_path / "runs" / "text_dense.run").read_text().splitlines()))


def test_same_category_evaluation_of_an_index_with_text_vectors_adds_text_dense(
        multimodal_search_index, tmp_path):
    index = tmp_path / "index"
    shutil.copytree(multimodal_search_index["index"], index)

    report = evaluate.main(evaluate.get_args_parser().parse_args(["--index", str(index)]))

    assert {(r["query"], r["retriever"]) for r in report["results"]} == {
        ("text", "lexical"), ("text", "text_dense"), ("text", "fused"), ("image", "dense"),
        ("text+image", "dense"), ("text+image", "lexical"), ("text+image", "text_dense"),
        ("text+image", "fused")}
    rows = {(r["query"], r["retriever"]): r for r in report["results"]}
    # a title query finds its category by MiniLM too (the titles name a noun of the category)
    assert rows[("text", "text_dense")]["map@r"] > 0.5  # P@10 is capped: ~4 relevant candidates
