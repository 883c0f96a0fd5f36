"""Where a text query's time goes, for ``bench.search_text``: per request and per process.

- **in the proxy**: its ``Server-Timing`` header (``proxy.search_routes``): ``embed`` (the
  TorchServe call, version check included), ``search`` and its steps (``search-prepare``,
  ``search-dense``, ``search-lexical``, ``search-fuse``, ``search-hydrate``), ``thread-hop``
  (waiting for the worker thread the search runs in, and back), ``route`` (all of the route, the
  answer's model included). What the client saw minus ``route`` is ``outside``: HTTP parsing,
  FastAPI's dependencies and validation, JSON encoding, the loopback and the client.
- **in TorchServe**: the direct call's latency (frontend + worker), and the encoder alone
  in-process on the same texts (``ort``: tokenising + the archive's runtime, one thread), so
  ``frontend + handler`` = direct call - ``ort``.
- **CPU time per query** of each process (proxy; TorchServe's JVM frontend; its Python
  worker; this client), from ``psutil`` before and after: on a shared machine CPU time does not
  grow with other jobs' load the way wall-clock time does, so it is the figure to compare changes
  by when the machine is busy.
"""

from __future__ import annotations

import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import psutil

from common.server_timing import parse_timing
from serving.process import proxy_process, torchserve_process
from serving.stack import Stack


def summarise(samples: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Per stage over the requests: p50, p99 and mean, milliseconds."""
    names = dict.fromkeys(name for sample in samples for name in sample)
    summary = {}
    for name in names:
        values = np.array([sample.get(name, 0.0) for sample in samples])
        summary[name] = {"p50": round(float(np.percentile(values, 50)), 3),
                         "p99": round(float(np.percentile(values, 99)), 3),
                         "mean": round(float(values.mean()), 3)}
    return summary


def request_stages(client_s: float, server_timing: str) -> dict[str, float]:
    """One request's stages: the proxy's, ``client`` (what the client measured) and ``outside``."""
    stages = parse_timing(server_timing)
    stages["client"] = client_s * 1000
    if "route" in stages:
        stages["outside"] = stages["client"] - stages["route"]
    return stages


def stack_processes(stack: Stack) -> dict[str, psutil.Process]:
    """The processes whose CPU time a query costs: proxy, TorchServe's JVM, its workers, us."""
    processes = {"client": psutil.Process()}
    proxy = proxy_process(stack)
    if proxy is not None:
        processes["proxy"] = proxy
    jvm = torchserve_process(stack)
    if jvm is not None:
        processes["torchserve_frontend"] = jvm
        for i, worker in enumerate(jvm.children(recursive=True)):
            processes[f"torchserve_worker{i if i else ''}"] = worker
    return processes


def _cpu_s(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.Error:
        return float("nan")
    return times.user + times.system


@contextmanager
def cpu_per_query(stack: Stack, queries: int) -> Iterator[dict[str, float]]:
    """Fills the yielded dict with each process's CPU milliseconds per query over the block."""
    processes = stack_processes(stack)
    before = {name: _cpu_s(p) for name, p in processes.items()}
    result: dict[str, float] = {}
    yield result
    for name, process in processes.items():
        result[name] = round((_cpu_s(process) - before[name]) * 1000 / max(queries, 1), 3)


def encoder_in_process(model_store: Path, texts: list[str]) -> dict[str, float]:
    """The archived query encoder (``query.mar``'s runtime, one thread) on each text alone:
    what the TorchServe worker computes, without TorchServe. p50/p99/mean milliseconds."""
    from aicore.sentence import load_encoder_runtime

    with tempfile.TemporaryDirectory() as folder:
        with zipfile.ZipFile(model_store / "query.mar") as archive:
            archive.extractall(folder)
        encoder, _ = load_encoder_runtime(Path(folder), threads=1)
        return _time_each(lambda text: encoder.encode([text]), texts)


def _time_each(fn: Callable[[str], object], texts: list[str]) -> dict[str, float]:
    for text in texts[:10]:  # warm-up: allocations, caches
        fn(text)
    seconds = []
    for text in texts:
        started = time.perf_counter()
        fn(text)
        seconds.append(time.perf_counter() - started)
    return summarise([{"ms": s * 1000} for s in seconds])["ms"]


def format_breakdown(stages: dict[str, dict[str, float]], cpu: dict[str, float],
                     direct: dict[str, float], encoder: dict[str, float] | None) -> str:
    """The breakdown as lines of text (milliseconds)."""
    lines = ["stage                   p50      p99     mean   (ms, per request)"]
    for name, figures in stages.items():
        lines.append(f"  {name:18s} {figures['p50']:8.2f} {figures['p99']:8.2f} {figures['mean']:8.2f}")
    lines.append(f"  {'torchserve direct':18s} {direct['p50']:8.2f} {direct['p99']:8.2f}")
    if encoder is not None:
        lines.append(f"  {'encoder in-process':18s} {encoder['p50']:8.2f} {encoder['p99']:8.2f} "
                     f"{encoder['mean']:8.2f}")
    lines.append("CPU ms per query: " + ", ".join(f"{name} {ms:.2f}" for name, ms in cpu.items()))
    return "\n".join(lines)
