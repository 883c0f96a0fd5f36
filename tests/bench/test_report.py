"""bench.report: the layers' ratios and the results files."""

import json
from pathlib import Path

from bench import report as bench_report


def test_ratios_follow_their_definitions():
    ts = [{"concurrency": 1, "throughput_rps": 10.0, "p50_ms": 20.0, "p99_ms": 30.0},
          {"concurrency": 8, "throughput_rps": 40.0, "p50_ms": 100.0, "p99_ms": 150.0}]
    proxy = [{"concurrency": 1, "throughput_rps": 9.0, "p50_ms": 22.5, "p99_ms": 35.0},
             {"concurrency": 8, "throughput_rps": 38.0, "p50_ms": 105.0, "p99_ms": 160.0}]
    baseline = [{"concurrency": 1, "throughput_rps": 8.0, "p50_ms": 25.0, "p99_ms": 40.0},
                {"concurrency": 8, "throughput_rps": 25.0, "p50_ms": 300.0, "p99_ms": 900.0}]

    ratios = bench_report.ratios({"pipeline_batchN_ips": 50.0}, ts, proxy, baseline, [1, 8])

    assert ratios == {"torchserve_over_raw": 0.8, "proxy_over_torchserve": 0.95,
                      "torchserve_over_baseline": 1.6, "proxy_added_p50_ms": 2.5,
                      "torchserve_p99_over_p50": 1.5}


def test_ratios_without_baseline_leave_its_ratio_out():
    ts = [{"concurrency": 1, "throughput_rps": 100.0, "p50_ms": 4.0, "p99_ms": 6.0},
          {"concurrency": 8, "throughput_rps": 400.0, "p50_ms": 20.0, "p99_ms": 50.0}]
    proxy = [{"concurrency": 1, "throughput_rps": 90.0, "p50_ms": 5.5, "p99_ms": 8.0},
             {"concurrency": 8, "throughput_rps": 300.0, "p50_ms": 26.0, "p99_ms": 70.0}]

    ratios = bench_report.ratios({"pipeline_batchN_ips": 800.0}, ts, proxy, [], [1, 8])

    assert ratios == {"torchserve_over_raw": 0.5, "proxy_over_torchserve": 0.75,
                      "proxy_added_p50_ms": 1.5, "torchserve_p99_over_p50": 2.5}


def test_text_only_results_are_written_as_results_text(tmp_path: Path):
    row = {"requests": 10, "throughput_rps": 512.5, "p50_ms": 3.0, "p95_ms": 4.0, "p99_ms": 5.0,
           "max_ms": 6.0, "errors": 0, "client_cpu_pct_of_one_core": 12.0}
    results = {"model": "text", "machine": {"cpus": 2, "platform": "Linux"}, "raw": {},
               "torchserve": [], "proxy": [], "baseline": [], "ratios": {},
               "text": {"model": "text", "listings": 256,
                        "raw": {"workers": 1, "torch_threads": 1, "batch_size": 16,
                                "pipeline_batch1_ips": 900.0, "pipeline_batchN_ips": 2000.0},
                        "torchserve": [{**row, "concurrency": 8}],
                        "proxy": [{**row, "concurrency": 8, "throughput_rps": 300.0}],
                        "ratios": {"proxy_over_torchserve": 0.585}}}

    bench_report.write_results(results, tmp_path)

    assert json.loads((tmp_path / "results-text.json").read_text())["text"]["listings"] == 256
    report = (tmp_path / "results-text.md").read_text()
    assert report.startswith("# Benchmark: text")
    assert "| layer | c | listings/s |" in report
    assert "| torchserve | 8 | 512.5 |" in report and "| proxy | 8 | 300.0 |" in report
    assert "batch 16 2000.0 listings/s" in report
    assert "| proxy_over_torchserve | 0.585 | >= 0.9 |" in report
    assert "baseline" not in report
    assert not (tmp_path / "results-resnet50.json").exists()
