"""The Server-Timing header the proxy writes and the benchmark reads (common.server_timing)."""

import pytest

from common.server_timing import format_timing, parse_timing


def test_format_then_parse_round_trips_to_the_microsecond():
    stages = {"embed": 8.1234, "search-dense": 0.5, "route": 12.0}

    header = format_timing(stages)

    assert header == "embed;dur=8.123, search-dense;dur=0.500, route;dur=12.000"
    assert parse_timing(header) == pytest.approx({"embed": 8.123, "search-dense": 0.5, "route": 12.0})


def test_parse_skips_entries_without_a_duration():
    assert parse_timing('cache;desc="hit", db;dur=53, ;dur=1, app;desc=x;dur=4.5') == {
        "db": 53.0, "app": 4.5}
    assert parse_timing("") == {}
