"""bench.freshness: the issue's load is the default, and the report is computed from the answers."""

from bench import freshness


def test_defaults_are_the_issues_load():
    args = freshness.get_args_parser().parse_args([])

    assert (args.rate, args.searchers, args.processes) == (20.0, 10, 2)


def test_searching_reports_latencies_of_successful_searches(monkeypatch):
    def fake_loop(url, texts, stop, seconds, errors):
        seconds.extend([0.010, 0.020, 0.030])
        errors.append("search 503")
        stop.wait(1)

    monkeypatch.setattr(freshness, "search_loop", fake_loop)
    report = freshness.searching("http://x", ["q"], clients=2, duration=0.05)

    assert report["searches"] == 6 and report["errors"] == 2
    assert report["latency_ms"]["p50"] == 20.0
