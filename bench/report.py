"""The benchmark's results: the layers' ratios, the markdown tables and the files they go to.

:mod:`bench.run` measures; this module turns its ``results`` dict into ``results.json`` and
``results.md`` (one copy per measured model too).
"""

import json
from pathlib import Path

from bench import faults, runtimes, stages, text_serving

# What the served stack should reach (docs/benchmarks.md): ratios at the top concurrency, the
# proxy's added p50 at one client.
TARGETS = {"torchserve_over_raw": 0.90, "proxy_over_torchserve": 0.90,
           "torchserve_over_baseline": 1.2, "proxy_added_p50_ms": 3.0}


def at(results: list[dict], level: int) -> dict:
    return next(r for r in results if r["concurrency"] == level)


def ratios(raw_figures: dict, ts: list[dict], proxy: list[dict], baseline: list[dict],
           levels: list[int]) -> dict:
    """The layers' ratios; without ``baseline`` (the text model has none), no
    ``torchserve_over_baseline``."""
    hi, lo = max(levels), min(levels)
    ts_rps = at(ts, hi)["throughput_rps"]
    result = {
        "torchserve_over_raw": round(ts_rps / raw_figures["pipeline_batchN_ips"], 3),
        "proxy_over_torchserve": round(at(proxy, hi)["throughput_rps"] / ts_rps, 3),
        "torchserve_over_baseline": (round(ts_rps / at(baseline, hi)["throughput_rps"], 3)
                                     if baseline else None),
        "proxy_added_p50_ms": round(at(proxy, lo)["p50_ms"] - at(ts, lo)["p50_ms"], 2),
        "torchserve_p99_over_p50": round(at(ts, hi)["p99_ms"] / at(ts, hi)["p50_ms"], 2),
    }
    return {name: value for name, value in result.items() if value is not None}


def layer_table(results: dict, layers: tuple[str, ...], unit: str = "req/s") -> list[str]:
    lines = [f"| layer | c | {unit} | p50 ms | p95 ms | p99 ms | errors | wrk CPU % |",
             "|---|---|---|---|---|---|---|---|"]
    for layer in layers:
        for r in results.get(layer, []):
            lines.append(f"| {layer} | {r['concurrency']} | {r['throughput_rps']:.1f} | {r['p50_ms']:.1f} | "
                         f"{r['p95_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']} | "
                         f"{r['client_cpu_pct_of_one_core']} |")
    return lines


def ratio_table(measured: dict) -> list[str]:
    lines = ["", "| ratio | value | target |", "|---|---|---|"] if measured else []
    for name, value in measured.items():
        target = TARGETS.get(name)
        if target is None:
            verdict = "<= 3" if name.endswith("p99_over_p50") else ""
        else:
            verdict = f"<= {target}" if name.endswith("_ms") else f">= {target}"
        lines.append(f"| {name} | {value} | {verdict} |")
    return lines


def markdown(results: dict) -> str:
    lines = [f"# Benchmark: {results['model']} ({results['machine']['cpus']} CPUs, "
             f"{results['machine']['platform']})"]
    if results["model"] != text_serving.MODEL:
        lines += ["", *layer_table(results, ("torchserve", "proxy", "baseline"))]
    rf = results["raw"]
    if rf:
        lines += ["", f"raw (in-process, {rf['workers']} x {rf['torch_threads']} thread): "
                  f"batch 1 {rf['pipeline_batch1_ips']} img/s, batch {rf['batch_size']} "
                  f"{rf['pipeline_batchN_ips']} img/s, forward only {rf['forward_only_batchN_ips']} img/s"]
    lines += ratio_table(results["ratios"])
    lines += faults.markdown(results)
    if "text" in results:
        text = results["text"]
        lines += ["", f"## Text model ({text['listings']} synthetic listings as JSON, "
                  "POST /predictions/text and /predict/text)", "",
                  *layer_table(text, ("torchserve", "proxy"), unit="listings/s")]
        if text["raw"]:
            lines += ["", text_serving.raw_line(text["raw"])]
        lines += ratio_table(text["ratios"])
    return "\n".join(lines) + "\n"


def write_results(results: dict, out: Path) -> None:
    """``results.json`` (+ ``results.md``) for the latest run, and a per-model copy of each."""
    text = json.dumps(results, indent=2) + "\n"
    for name in ("results.json", f"results-{results['model']}.json"):
        (out / name).write_text(text)
    has_main = results["ratios"] or "overload" in results or "fault" in results or "text" in results
    text = markdown(results) if has_main else ""
    if results.get("stages"):
        text += "\n".join(["", "Handler stages (median ms per image, 1 thread):",
                           *stages.markdown(results["stages"])]) + "\n"
    measured = [r for r in results.get("runtimes", []) if "failed" not in r]
    if measured:
        text += "\n".join(runtimes.markdown(measured)) + "\n"
        text += "".join(f"\n{r['runtime']}: {r['failed']}\n" for r in results["runtimes"] if "failed" in r)
    if text:
        for name in ("results.md", f"results-{results['model']}.md"):
            (out / name).write_text(text)
        print("\n" + text)
