"""make bench: the multipart body, the ratios, and a tiny real run writing every field."""

import json
from pathlib import Path

import pytest

from bench import run as bench_run
from bench import runtimes as bench_runtimes
from bench import stages


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
    overhead = results["overhead"]
    assert len(overhead["runs_ms"]) == 5 and overhead["min_ms"] <= overhead["median_ms"] <= overhead["max_ms"]
    points = results["overload"]["points"]
    assert [p["clients"] for p in points] == [2, 8, 24]  # 1x, 4x, 12x the highest concurrency
    assert all(p["statuses"].get("200", 0) > 0 for p in points)
    assert set(results["overload"]["ratios"]) >= {"goodput_4x_over_best", "goodput_12x_over_best"}
    rejection = results["rejection"]
    assert rejection["refused"] == rejection["sent"] > 0  # frozen workers: every one refused
    assert results["fault"]["killed_workers"] == 2 and results["fault"]["statuses"]["200"] > 0
    report = (out / "results.md").read_text()
    assert report.startswith("# Benchmark: cnn")
    assert "overload ratio" in report and "refusal:" in report and "fault:" in report
    assert [r["image"] for r in results["stages"]] == results["images"]
    for row in results["stages"]:
        assert all(row[stage] > 0 for stage in stages.STAGES), row
        assert max(row["decoded_size"]) >= 128  # the JPEG draft never decodes below the model's size


def test_runtime_ratios_are_relative_to_eager():
    measured = [{"runtime": "eager", "forward_ips": 10.0, "handler_ips": 8.0, "torchserve_rps": 5.0},
                {"runtime": "onnx-int8", "forward_ips": 40.0, "handler_ips": 16.0, "torchserve_rps": 9.0}]

    results = bench_runtimes.with_ratios(measured)

    assert results[1]["forward_ips_over_eager"] == 4.0
    assert results[1]["handler_ips_over_eager"] == 2.0
    assert results[1]["torchserve_rps_over_eager"] == 1.8
    assert results[0]["forward_ips_over_eager"] == 1.0


@pytest.mark.e2e
def test_bench_compares_runtimes_side_by_side(serving_runs: dict[str, Path], serving_model_store: Path,
                                              tmp_path: Path):
    out = tmp_path / "bench"
    args = bench_run.get_args_parser().parse_args(
        ["--model", "cnn", "--quick", "--duration", "1", "--concurrency", "2", "--layers", "raw",
         "--runtimes", "eager,onnx-fp32", "--run", str(serving_runs["cnn"]),
         "--model-store", str(serving_model_store), "--out", str(out)])

    bench_run.main(args)

    results = json.loads((out / "results.json").read_text())
    assert [r["runtime"] for r in results["runtimes"]] == ["eager", "onnx-fp32"]
    for r in results["runtimes"]:
        assert r["forward_ips"] > 0 and r["handler_ips"] > 0 and r["torchserve_rps"] > 0
        assert r["errors"] == 0 and r["concurrency"] == 2
        assert 0 < r["p50_ms"] <= r["p99_ms"]
    assert results["runtimes"][1]["agreement"] >= 0.99
    assert results["runtimes"][1]["record"]["engine"] == "onnxruntime"
    assert "| onnx-fp32 |" in (out / "results.md").read_text()
