"""bench.feed on the small encoder index: the session path ranks as the explicit viewed list,
and the feed replay reports every lambda and decay for dev and test kinds."""

import pytest

from bench import feed as bench_feed


@pytest.fixture
def queries(tmp_path):
    for split in ("dev", "test"):
        (tmp_path / f"{split}.tsv").write_text("k\tfor sale\tprod-00-001,prod-00-002\n"
                                                "n\tkettle\t\n")
        (tmp_path / f"{split}.qrels").write_text("k 0 prod-00-000 2\nk 0 prod-01-000 0\n")
    return tmp_path


def test_report_compares_plain_explicit_and_session(encoder_search_index, queries, tmp_path,
                                                    monkeypatch):
    # 3 kinds of 6 listings: small enough draws for them
    monkeypatch.setattr(bench_feed, "MIN_KIND", 6)
    monkeypatch.setattr(bench_feed, "VIEW_COUNTS", (1, 3, 5))
    monkeypatch.setattr(bench_feed, "A_VIEWS", 3)
    monkeypatch.setattr(bench_feed, "MAX_FOLLOW", 3)
    args = bench_feed.get_args_parser().parse_args(
        ["--index", str(encoder_search_index["index"]), "--queries", str(queries),
         "--repeat", "1", "--out", str(tmp_path / "feed.json")])

    report = bench_feed.main(args)

    for split in ("dev", "test"):
        part = report["session_search"][split]
        assert part["queries"] == 1 and part["same_as_explicit"] == 1  # only k has views
        methods = part["methods"]
        assert methods["session views"] == methods["viewed (explicit)"]
        assert set(methods) == {"plain", "viewed (explicit)", "session views"}
    replay = report["feed"]
    assert len(replay["kinds"]["dev"]) == 2 and len(replay["kinds"]["test"]) == 1
    assert set(replay["by_lambda"]["dev"]) == {str(x) for x in bench_feed.LAMBDAS}
    undiversified = replay["by_lambda"]["dev"]["1.0"]
    # after 1 view, 5 listings of its kind are left for a feed of 10: more than a random third
    assert undiversified["share_after"]["1"] > replay["random_feed_share"]["dev"]
    assert replay["chosen_lambda"] in bench_feed.LAMBDAS
    assert (tmp_path / "feed.json").is_file()


def test_expected_clicks_follow_the_click_model():
    clicks = bench_feed._expected_clicks(["A", "B", "C"], {"A": 0.7, "B": 0.3})

    assert clicks == pytest.approx(0.7 + 0.3 / 2 + 0.02 / 3)
