"""bench.relevance: the plain BM25 baseline and the report over a dev/test folder."""

from bench import relevance
from common.trec import Query
from search import judged
from search.engine import SearchEngine


def test_plain_bm25_finds_the_word_and_leaves_viewed_listings_out(search_index):
    baseline = relevance.PlainBM25(SearchEngine.open(search_index["index"]))

    rankings = baseline.rank_all([Query("k", "kettle"), Query("p", "pram", ("prod-01-000",))])

    assert sorted(rankings["k"]) == [f"prod-00-{p:03d}" for p in range(6)]
    assert sorted(rankings["p"]) == [f"prod-01-{p:03d}" for p in range(1, 6)]


def test_report_has_every_method_for_dev_and_test(text_search_index, tmp_path):
    for split in ("dev", "test"):
        (tmp_path / f"{split}.tsv").write_text("k\tkettle\t\nv\tvintage\tprod-02-003\n")
        (tmp_path / f"{split}.qrels").write_text("k 0 prod-00-000 2\nv 0 prod-02-001 2\n")
    args = relevance.get_args_parser().parse_args(
        ["--index", str(text_search_index["index"]), "--queries", str(tmp_path), "--repeat", "2",
         "--out", str(tmp_path / "report.json")])

    report = relevance.main(args)

    for split in ("dev", "test"):
        data = report["splits"][split]
        assert [r["method"] for r in data["results"]][:4] == [
            "plain BM25 (bm25s, title x3 + description)", "fused, untuned", "dense, untuned",
            "lexical, untuned"]
        assert len(data["personalisation"]) == 8 and len(data["fused_latency_passes"]) == 2
        assert data["ambiguous"] == 1
        against = {row["against"] for row in data["significance"]}
        assert against == {r["method"] for r in data["results"]
                           if r["method"] in against or r["method"].endswith("tuned")} - {"fused, tuned"}
        assert "plain BM25 (bm25s, title x3 + description)" in against and "dense, tuned" in against
        for row in data["significance"]:
            assert set(row) == {"against", *judged.METRICS}
            assert all(0 < row[m]["p"] <= 1 and row[m]["queries"] == 2 for m in judged.METRICS)
