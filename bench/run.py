"""``make bench``: how much of the model's own speed survives TorchServe, and what the proxy costs.

One run, one machine, one set of photo-sized test images (``bench/images.py``):

1. **raw** — the served handler in-process (decode + preprocess + forward + softmax, no HTTP) with
   the worker's torch threads, in as many processes as TorchServe has workers: batch 1 and the
   configured ``batchSize``; plus the forward pass alone;
2. **torchserve** — ``POST /predictions/<model>`` with the inference key, at concurrency 1, 4, 8;
3. **proxy** — ``POST /predict/image`` through the FastAPI proxy, same concurrencies;
4. **baseline** — the seed-style single FastAPI process (``bench/baseline_app.py``), same load;
5. **ratios** — torchserve/raw and proxy/torchserve and torchserve/baseline at c=8, and the proxy's
   added p50 latency at c=1;
6. **overhead** — the proxy's added p50 at c=1 over 5 consecutive TorchServe/proxy pairs (spread);
7. **overload** and **fault** — ``bench/faults.py``: goodput and admitted p99 at 1x/4x/12x the
   saturating concurrency, the proxy CPU per refused request, and every status while workers are
   killed mid-run.
8. **runtimes** (``--runtimes``) — one archive per runtime built from the training run, side by side:
   forward-only and in-process handler images/s, TorchServe req/s at the top concurrency with p50/p99,
   and the accuracy gate's agreement with eager fp32 (:mod:`bench.runtimes`);
9. **text** — the text model (``text.mar``) in-process vs TorchServe vs proxy, listings/s and
   latency, with the same ratios (:mod:`bench.text_serving`). ``--layers text`` alone measures only
   it and writes ``results-text.json`` / ``.md``.

Load comes from wrk (C, one thread; its CPU use is reported). Every measurement is bounded in time
and request count and targets loopback only. Results: ``bench/out/results.json`` + ``results.md``.
"""

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import requests

from aicore.runtime import RUNTIMES
from bench import faults, raw, runtimes, stages, text_serving
from bench.report import ratios, write_results
from bench.closedloop import build_request
from bench.images import content_type, make_bench_images
from bench.loadgen import Body, LoadResult, require_wrk, run_wrk
from common.cli import UserError, run
from common.net import free_port
from common.catalogue import IMAGE, served_models
from common.torchserve import INFERENCE_KEY, bearer, read_key_file
from serving import ctl
from serving.stack import stack_on_free_ports


REPO_ROOT = Path(__file__).resolve().parents[1]
MULTIPART_BOUNDARY = "aicore-bench-boundary-7d1e"
LAYERS = ("raw", "torchserve", "proxy", "baseline", "overhead", "overload", "fault", "text")
IMAGE_LAYERS = frozenset(LAYERS) - {"text"}
OVERHEAD_RUNS = 5
FAULT_CLIENTS = 16


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=served_models(REPO_ROOT / "config.properties").names(IMAGE),
                        default="resnet50",
                        help="served image model to measure, of config.properties (default: resnet50)")
    parser.add_argument("--quick", action="store_true",
                        help="short measurements (about two minutes in all) for repeated use")
    parser.add_argument("--duration", type=float, default=None,
                        help="seconds per load measurement (default: 20, or 5 with --quick)")
    parser.add_argument("--concurrency", default="1,4,8",
                        help="comma-separated client concurrencies (default: 1,4,8)")
    parser.add_argument("--config", type=Path, default=REPO_ROOT / "config.properties",
                        help="TorchServe config to measure (default: config.properties)")
    parser.add_argument("--model-store", type=Path, default=REPO_ROOT / "model_store",
                        help="directory holding the .mar archives (default: model_store)")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="torch threads per TorchServe worker (default: 1, as `make serve`)")
    parser.add_argument("--layers", default=",".join(LAYERS),
                        help="what to measure, for tuning one layer at a time; ratios need the "
                             f"first four (default: {','.join(LAYERS)})")
    parser.add_argument("--runtimes", default="",
                        help=f"comma-separated runtimes to compare side by side ({', '.join(RUNTIMES)}); "
                             "each is built from --run (default: none)")
    parser.add_argument("--run", type=Path, default=None,
                        help="training run the --runtimes archives are built from (default: runs/MODEL)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "out",
                        help="where results and runtime files go (default: bench/out)")
    return parser


def served_settings(config: Path, model: str) -> dict:
    """workers / batchSize / maxBatchDelay of ``model`` from the config's ``model_snapshot``."""
    served = served_models(config)[model]
    return {"workers": served.workers, "batch_size": served.batch_size,
            "max_batch_delay_ms": served.max_batch_delay_ms}


def multipart_body(path: Path, dest: Path) -> Body:
    """Write the ``multipart/form-data`` body the proxy and the baseline expect (field ``image``)."""
    head = (f"--{MULTIPART_BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; "
            f"filename=\"{path.name}\"\r\nContent-Type: {content_type(path)}\r\n\r\n").encode()
    dest.write_bytes(head + path.read_bytes() + f"\r\n--{MULTIPART_BOUNDARY}--\r\n".encode())
    return Body(dest, f"multipart/form-data; boundary={MULTIPART_BOUNDARY}")


def measure_raw(model_dir: Path, images: list[Path], settings: dict, threads: int,
                duration: float) -> dict:
    data = raw.read_images(images)
    workers, batch = settings["workers"], settings["batch_size"]
    print(f"raw: {workers} process(es) x {threads} thread(s), batch 1 and {batch} ...", flush=True)
    result = {
        "workers": workers, "torch_threads": threads, "batch_size": batch,
        "pipeline_batch1_ips": raw.throughput(model_dir, data, 1, threads, workers, duration),
        "pipeline_batchN_ips": raw.throughput(model_dir, data, batch, threads, workers, duration),
        "forward_only_batchN_ips": raw.throughput(model_dir, data, batch, threads, workers, duration,
                                                  forward_only=True),
    }
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()}


def sweep(name: str, url: str, bodies: list[Body], levels: list[int], duration: float,
          headers: dict[str, str] | None = None) -> list[dict]:
    """Warm up, then one bounded wrk measurement per concurrency level."""
    run_wrk(url, bodies, max(levels), min(3.0, duration), 10_000, headers)  # warm-up, not recorded
    results = []
    for level in levels:
        result: LoadResult = run_wrk(url, bodies, level, duration, int(duration * 2000), headers)
        print(f"{name:>10} c={level}: {result.throughput_rps:7.1f} req/s  p50 {result.p50_ms:6.1f} ms  "
              f"p99 {result.p99_ms:6.1f} ms  errors {result.errors}  "
              f"(wrk CPU {result.client_cpu_pct_of_one_core}% of a core)", flush=True)
        results.append(result.as_dict())
    return results


def measure_served(args: argparse.Namespace, images: list[Path], levels: list[int],
                   duration: float, layers: set[str],
                   text_bodies: list[Body] | None = None) -> tuple[list[dict], list[dict], dict]:
    """Start TorchServe + proxy on free ports, measure both (and the proxy under overload and
    faults; the text model with ``text_bodies`` when ``layers`` has text), stop them."""
    stack = stack_on_free_ports(args.out / "serve", args.model_store, args.config,
                                args.torch_threads)
    raw_bodies = [Body(p, content_type(p)) for p in images]
    form_dir = args.out / "multipart"
    form_dir.mkdir(parents=True, exist_ok=True)
    form_bodies = [multipart_body(p, form_dir / f"{p.name}.form") for p in images]
    ctl.start(stack, timeout=300)
    try:
        key = read_key_file(stack.key_file)[INFERENCE_KEY]
        ts = proxy = []
        extra: dict = {}
        if "text" in layers and text_bodies:
            extra["text"] = {
                "torchserve": sweep("text ts", f"{stack.inference_url}/predictions/"
                                    f"{text_serving.MODEL}", text_bodies, levels, duration,
                                    bearer(key)),
                "proxy": sweep("text proxy", f"{stack.proxy_url}/predict/text", text_bodies,
                               levels, duration)}
        if "torchserve" in layers:
            ts = sweep("torchserve", f"{stack.inference_url}/predictions/{args.model}", raw_bodies,
                       levels, duration, bearer(key))
        proxy_url = f"{stack.proxy_url}/predict/image?model={args.model}"
        if "proxy" in layers:
            proxy = sweep("proxy", proxy_url, form_bodies, levels, duration)
        if "overhead" in layers:
            extra["overhead"] = added_p50_runs(
                f"{stack.inference_url}/predictions/{args.model}", raw_bodies,
                bearer(key), proxy_url, form_bodies, duration)
        requests_ = [build_request(proxy_url, Path(b.path).read_bytes(), b.content_type)
                     for b in form_bodies] if images else []
        if "overload" in layers:
            extra["overload"] = faults.overload(proxy_url, requests_, max(levels), duration)
            extra["rejection"] = faults.rejection_cost(stack, args.model, requests_[-1])
        if "fault" in layers:
            extra["fault"] = faults.fault(stack, args.model, proxy_url, requests_, FAULT_CLIENTS,
                                          max(10.0, 2 * duration))
    finally:
        ctl.stop(stack)
    return ts, proxy, extra


def added_p50_runs(ts_url: str, raw_bodies: list[Body], headers: dict[str, str], proxy_url: str,
                   form_bodies: list[Body], duration: float) -> dict:
    """The proxy's added p50 at one client, from consecutive TorchServe/proxy pairs: one run on
    a shared machine can be off by 30 %, so report every pair and their spread."""
    added = []
    for _ in range(OVERHEAD_RUNS):
        ts = run_wrk(ts_url, raw_bodies, 1, duration / 2, int(duration * 1000), headers)
        proxy = run_wrk(proxy_url, form_bodies, 1, duration / 2, int(duration * 1000))
        added.append(round(proxy.p50_ms - ts.p50_ms, 2))
    ordered = sorted(added)
    result = {"runs_ms": added, "median_ms": ordered[len(ordered) // 2],
              "min_ms": ordered[0], "max_ms": ordered[-1]}
    print(f"overhead: proxy added p50 at c=1 over {OVERHEAD_RUNS} runs: {added} ms "
          f"(median {result['median_ms']})", flush=True)
    return result


def measure_baseline(model_dir: Path, images: list[Path], levels: list[int], duration: float,
                     out: Path) -> list[dict]:
    """Start the seed-style app (one uvicorn process), measure it, stop it."""
    port = free_port()
    env = dict(os.environ, AICORE_BASELINE_MODEL_DIR=str(model_dir))
    log = (out / "baseline.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "bench.baseline_app:app", "--host",
                             "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_http(f"http://127.0.0.1:{port}/openapi.json", proc, 120)
        form_dir = out / "multipart"
        form_dir.mkdir(parents=True, exist_ok=True)
        bodies = [multipart_body(p, form_dir / f"{p.name}.form") for p in images]
        return sweep("baseline", f"http://127.0.0.1:{port}/predict/image", bodies, levels, duration)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _wait_http(url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise UserError(f"the baseline app exited during start-up; see {url}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise UserError(f"the baseline app did not answer {url} within {timeout:.0f} s")


def measured_model(model: str, layers: set[str]) -> str:
    """The model a run's results are named after: the text model when only its layer runs."""
    return text_serving.MODEL if not layers & IMAGE_LAYERS else model


def main(args: argparse.Namespace) -> dict:
    levels = sorted({int(c) for c in args.concurrency.split(",")})
    layers = set(args.layers.split(","))
    unknown = layers - set(LAYERS)
    if unknown:
        raise UserError(f"unknown --layers {sorted(unknown)}: choose from {', '.join(LAYERS)}")
    image_run = bool(layers & IMAGE_LAYERS)
    if args.runtimes and not image_run:
        raise UserError("--runtimes compares the image model's archives: add an image layer "
                        "(e.g. --layers raw)")
    duration = args.duration or (5.0 if args.quick else 20.0)
    raw_duration = 3.0 if args.quick else 10.0
    wanted = ([args.model] if image_run else []) + (["text"] if "text" in layers else [])
    for name in wanted:
        mar = args.model_store / f"{name}.mar"
        if not mar.is_file():
            raise UserError(f"{mar} does not exist: build it with `make archive` (after `make train`)")
    try:
        require_wrk()
    except RuntimeError as exc:
        raise UserError(str(exc)) from None
    args.out.mkdir(parents=True, exist_ok=True)
    results = {
        "model": measured_model(args.model, layers), "quick": args.quick, "duration_s": duration,
        "concurrency": levels,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "processor": platform.processor() or platform.machine()},
        "torch_threads": args.torch_threads,
        "raw": {}, "torchserve": [], "proxy": [], "baseline": [], "ratios": {},
    }
    images: list[Path] = []
    if image_run:
        images = make_bench_images(args.out / "images")
        settings = served_settings(args.config, args.model)
        model_dir = raw.unpack_archive(args.model_store / f"{args.model}.mar",
                                       args.out / "unpacked" / args.model)
        results.update({"images": [p.name for p in images], "served_settings": settings})
    if "raw" in layers:
        print("stages: decode / clean / tensor / forward / JSON per image ...", flush=True)
        results["stages"] = stages.measure_stages(model_dir, images)
        results["raw"] = measure_raw(model_dir, images, settings, args.torch_threads, raw_duration)
    text_bodies = measure_text_raw(args, results, raw_duration) if "text" in layers else None
    if layers & {"torchserve", "proxy", "overhead", "overload", "fault", "text"}:
        results["torchserve"], results["proxy"], extra = measure_served(
            args, images, levels, duration, layers, text_bodies)
        results.get("text", {}).update(extra.pop("text", {}))
        results.update(extra)
    if "baseline" in layers:
        results["baseline"] = measure_baseline(model_dir, images, levels, duration, args.out)
    if args.runtimes:
        results["runtimes"] = measure_runtimes(args, images, settings, levels, duration)
    if {"raw", "torchserve", "proxy", "baseline"} <= layers:
        results["ratios"] = ratios(results["raw"], results["torchserve"], results["proxy"],
                                   results["baseline"], levels)
    if "text" in layers:
        text = results["text"]
        text["ratios"] = ratios(text["raw"], text["torchserve"], text["proxy"], [], levels)
    write_results(results, args.out)
    measured = [results[layer] for layer in ("torchserve", "proxy", "baseline")]
    measured += [results["text"][layer] for layer in ("torchserve", "proxy")] if "text" in layers else []
    errors = sum(r["errors"] for layer in measured for r in layer)
    if errors:
        raise UserError(f"{errors} request(s) failed during the benchmark: the figures are not valid "
                       f"(see {args.out / 'serve' / 'logs'})")
    return results


def measure_text_raw(args: argparse.Namespace, results: dict, duration: float) -> list[Body]:
    """The text layer's bodies and its in-process figures (into ``results["text"]``); TorchServe
    and the proxy are measured by :func:`measure_served` with the same bodies."""
    settings = served_settings(args.config, text_serving.MODEL)
    model_dir = raw.unpack_archive(args.model_store / f"{text_serving.MODEL}.mar",
                                   args.out / "unpacked" / text_serving.MODEL)
    bodies = text_serving.make_bodies(args.out)
    results["text"] = {
        "model": text_serving.MODEL, "listings": len(bodies), "served_settings": settings,
        "raw": text_serving.measure_raw(model_dir, bodies, settings, args.torch_threads, duration),
        "torchserve": [], "proxy": [], "ratios": {},
    }
    return bodies


def measure_runtimes(args: argparse.Namespace, images: list[Path], settings: dict, levels: list[int],
                     duration: float) -> list[dict]:
    """Build and measure one archive per runtime of ``--runtimes`` (:mod:`bench.runtimes`)."""
    wanted = [r for r in args.runtimes.split(",") if r]
    unknown = sorted(set(wanted) - set(RUNTIMES))
    if unknown:
        raise UserError(f"unknown --runtimes {unknown}: choose from {', '.join(RUNTIMES)}")
    run_dir = args.run or REPO_ROOT / "runs" / args.model
    top = [max(levels)]

    def serve(store: Path) -> list[dict]:
        ts, _, _ = measure_served(argparse.Namespace(**{**vars(args), "model_store": store}), images, top,
                               duration, {"torchserve"})
        return ts

    measured, failed = [], []
    for runtime in wanted:
        try:
            measured.append(runtimes.measure_runtime(run_dir, args.model, runtime, args, images, settings,
                                                     top, duration, serve))
        except UserError as exc:  # the accuracy gate refused it: say so, measure the others
            print(f"runtime {runtime}: not measured: {exc}", flush=True)
            failed.append({"runtime": runtime, "failed": str(exc)})
    return runtimes.with_ratios(measured) + failed


if __name__ == "__main__":
    run(main, get_args_parser())
