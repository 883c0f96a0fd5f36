"""bench.query_stages: the per-request breakdown of a text query's latency."""

import pytest

from bench.query_stages import format_breakdown, request_stages, summarise


def test_request_stages_add_what_the_client_saw_and_the_rest_outside_the_route():
    stages = request_stages(0.020, "embed;dur=9.000, search;dur=3.000, route;dur=13.000")

    assert stages == pytest.approx({"embed": 9.0, "search": 3.0, "route": 13.0, "client": 20.0,
                                    "outside": 7.0})


def test_request_stages_without_the_header_give_the_client_time_only():
    assert request_stages(0.005, "") == pytest.approx({"client": 5.0})


def test_summarise_gives_percentiles_and_means_per_stage():
    samples = [{"embed": float(ms), "search": 1.0} for ms in range(1, 101)]

    summary = summarise(samples)

    assert summary["embed"] == pytest.approx({"p50": 50.5, "p99": 99.01, "mean": 50.5})
    assert summary["search"] == {"p50": 1.0, "p99": 1.0, "mean": 1.0}


def test_breakdown_names_every_stage_and_process():
    text = format_breakdown({"embed": {"p50": 6.1, "p99": 15.0, "mean": 7.0}},
                            {"proxy": 6.9, "torchserve_worker": 4.2},
                            {"p50": 5.5, "p99": 14.0}, {"p50": 1.7, "p99": 2.1, "mean": 1.8})

    assert "embed" in text and "torchserve direct" in text and "encoder in-process" in text
    assert "CPU ms per query: proxy 6.90, torchserve_worker 4.20" in text
