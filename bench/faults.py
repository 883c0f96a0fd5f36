"""``make bench`` under overload and faults, through the proxy of a running stack.

1. **overload** — closed-loop clients (``bench/closedloop.py``, honouring ``Retry-After``) at the
   saturating concurrency and at 4x and 12x it: goodput (200s per second), admitted p50/p99, and
   every status counted. Ratios: goodput at 4x and 12x over the best goodput (target >= 0.9) and
   admitted p99 at 4x and 12x over the p99 at saturation (target <= 2).
2. **rejection cost** — the model's workers frozen (SIGSTOP), its admission filled, then a run of
   requests that are all refused: the proxy process's CPU time per refusal (target <= 1 ms).
3. **fault** — closed-loop clients while one worker is ``kill -9``-ed at 1/4 of the run and
   another at 1/2: every status counted (target: only 200s).
"""

import asyncio
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import psutil

from bench.closedloop import ClosedLoopResult, closed_loop, read_response
from common.torchserve import MANAGEMENT_KEY, READY, bearer, read_key_file
from serving.process import proxy_process
from serving.ready import http_session
from serving.stack import Stack

TARGETS = {"goodput_over_best": 0.90, "admitted_p99_over_saturation": 2.0,
           "rejection_cpu_ms": 1.0, "fault_non_200": 0}


def worker_pids(stack: Stack, model: str) -> list[int]:
    """Pids of the model's workers, once all are READY (TorchServe restarts killed ones)."""
    headers = bearer(read_key_file(stack.key_file).get(MANAGEMENT_KEY))
    deadline = time.monotonic() + 180
    with http_session() as session:
        while time.monotonic() < deadline:
            response = session.get(f"{stack.management_url}/models/{model}", headers=headers,
                                   timeout=10)
            workers = response.json()[0]["workers"] if response.ok else []
            if workers and all(w["status"] == READY and psutil.pid_exists(w["pid"])
                               for w in workers):
                return [w["pid"] for w in workers]
            time.sleep(0.5)
    raise RuntimeError(f"{model}'s workers did not all become READY within 180 s")


def fill_count(stack: Stack, model: str) -> int:
    """More requests than the proxy admits for ``model`` (1.5 batches in flight + 0.5 waiting of
    workers x batchSize by default): 4 batches, so that the gate is surely full."""
    described = _describe(stack, model)
    return 4 * len(described["workers"]) * described["batchSize"]


def _describe(stack: Stack, model: str) -> dict:
    headers = bearer(read_key_file(stack.key_file).get(MANAGEMENT_KEY))
    with http_session() as session:
        return session.get(f"{stack.management_url}/models/{model}", headers=headers,
                           timeout=10).json()[0]


@contextmanager
def frozen(pids: list[int]) -> Iterator[None]:
    """SIGSTOP the processes; SIGCONT them on the way out, whatever happened."""
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


def _print(name: str, result: ClosedLoopResult) -> dict:
    summary = result.summary()
    print(f"{name:>10} c={summary['clients']}: goodput {summary['goodput_rps']:6.1f}/s  admitted "
          f"p50 {summary['ok_p50_ms']} ms p99 {summary['ok_p99_ms']} ms  statuses "
          f"{summary['statuses']}  refusal p50 {summary['reject_p50_ms']} ms", flush=True)
    return summary


def overload(url: str, requests: list[bytes], saturating: int, duration: float) -> dict:
    """Closed-loop load at 1x, 4x and 12x the saturating concurrency."""
    closed_loop(url, requests, saturating, min(3.0, duration))  # warm-up, not recorded
    points = [_print("overload", closed_loop(url, requests, saturating * k, duration))
              for k in (1, 4, 12)]
    best = max(p["goodput_rps"] for p in points) or 1.0
    base_p99 = points[0]["ok_p99_ms"] or 1.0
    ratios = {}
    for factor, point in zip((4, 12), points[1:], strict=True):
        ratios[f"goodput_{factor}x_over_best"] = round(point["goodput_rps"] / best, 3)
        if point["ok_p99_ms"] is not None:
            ratios[f"admitted_p99_{factor}x_over_saturation"] = round(point["ok_p99_ms"] / base_p99, 2)
    return {"saturating_clients": saturating, "points": points, "ratios": ratios}


async def _refusals(host: str, port: int, request: bytes, fill: int, count: int,
                    proxy: psutil.Process) -> tuple[float, float, int, list]:
    """Fill admission with ``fill`` hanging requests, then send ``count`` that are refused.

    Returns:
        Proxy CPU seconds and wall seconds over the refusals, how many were 503, and the hanging
        connections (to be read once the workers resume).
    """
    hanging = []
    for _ in range(fill):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(request)
        hanging.append((reader, writer))
    await asyncio.sleep(2.0)  # every one of them admitted or refused by now
    reader, writer = await asyncio.open_connection(host, port)
    before = proxy.cpu_times()
    started = time.perf_counter()
    refused = 0
    for _ in range(count):
        writer.write(request)
        status, _, _ = await read_response(reader)
        await writer.drain()
        refused += status == 503
    wall = time.perf_counter() - started
    after = proxy.cpu_times()
    writer.close()
    cpu = (after.user - before.user) + (after.system - before.system)
    return cpu, wall, refused, hanging


def rejection_cost(stack: Stack, model: str, request: bytes, count: int = 300) -> dict:
    """Proxy CPU per refused request, measured on the proxy process while the workers are frozen."""
    proxy = proxy_process(stack)
    if proxy is None:
        raise RuntimeError("the proxy is not running")
    with http_session() as session:  # /health sizes the proxy's admission from TorchServe
        session.get(f"{stack.proxy_url}/health", timeout=30)
    fill = fill_count(stack, model)
    loop = asyncio.new_event_loop()
    try:
        with frozen(worker_pids(stack, model)):
            cpu, wall, refused, hanging = loop.run_until_complete(
                _refusals(stack.host, stack.proxy_port, request, fill, count, proxy))
        loop.run_until_complete(_finish(hanging))  # the workers resumed: let them answer
    finally:
        loop.close()
    result = {"refused": refused, "sent": count,
              "cpu_ms_per_refusal": round(1000 * cpu / max(1, refused), 3),
              "wall_ms_per_refusal": round(1000 * wall / max(1, refused), 3)}
    print(f"rejection: {refused}/{count} refused, proxy CPU {result['cpu_ms_per_refusal']} ms and "
          f"{result['wall_ms_per_refusal']} ms wall per refusal", flush=True)
    return result


async def _finish(hanging: list) -> None:
    for reader, writer in hanging:
        with suppress(OSError, TimeoutError, asyncio.IncompleteReadError):
            await asyncio.wait_for(read_response(reader), 60)
        writer.close()


def fault(stack: Stack, model: str, url: str, requests: list[bytes], clients: int,
          duration: float) -> dict:
    """Closed-loop load while one worker is killed at 1/4 of the run and another at 1/2."""
    worker_pids(stack, model)  # all READY before the run
    killed: list[int] = []

    def killer() -> None:
        for at, index in ((duration / 4, 0), (duration / 2, 1)):
            time.sleep(max(0.0, at - (time.monotonic() - started)))
            pids = current_worker_pids(stack, model)
            victim = pids[index % len(pids)]
            psutil.Process(victim).kill()
            killed.append(victim)

    started = time.monotonic()
    thread = threading.Thread(target=killer)
    thread.start()
    result = closed_loop(url, requests, clients, duration)
    thread.join()
    summary = _print("fault", result)
    non_200 = sum(v for k, v in result.statuses.items() if k != 200) + result.connection_errors
    worker_pids(stack, model)  # wait until TorchServe has replaced them
    return {"clients": clients, "killed_workers": len(killed), **summary, "non_200": non_200}


def current_worker_pids(stack: Stack, model: str) -> list[int]:
    """Current worker pids, whatever their state."""
    return sorted(w["pid"] for w in _describe(stack, model)["workers"])


def markdown(results: dict) -> list[str]:
    """The overhead, overload, rejection and fault sections of ``results.md`` (those measured)."""
    lines: list[str] = []
    if "overhead" in results:
        o = results["overhead"]
        lines += ["", f"proxy added p50 at c=1, {len(o['runs_ms'])} consecutive runs: {o['runs_ms']} ms "
                  f"(median {o['median_ms']}, spread {o['min_ms']} .. {o['max_ms']})"]
    if "overload" in results:
        lines += ["", "| overload: clients | goodput /s | admitted p50 ms | admitted p99 ms | "
                  "refusal p50 ms | statuses |", "|---|---|---|---|---|---|"]
        for p in results["overload"]["points"]:
            lines.append(f"| {p['clients']} | {p['goodput_rps']} | {p['ok_p50_ms']} | {p['ok_p99_ms']} | "
                         f"{p['reject_p50_ms']} | {p['statuses']} |")
        lines += ["", "| overload ratio | value | target |", "|---|---|---|"]
        for name, value in results["overload"]["ratios"].items():
            target = (f">= {TARGETS['goodput_over_best']}" if name.startswith("goodput")
                      else f"<= {TARGETS['admitted_p99_over_saturation']}")
            lines.append(f"| {name} | {value} | {target} |")
    if "rejection" in results:
        r = results["rejection"]
        lines += ["", f"refusal: {r['refused']}/{r['sent']} refused, proxy CPU "
                  f"{r['cpu_ms_per_refusal']} ms per refusal (target <= {TARGETS['rejection_cpu_ms']})"]
    if "fault" in results:
        f = results["fault"]
        lines += ["", f"fault: {f['clients']} clients, {f['killed_workers']} workers killed -9: "
                  f"statuses {f['statuses']}, non-200 {f['non_200']} (target 0), goodput "
                  f"{f['goodput_rps']}/s"]
    return lines
