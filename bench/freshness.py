"""Freshness of the write path: how long from a listing's 201 until search finds it, under load.

    python -m bench.freshness [--listings 2000] [--rate 20] [--searchers 10] [--seconds 20]
                              [--processes 2]

All of it real: a text index of ``--listings`` synthetic listings built by the pretrained encoder
(``search.build``, as ``bench.search_text`` builds it), TorchServe serving ``query.mar`` only, and
the proxy over a fresh ``market.db``. With ``--processes 2`` (the default) a second proxy process
serves the same store and index: listings are written to the first and searched on the second,
so the figure includes the cross-process catch-up (docs/marketplace.md).

1. read-only: ``--searchers`` clients search (``GET /search?q=&k=10``, each query embedded by
   TorchServe) for ``--seconds``: latency p50/p99;
2. write load: the same searchers, while listings are published at ``--rate`` per second (open
   loop; each embedded by TorchServe before its 201). After each 201 its writer polls
   ``GET /search?q=<the listing's own word>`` every ``POLL_S`` until the listing is the hit:
   freshness p50/p99 (201 -> first hit, ``POLL_S`` granularity), the 201's own latency, and the
   searchers' latency under the write load.

Writes ``bench/out/freshness.json`` with the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psutil

from aicore.categories import ROOT_CATEGORIES
from bench.search_text import (proxy_environment, queries, synthetic_products, text_only_config,
                               write_dataset)
from common.atomic import atomic_write_text
from common.cli import UserError, positive_int, run
from common.net import free_port
from common.torchserve import (ENV_INFERENCE_URL, ENV_KEY_FILE, ENV_MANAGEMENT_URL, ENV_MODELS,
                               ENV_PREFIX, ENV_TORCHSERVE_CONFIG, PROXY_APP)
from search import build
from search.metrics import percentiles_ms
from serving import ctl
from serving.ready import http_session
from serving.stack import REPO_ROOT, Stack, stack_on_free_ports

OUT = Path("bench") / "out" / "freshness"
REPORT = Path("bench") / "out" / "freshness.json"
SERVED = "query"
POLL_S = 0.005
GIVE_UP_S = 10.0
START_TIMEOUT_S = 300.0
WRITE_ENV = {f"{ENV_PREFIX}REGISTRATION_BURST": "1000", f"{ENV_PREFIX}WRITE_BURST": "100000",
             f"{ENV_PREFIX}WRITES_PER_SECOND": "100000"}  # the bench measures speed, not limits


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.freshness",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listings", type=positive_int, default=2000,
                        help="listings in the built index (default: 2000)")
    parser.add_argument("--rate", type=float, default=20.0, help="listings written per second "
                        "(default: 20)")
    parser.add_argument("--searchers", type=positive_int, default=10,
                        help="clients searching all the time (default: 10)")
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="length of each phase (default: 20)")
    parser.add_argument("--processes", type=int, choices=(1, 2), default=2,
                        help="proxy processes over the store: 2 writes to one and searches the "
                             "other (default: 2)")
    parser.add_argument("--runtime", default="auto", help="query.mar's runtime (default: auto)")
    parser.add_argument("--seed", type=int, default=0, help="data and query seed (default: 0)")
    parser.add_argument("--out", type=Path, default=REPORT, help=f"JSON report (default: {REPORT})")
    return parser


def prepare(args: argparse.Namespace, rng: np.random.Generator) -> tuple[Path, list[str], dict]:
    """The encoder's index of synthetic listings and query.mar; the search queries."""
    from handler.query_archive import build_query_archive, gate_texts

    products = synthetic_products(args.listings, rng)
    data = write_dataset(OUT / "data", products)
    build.main(build.get_args_parser().parse_args(
        ["--data", str(data), "--out", str(OUT / "index"), "--threads", "2", "--no-progress"]))
    _, record = build_query_archive(None, OUT / "model_store", args.runtime, gate_texts(data))
    texts = queries(products, 500, rng)
    place = products[0]["location"]
    return OUT / "index", texts, {"runtime": record["runtime"], "place": place}


def second_proxy(stack: Stack, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """Another proxy process over the same TorchServe, index and store (as serving.process starts
    the first)."""
    port = free_port()
    child = {**os.environ, **env, ENV_INFERENCE_URL: stack.inference_url,
             ENV_MANAGEMENT_URL: stack.management_url, ENV_KEY_FILE: str(stack.key_file),
             ENV_MODELS: ",".join(stack.models),
             ENV_TORCHSERVE_CONFIG: str((REPO_ROOT / stack.config).resolve())}
    log = (OUT / "proxy2.log").open("ab")
    process = subprocess.Popen([sys.executable, "-m", "proxy.server", PROXY_APP, "--host",
                                "127.0.0.1", "--port", str(port)], cwd=REPO_ROOT, env=child,
                               stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    with http_session() as session:
        while time.monotonic() < deadline:
            try:
                if session.get(f"{url}/capabilities", timeout=2).status_code == 200:
                    return process, url
            except OSError:
                pass
            time.sleep(0.2)
    process.kill()
    raise UserError(f"the second proxy did not start: see {OUT / 'proxy2.log'}")


def search_loop(url: str, texts: list[str], stop: threading.Event, seconds: list[float],
                errors: list[str]) -> None:
    rng = np.random.default_rng(secrets.randbits(32))
    with http_session() as session:
        while not stop.is_set():
            text = texts[int(rng.integers(len(texts)))]
            started = time.perf_counter()
            try:
                response = session.get(f"{url}/search", params={"q": text, "k": 10}, timeout=60)
            except OSError as exc:  # requests' errors are OSErrors: counted, not fatal
                errors.append(f"search {type(exc).__name__}")
                continue
            if response.status_code == 200:
                seconds.append(time.perf_counter() - started)
            else:
                errors.append(f"search {response.status_code}")


def searching(url: str, texts: list[str], clients: int, duration: float, during=None) -> dict:
    """``clients`` search loops for ``duration`` s (``during(stop)`` runs meanwhile)."""
    stop, seconds, errors = threading.Event(), [], []
    threads = [threading.Thread(target=search_loop, args=(url, texts, stop, seconds, errors))
               for _ in range(clients)]
    for thread in threads:
        thread.start()
    try:
        extra = during(duration) if during is not None else time.sleep(duration)
    finally:
        stop.set()
        for thread in threads:
            thread.join(120)
    return {"searches": len(seconds), "errors": len(errors), "latency_ms": percentiles_ms(seconds),
            "searches_per_s": round(len(seconds) / duration, 1), **(extra or {})}


def publish_and_watch(write_url: str, search_url: str, auth: dict, place: str) -> dict:
    """One listing: its 201 latency and the seconds from the 201 to the first search hit."""
    word = "fz" + secrets.token_hex(5)
    form = {"title": f"Walnut side table {word}", "description": "Solid walnut, some marks.",
            "price": "£45", "location": place, "category": ROOT_CATEGORIES[6]}
    with http_session() as session:
        started = time.perf_counter()
        response = session.post(f"{write_url}/listings", data=form, headers=auth, timeout=60)
        acknowledged = time.perf_counter()
        if response.status_code != 201:
            return {"error": f"publish {response.status_code}: {response.text[:200]}"}
        listing_id, polls = response.json()["id"], 0
        while time.perf_counter() - acknowledged < GIVE_UP_S:
            polls, sent = polls + 1, time.perf_counter()
            hits = session.get(f"{search_url}/search", params={"q": word}, timeout=60).json()
            # fused with the dense side, other listings rank too: found = among the results
            if listing_id in [hit["id"] for hit in hits.get("results", [])]:
                return {"write_s": acknowledged - started, "polls": polls,
                        "sent_s": sent - acknowledged,
                        "fresh_s": time.perf_counter() - acknowledged, "id": listing_id}
            time.sleep(POLL_S)
    return {"error": f"{listing_id} not found within {GIVE_UP_S} s"}


def writing(write_url: str, search_url: str, place: str, rate: float) -> callable:
    """``during(duration)``: publish at ``rate`` per second (open loop) and report."""
    def during(duration: float) -> dict:
        with http_session() as session:
            token = session.post(f"{write_url}/sellers", json={"name": "bench"}, timeout=30).json()
        auth = {"Authorization": f"Bearer {token['token']}"}
        results, started = [], time.perf_counter()
        with ThreadPoolExecutor(max_workers=32) as pool:
            futures, n = [], 0
            while (due := started + n / rate) < started + duration:
                time.sleep(max(0.0, due - time.perf_counter()))
                futures.append(pool.submit(publish_and_watch, write_url, search_url, auth, place))
                n += 1
            results = [future.result() for future in futures]
        done = [r for r in results if "error" not in r]
        if not done:
            raise UserError(f"no listing was published and found: {results[:3]}")
        return {"written": len(done), "write_errors": [r["error"] for r in results if "error" in r][:5],
                "writes_per_s": round(len(done) / duration, 1),
                "write_ms": percentiles_ms([r["write_s"] for r in done]),
                "fresh_ms": percentiles_ms([r["fresh_s"] for r in done]),
                # 201 -> sending the search that found it: the catch-up delay without that
                # search's own latency
                "sent_ms": percentiles_ms([r["sent_s"] for r in done]),
                "fresh_max_ms": round(1000 * max((r["fresh_s"] for r in done), default=0.0), 1),
                # 1.0: the first search sent after each 201 already found it (the catch-up costs
                # less than one search round trip, which fresh_ms then mostly is)
                "found_by_first_search": round(sum(r["polls"] == 1 for r in done) / len(done), 3)}
    return during


def main(args: argparse.Namespace) -> dict:
    rng = np.random.default_rng(args.seed)
    load_before = psutil.getloadavg()
    OUT.mkdir(parents=True, exist_ok=True)
    index, texts, built = prepare(args, rng)
    shutil.rmtree(OUT / "state", ignore_errors=True)
    env = {f"{ENV_PREFIX}SEARCH_INDEX": str(index.resolve()), f"{ENV_PREFIX}DEFAULT_MODEL": SERVED,
           f"{ENV_PREFIX}STATE_DIR": str((OUT / "state").resolve()), **WRITE_ENV}
    stack = stack_on_free_ports(OUT / "serve", OUT / "model_store",
                                text_only_config(OUT / "config.properties", SERVED))
    with proxy_environment(env):
        ctl.start(stack, START_TIMEOUT_S)
    other = None
    try:
        search_url = stack.proxy_url
        if args.processes == 2:
            other, search_url = second_proxy(stack, env)
        searching(search_url, texts, args.searchers, 3.0)  # warm-up: connections, caches
        read_only = searching(search_url, texts, args.searchers, args.seconds)
        under_writes = searching(search_url, texts, args.searchers, args.seconds,
                                 writing(stack.proxy_url, search_url, built["place"], args.rate))
    finally:
        if other is not None:
            other.terminate()
            other.wait(30)
        ctl.stop(stack)
    report = {"listings": args.listings, "rate_per_s": args.rate, "searchers": args.searchers,
              "seconds": args.seconds, "processes": args.processes, "poll_ms": POLL_S * 1000,
              "runtime": built["runtime"], "read_only": read_only, "under_writes": under_writes,
              "load_average": {"before": [round(x, 2) for x in load_before],
                               "after": [round(x, 2) for x in psutil.getloadavg()]},
              "machine": f"{psutil.cpu_count()} CPUs"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    fresh, write = under_writes["fresh_ms"], under_writes["write_ms"]
    print(f"freshness ({args.processes} proxy process(es), {under_writes['writes_per_s']} "
          f"listings/s written, {args.searchers} searchers): 201 -> first hit p50 "
          f"{fresh['p50']:.0f} ms, p99 {fresh['p99']:.0f} ms (max {under_writes['fresh_max_ms']:.0f}; "
          f"{under_writes['found_by_first_search']:.0%} found by the first search after the 201); "
          f"201 itself p50 {write['p50']:.0f} ms, p99 {write['p99']:.0f} ms; search p50/p99 "
          f"{read_only['latency_ms']['p50']:.0f}/{read_only['latency_ms']['p99']:.0f} ms read-only, "
          f"{under_writes['latency_ms']['p50']:.0f}/{under_writes['latency_ms']['p99']:.0f} ms "
          f"under writes; load average {report['load_average']['before'][0]} before, "
          f"{report['load_average']['after'][0]} after -> {args.out}")
    return report


if __name__ == "__main__":
    run(main, get_args_parser())
