"""The judged half of query.mar's accuracy gate (handler.query_gate): reading the benchmark and
scoring a runtime's query vectors against eager's."""

from pathlib import Path

import numpy as np
import pytest

from handler.query_gate import MAX_NDCG_DROP, JudgedQueries, NdcgGate, find_judged

WORDS = ("sofa", "kettle", "bike", "lamp")


class BagOfWords:
    """A stand-in encoder: one dimension per known word, unit rows (``sign`` -1 ranks backwards)."""

    def __init__(self, sign: float = 1.0) -> None:
        self.sign = sign

    def encode(self, texts: list[str]) -> np.ndarray:
        rows = np.array([[float(w in t.lower()) for w in WORDS] for t in texts]) + 1e-3  # (B, 4)
        return self.sign * rows / np.linalg.norm(rows, axis=1, keepdims=True)


def judged_queries() -> JudgedQueries:
    return JudgedQueries(
        listing_ids=["l-sofa", "l-kettle", "l-bike", "l-lamp"],
        listing_texts=["Red sofa", "Steel kettle", "Road bike", "Desk lamp"],
        query_ids=["q1", "q2", "q3"], query_texts=["sofa", "kettle", "bike"],
        viewed=[(), (), ("l-bike",)],
        qrels={"q1": {"l-sofa": 2}, "q2": {"l-kettle": 2}, "q3": {"l-bike": 2, "l-lamp": 1}})


def write_benchmark(root: Path, qrels: str) -> Path:
    (root / "clean").mkdir(parents=True)
    (root / "queries").mkdir()
    (root / "clean" / "products.csv").write_text(
        "id,product_name,category,root_category,product_description,price,location\n"
        "l-sofa,Red sofa,Home,Home,Seats three,0,Leeds\n"
        "l-kettle,Steel kettle,Home,Home,Boils fast,0,Leeds\n", encoding="utf-8")
    (root / "queries" / "dev.tsv").write_text("q1\tsofa\t\nq2\tkettle\tl-sofa\nq9\tlamp\t\n",
                                              encoding="utf-8")
    (root / "queries" / "dev.qrels").write_text(qrels, encoding="utf-8")
    return root


def test_find_judged_reads_listings_and_the_judged_queries_only(tmp_path):
    root = write_benchmark(tmp_path / "relevance", "q1 0 l-sofa 2\nq2 0 l-kettle 1\n")

    judged, why = find_judged(root)

    assert why == "" and judged is not None
    assert judged.listing_ids == ["l-sofa", "l-kettle"]
    assert judged.listing_texts == ["Red sofa\nSeats three", "Steel kettle\nBoils fast"]
    assert judged.query_ids == ["q1", "q2"]  # q9 has no judgments
    assert judged.viewed == [(), ("l-sofa",)]
    assert judged.qrels["q2"] == {"l-kettle": 1}


def test_find_judged_without_the_benchmark_says_what_builds_it(tmp_path):
    judged, why = find_judged(tmp_path / "nothing")

    assert judged is None
    assert str(tmp_path / "nothing" / "clean" / "products.csv") in why
    assert "make relevanceset" in why


def test_find_judged_without_any_judged_query_says_so(tmp_path):
    root = write_benchmark(tmp_path / "relevance", "q7 0 l-sofa 2\n")

    judged, why = find_judged(root)

    assert judged is None and "no query of" in why


def test_same_vectors_pass_with_no_drop():
    gate = NdcgGate(BagOfWords(), judged_queries())

    record = gate.check(BagOfWords())

    assert record["measured"] and record["passed"]
    assert record["eager"] == pytest.approx(record["runtime"]) and record["drop"] == 0
    assert record["queries"] == 3 and record["max_drop"] == MAX_NDCG_DROP


def test_viewed_listings_are_left_out_of_the_ranking():
    gate = NdcgGate(BagOfWords(), judged_queries())

    per_query = gate.per_query(BagOfWords())

    # q3's best listing (the bike) was viewed and is not returned: q3 cannot reach 1
    assert per_query["q1"] == pytest.approx(1) and per_query["q2"] == pytest.approx(1)
    assert per_query["q3"] < 1
    assert gate.eager == pytest.approx(np.mean(list(per_query.values())))


def test_a_runtime_that_ranks_worse_fails():
    gate = NdcgGate(BagOfWords(), judged_queries())

    record = gate.check(BagOfWords(sign=-1.0))  # every query's relevant listing ranked last

    assert not record["passed"]
    assert record["drop"] > MAX_NDCG_DROP and record["runtime"] < record["eager"]
