"""The benchmark's parts, and one tiny real run of `make bench` (timings are never asserted)."""

import json
from pathlib import Path

import pytest

from bench import loadgen
from bench import run as bench_run

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


def test_multipart_body_is_parsed_by_fastapi_as_the_image_field(tmp_path: Path):
    from typing import Annotated

    from fastapi import FastAPI, File, UploadFile
    from fastapi.testclient import TestClient

    app = FastAPI()

    @app.post("/echo")
    async def echo(image: Annotated[UploadFile, File()]) -> dict:
        return {"filename": image.filename, "data": (await image.read()).hex()}

    image = tmp_path / "photo.png"
    image.write_bytes(b"\x89PNG fake bytes \r\n--not-a-boundary")
    body = bench_run.multipart_body(image, tmp_path / "photo.form")
    with TestClient(app) as client:
        response = client.post("/echo", content=body.path.read_bytes(),
                               headers={"Content-Type": body.content_type})

    assert response.status_code == 200
    assert response.json() == {"filename": "photo.png", "data": image.read_bytes().hex()}


def test_ratios_follow_their_definitions():
    ts = [{"concurrency": 1, "throughput_rps": 10.0, "p50_ms": 20.0, "p99_ms": 30.0},
          {"concurrency": 8, "throughput_rps": 40.0, "p50_ms": 100.0, "p99_ms": 150.0}]
    proxy = [{"concurrency": 1, "throughput_rps": 9.0, "p50_ms": 22.5, "p99_ms": 35.0},
             {"concurrency": 8, "throughput_rps": 38.0, "p50_ms": 105.0, "p99_ms": 160.0}]
    baseline = [{"concurrency": 1, "throughput_rps": 8.0, "p50_ms": 25.0, "p99_ms": 40.0},
                {"concurrency": 8, "throughput_rps": 25.0, "p50_ms": 300.0, "p99_ms": 900.0}]

    ratios = bench_run.ratios({"pipeline_batchN_ips": 50.0}, ts, proxy, baseline, [1, 8])

    assert ratios == {"torchserve_over_raw": 0.8, "proxy_over_torchserve": 0.95,
                      "torchserve_over_baseline": 1.6, "proxy_added_p50_ms": 2.5,
                      "torchserve_p99_over_p50": 1.5}


@pytest.mark.e2e
def test_bench_tiny_run_writes_every_field(serving_model_store: Path, tmp_path: Path):
    out = tmp_path / "bench"
    args = bench_run.get_args_parser().parse_args(
        ["--model", "cnn", "--quick", "--duration", "1", "--concurrency", "1,2",
         "--model-store", str(serving_model_store), "--out", str(out)])

    bench_run.main(args)

    results = json.loads((out / "results.json").read_text())
    assert results["model"] == "cnn"
    assert set(results["ratios"]) >= {"torchserve_over_raw", "proxy_over_torchserve",
                                      "torchserve_over_baseline", "proxy_added_p50_ms"}
    assert all(isinstance(v, float | int) for v in results["ratios"].values())
    raw = results["raw"]
    assert raw["pipeline_batch1_ips"] > 0 and raw["pipeline_batchN_ips"] > 0
    assert raw["forward_only_batchN_ips"] > raw["pipeline_batchN_ips"]  # decoding costs something
    for layer in ("torchserve", "proxy", "baseline"):
        assert [r["concurrency"] for r in results[layer]] == [1, 2]
        for r in results[layer]:
            assert r["requests"] > 0 and r["errors"] == 0
            assert r["throughput_rps"] > 0
            assert 0 < r["p50_ms"] <= r["p95_ms"] <= r["p99_ms"] <= r["max_ms"]
            assert r["client_cpu_s"] >= 0
    assert (out / "results.md").read_text().startswith("# Benchmark: cnn")
