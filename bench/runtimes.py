"""``make bench``'s runtime comparison: one archive per runtime, measured side by side in one run.

For each runtime of ``--runtimes`` it builds the model's archive from the training run (``make archive
RUNTIME=<runtime>``, so the accuracy gate runs and its figures are reported), then measures

- **forward** — the runtime alone on ready tensors (images/s, batch = the served ``batchSize``);
- **handler** — the served handler in-process: decode + preprocess + forward + JSON (images/s);
- **torchserve** — ``POST /predictions/<model>`` at the highest concurrency (req/s, p50, p99);
- **agreement** — top-1 agreement with eager fp32 and test accuracy, from the archive's gate;

and prints the ratios to eager. The other served model's archive is copied from the model store
unchanged, so TorchServe runs with the repository's config.
"""

import shutil
from pathlib import Path

from aicore.runtime import EAGER
from bench import raw
from handler import archive


def build_store(run_dir: Path, model: str, runtime: str, model_store: Path, out: Path) -> tuple[Path, dict]:
    """A model store holding ``model`` built with ``runtime`` and the other archives of ``model_store``."""
    store = out / runtime
    store.mkdir(parents=True, exist_ok=True)
    for mar in Path(model_store).glob("*.mar"):
        if mar.stem != model:
            shutil.copy2(mar, store / mar.name)
    _, record = archive.build_archive(run_dir, model, store, runtime)
    return store, record


def measure_runtime(run_dir: Path, model: str, runtime: str, args, images: list[Path], settings: dict,
                    levels: list[int], duration: float, serve) -> dict:
    """Every figure of one runtime; ``serve(store)`` measures TorchServe over a model store."""
    print(f"runtime {runtime}: building the archive (with its accuracy gate) ...", flush=True)
    store, record = build_store(run_dir, model, runtime, args.model_store, args.out / "runtimes")
    model_dir = raw.unpack_archive(store / f"{model}.mar", args.out / "unpacked-runtimes" / runtime)
    data = raw.read_images(images)
    workers, batch, threads = settings["workers"], settings["batch_size"], args.torch_threads
    raw_duration = 3.0 if args.quick else 10.0
    figures = {
        "runtime": record["runtime"],
        "forward_ips": raw.throughput(model_dir, data, batch, threads, workers, raw_duration,
                                      forward_only=True),
        "handler_ips": raw.throughput(model_dir, data, batch, threads, workers, raw_duration),
    }
    served = serve(store)
    top = next(r for r in served if r["concurrency"] == max(levels))
    figures.update({"torchserve_rps": top["throughput_rps"], "p50_ms": top["p50_ms"], "p99_ms": top["p99_ms"],
                    "errors": sum(r["errors"] for r in served), "concurrency": top["concurrency"]})
    gate = record.get("accuracy_gate")
    figures["agreement"] = gate["top1_agreement_with_eager"] if gate else 1.0
    figures["test_accuracy"] = gate["test_accuracy"] if gate else None
    figures["record"] = record
    print(f"runtime {runtime}: forward {figures['forward_ips']:.1f} img/s, handler "
          f"{figures['handler_ips']:.1f} img/s, torchserve {figures['torchserve_rps']:.1f} req/s, "
          f"agreement {figures['agreement']:.1%}",
          flush=True)
    return figures


def with_ratios(results: list[dict]) -> list[dict]:
    """Add ``*_over_eager`` ratios (from the same run) to each runtime's figures."""
    eager = next((r for r in results if r["runtime"] == EAGER), None)
    for r in results:
        for key in ("forward_ips", "handler_ips", "torchserve_rps"):
            r[f"{key}_over_eager"] = round(r[key] / eager[key], 2) if eager else None
    return results


def markdown(results: list[dict]) -> list[str]:
    lines = ["", "| runtime | forward img/s | handler img/s | torchserve req/s | p50 ms | p99 ms | "
             "agreement | test acc | forward / eager | torchserve / eager |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        acc = "" if r["test_accuracy"] is None else f"{r['test_accuracy']:.3f}"
        lines.append(f"| {r['runtime']} | {r['forward_ips']:.1f} | {r['handler_ips']:.1f} | "
                     f"{r['torchserve_rps']:.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
                     f"{r['agreement']:.1%} | {acc} | {r['forward_ips_over_eager']} | "
                     f"{r['torchserve_rps_over_eager']} |")
    return lines
