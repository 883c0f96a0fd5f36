"""The wrk wrapper: parsing its summary, loopback-only targets."""

from pathlib import Path
import pytest
from bench import loadgen



WRK_OUTPUT = """Running 1s test @ http://127.0.0.1:1/x
  1 threads and 2 connections
  40 requests in 1.00s, 1.2KB read

WRK_JSON {"requests": 40, "duration_us": 2000000, "errors": {"connect": 0, "read": 0, "write": 0, \
"status": 1, "timeout": 0}, "latency_us": {"p50": 1500, "p95": 4000, "p99": 9000, "max": 12000, \
"mean": 2100.5}}
"""


def test_parse_wrk_summary_converts_units_and_counts_errors():
    result = loadgen._parse(WRK_OUTPUT, "", concurrency=2, max_requests=1000, cpu_s=0.5, wall_s=2.0)

    assert result.requests == 40
    assert result.throughput_rps == 20.0  # 40 requests / 2.0 s
    assert (result.p50_ms, result.p95_ms, result.p99_ms) == (1.5, 4.0, 9.0)
    assert result.errors == 1
    assert result.client_cpu_pct_of_one_core == 25.0
    assert not result.hit_request_cap


def test_parse_wrk_without_summary_raises_with_output():
    with pytest.raises(RuntimeError, match="unable to connect"):
        loadgen._parse("unable to connect to 127.0.0.1:1", "", 1, 10, 0.0, 1.0)


def test_run_wrk_refuses_non_loopback_targets(tmp_path: Path):
    body = tmp_path / "b.bin"
    body.write_bytes(b"x")
    with pytest.raises(ValueError, match="loopback"):
        loadgen.run_wrk("http://10.0.0.1:8080/", [loadgen.Body(body, "image/jpeg")], 1, 1, 10)
