"""make bench: the multipart body, the text bodies, and a tiny real run writing every field."""

import json
from pathlib import Path

import pytest

from common.codec import MAX_DESCRIPTION_CHARS, MAX_TITLE_CHARS
from bench import run as bench_run
from bench import runtimes as bench_runtimes
from bench import stages, text_serving


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


@pytest.mark.parametrize(("layers", "model"), [
    ({"text"}, "text"), ({"raw", "text"}, "cnn"), ({"torchserve"}, "cnn"),
])
def test_results_are_named_after_the_text_model_only_when_its_layer_runs_alone(layers, model):
    assert bench_run.measured_model("cnn", layers) == model


def test_listing_bodies_are_json_listings_within_the_handler_caps(tmp_path: Path):
    from proxy.listing_routes import TextListing

    listings = [("Ikea desk lamp", "barely used"), ("T" * (MAX_TITLE_CHARS + 5), ""),
                ("sofa", "word " * (MAX_DESCRIPTION_CHARS // 5 + 10))]

    bodies = text_serving.listing_bodies(listings, tmp_path / "bodies")

    assert [b.content_type for b in bodies] == ["application/json"] * 3
    parsed = [TextListing.model_validate_json(Path(b.path).read_bytes()) for b in bodies]
    assert (parsed[0].title, parsed[0].description) == ("Ikea desk lamp", "barely used")
    assert parsed[1].title == "T" * MAX_TITLE_CHARS
    assert len(parsed[2].description) == MAX_DESCRIPTION_CHARS


def test_bench_listings_are_deterministic_and_distinct(tmp_path: Path):
    first = [Path(b.path).read_text() for b in text_serving.make_bodies(tmp_path / "a", 20)]
    again = [Path(b.path).read_text() for b in text_serving.make_bodies(tmp_path / "b", 20)]
    assert first == again
    assert len(set(first)) == 20


@pytest.mark.e2e
def test_bench_text_layer_tiny_run(serving_model_store: Path, tmp_path: Path):
    out = tmp_path / "bench"
    args = bench_run.get_args_parser().parse_args(
        ["--layers", "text", "--quick", "--duration", "1", "--concurrency", "1,2",
         "--model-store", str(serving_model_store), "--out", str(out)])

    bench_run.main(args)

    results = json.loads((out / "results-text.json").read_text())
    assert results["model"] == "text"
    text = results["text"]
    assert text["raw"]["pipeline_batch1_ips"] > 0 and text["raw"]["pipeline_batchN_ips"] > 0
    for layer in ("torchserve", "proxy"):
        assert [r["concurrency"] for r in text[layer]] == [1, 2]
        assert all(r["requests"] > 0 and r["errors"] == 0 for r in text[layer])
    assert set(text["ratios"]) == {"torchserve_over_raw", "proxy_over_torchserve",
                                   "proxy_added_p50_ms", "torchserve_p99_over_p50"}
    assert results["torchserve"] == results["proxy"] == []  # no image model measured
    assert (out / "results-text.md").read_text().startswith("# Benchmark: text")


@pytest.mark.e2e
def test_bench_tiny_run_writes_every_field(serving_model_store: Path, tmp_path: Path):
    out = tmp_path / "bench"
    args = bench_run.get_args_parser().parse_args(
        ["--model", "cnn", "--quick", "--duration", "1", "--concurrency", "1,2",
         "--model-store", str(serving_model_store), "--out", str(out)])

    bench_run.main(args)

    results = json.loads((out / "results.json").read_text())
    assert results["model"] == "cnn"
    assert results["text"]["ratios"]["torchserve_over_raw"] > 0  # make bench measures text too
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
