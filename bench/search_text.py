"""A text query through the proxy, embedding included, on a text index of N listings (default 10,000).

    python -m bench.search_text [--listings 10000] [--queries 500] [--model query|text]
                                [--threads 2] [--runtime auto] [--epochs 1] [--run RUN_DIR]

``--model query`` (the default): the index is built by the pretrained text encoder
(``search.build`` without ``--run``, ``--threads`` torch threads, timed twice: embedding every
listing, then again from the embedding cache) and TorchServe serves ``query.mar``
(``handler.query_archive``, ``--runtime``); the target is p99 <= 30 ms on an idle machine.
``--model text``: the trained text model as below (the earlier target, p99 <= 50 ms).
What runs, all of it the real thing:

1. a text-only dataset of N synthetic, demo-like listings (13 root categories, item nouns with
   adjectives, conditions and towns; descriptions that also mention other words) written as
   ``training.prepare --products`` writes one;
2. a text model trained on it by ``python -m training.train --model text`` (``--epochs``, default
   1: the latency does not depend on how well it is trained), or ``--run`` an existing text run;
3. ``python -m search.build`` (text index: exact FAISS below 20,000 listings) and ``text.mar``
   (``handler.archive``, eager, as ``make archive`` builds it);
4. TorchServe serving only ``text`` (the repository's settings for it) + the proxy on free
   ports; ``--queries`` sequential ``GET /search?q=...&k=10`` from one client after a warm-up --
   each embeds the query via TorchServe, runs dense + BM25 and fuses them. Latency p50/p99; then
   the same queries' embeddings straight from TorchServe, to tell the embedding's share.

Writes ``bench/out/search_text.json`` with the load average before and after: on a shared
machine the figures are only as quiet as it was.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import psutil

from aicore.categories import ROOT_CATEGORIES
from bench import query_stages
from bench.query_stages import request_stages
from common import server_timing
from common.atomic import atomic_write_text
from common.cli import UserError, positive_int, run
from common.codec import ModelRequest, encode
from common.dataset_format import PRODUCTS_FILE, write_clean_dir
from common.properties import derive_config, read_properties
from common.torchserve import ENV_PREFIX, INFERENCE_KEY, bearer, read_key_file
from handler.archive import build_archive
from search import build
from search.metrics import percentiles_ms
from serving import ctl
from serving.ready import http_session
from serving.stack import REPO_ROOT, Stack, stack_on_free_ports

OUT = Path("bench") / "out" / "search_text"
REPORT = Path("bench") / "out" / "search_text.json"
SERVED = "text"
ENV_SEARCH_INDEX = f"{ENV_PREFIX}SEARCH_INDEX"  # the proxy's Settings.search_index
ENV_DEFAULT_MODEL = f"{ENV_PREFIX}DEFAULT_MODEL"  # ... and default_model (one of the served)
P99_TARGETS_MS = {"query": 30.0, "text": 50.0}
WARMUP_QUERIES = 30
START_TIMEOUT_S = 300.0

# A few item nouns per root category (in ROOT_CATEGORIES order); words shared across categories
# ("desk", "lamp", "chair") keep lexical search from being trivially right.
NOUNS = (
    ("washing machine", "fridge", "kettle", "microwave", "hoover"),
    ("pram", "cot", "car seat", "high chair", "toys"),
    ("trainers", "jacket", "dress", "handbag", "boots"),
    ("laptop", "monitor", "keyboard", "printer", "tablet"),
    ("drill", "saw", "ladder", "toolbox", "sander"),
    ("perfume", "hair dryer", "straighteners", "shaver", "makeup"),
    ("sofa", "desk lamp", "dining table", "wardrobe", "garden chair"),
    ("guitar", "vinyl records", "books", "dvd box set", "keyboard piano"),
    ("office chair", "desk", "filing cabinet", "shredder", "whiteboard"),
    ("job lot", "tickets", "antique clock", "mirror", "storage boxes"),
    ("iphone", "samsung galaxy", "phone case", "charger", "landline phone"),
    ("bicycle", "tent", "golf clubs", "treadmill", "suitcase"),
    ("ps5", "xbox", "nintendo switch", "controller", "gaming chair"),
)
ADJECTIVES = ("barely used", "vintage", "brand new", "spare", "good condition", "unwanted gift",
              "boxed", "large", "small", "black", "white", "wooden")
CONDITIONS = ("collection only", "can deliver", "cash on collection", "offers welcome", "no offers",
              "quick sale")
TOWNS = (("Leeds", "West Yorkshire"), ("Hackney", "London"), ("Camden", "London"),
         ("Bristol", "Bristol"), ("Manchester", "Greater Manchester"), ("Glasgow", "Scotland"),
         ("Cardiff", "Wales"), ("Norwich", "Norfolk"))
FILLER = ("works", "perfectly", "great", "condition", "from", "smoke", "free", "home", "moving",
          "house", "must", "go", "used", "few", "times", "comes", "with", "original", "box",
          "hardly", "any", "marks", "selling", "as", "no", "longer", "needed", "pet")


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.search_text",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listings", type=positive_int, default=10_000,
                        help="listings in the index (default: 10000)")
    parser.add_argument("--queries", type=positive_int, default=500,
                        help="timed queries, one at a time (default: 500)")
    parser.add_argument("--model", choices=tuple(P99_TARGETS_MS), default="query",
                        help="query: the pretrained encoder (query.mar); text: a trained text run "
                             "(default: query)")
    parser.add_argument("--threads", type=positive_int, default=2,
                        help="torch threads of the encoder's index build (default: 2)")
    parser.add_argument("--runtime", default="auto", help="query.mar's runtime (default: auto)")
    parser.add_argument("--epochs", type=positive_int, default=1,
                        help="epochs of the text model trained on the listings (default: 1)")
    parser.add_argument("--run", type=Path, default=None, metavar="RUN_DIR",
                        help="use this text run instead of training one (default: train)")
    parser.add_argument("--seed", type=int, default=0, help="data and query seed (default: 0)")
    parser.add_argument("--reuse", action="store_true",
                        help="serve the index and archive an earlier run left in "
                             f"{OUT} instead of building them (default: build)")
    parser.add_argument("--out", type=Path, default=REPORT, help=f"JSON report (default: {REPORT})")
    return parser


def synthetic_products(n: int, rng: np.random.Generator) -> list[dict[str, str]]:
    """``n`` products.csv rows: title = adjective + noun + condition, a description around it."""
    rows = []
    for i in range(n):
        c = int(rng.integers(len(ROOT_CATEGORIES)))
        noun = str(rng.choice(NOUNS[c]))
        town, region = TOWNS[int(rng.integers(len(TOWNS)))]
        adjective, condition = str(rng.choice(ADJECTIVES)), str(rng.choice(CONDITIONS))
        filler = " ".join(rng.choice(FILLER, int(rng.integers(5, 40))))
        rows.append({
            "id": f"bench-{i:06d}", "product_name": f"{adjective.capitalize()} {noun} - {condition}",
            "category": f"{ROOT_CATEGORIES[c]} / Other", "root_category": ROOT_CATEGORIES[c],
            "product_description": f"{noun.capitalize()}, {adjective}. {filler}. "
                                   f"Collection from {town}.",
            "price": f"{float(rng.integers(1, 500)):.1f}", "location": f"{town}, {region}"})
    return rows


def write_dataset(out: Path, products: list[dict[str, str]]) -> Path:
    """A text-only cleaned dataset, as ``training.prepare --products`` writes one."""
    out.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(products[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(products)
    categories = sorted({p["root_category"] for p in products})
    info = {"image_size": 128, "source": "bench.search_text", "num_images": 0,
            "num_products": len(products), "categories": categories}
    rows = [(p["id"], p["id"], p["root_category"], "") for p in products]
    write_clean_dir(out, rows, info, {PRODUCTS_FILE: buffer.getvalue()})
    return out


def train_text_run(data: Path, out: Path, epochs: int) -> Path:
    """``python -m training.train --model text`` on ``data`` (the real trainer, its own process)."""
    command = [sys.executable, "-m", "training.train", "--model", "text", "--data", str(data),
               "--out", str(out), "--epochs", str(epochs), "--workers", "0"]
    print("$", " ".join(command), flush=True)
    if subprocess.run(command, cwd=REPO_ROOT, check=False).returncode != 0:
        raise UserError(f"training the text model failed: {' '.join(command)}")
    return out


def text_only_config(out: Path, served: str = SERVED) -> Path:
    """The repository's config.properties serving only ``served``, with its settings."""
    source = Stack.config if Stack.config.is_absolute() else REPO_ROOT / Stack.config
    snapshot = json.loads(read_properties(source)["model_snapshot"])
    snapshot["models"] = {served: snapshot["models"][served]}
    snapshot["modelCount"] = 1
    text = derive_config(source.read_text(encoding="utf-8"),
                         {"model_snapshot": json.dumps(snapshot)})
    atomic_write_text(out, text)
    return out


def queries(products: list[dict[str, str]], count: int, rng: np.random.Generator) -> list[str]:
    """Short shopper queries: an item noun, sometimes with an adjective or a town."""
    chosen = []
    for _ in range(count):
        product = products[int(rng.integers(len(products)))]
        noun = product["product_description"].split(",")[0].lower()
        extra = rng.random()
        if extra < 0.3:
            noun = f"{rng.choice(ADJECTIVES)} {noun}"
        elif extra < 0.5:
            noun = f"{noun} {product['location'].split(',')[0]}"
        chosen.append(noun)
    return chosen


def time_queries(url: str, texts: list[str], served: str = SERVED,
                 stages: list[dict[str, float]] | None = None) -> list[float]:
    """Seconds per ``GET /search?q=...&k=10``, one at a time; every answer must be a fused 200.
    ``stages`` gets each request's steps (:func:`bench.query_stages.request_stages`)."""
    seconds = []
    with http_session() as session:
        for text in texts:
            started = time.perf_counter()
            response = session.get(f"{url}/search", params={"q": text, "k": 10}, timeout=60)
            seconds.append(time.perf_counter() - started)
            if response.status_code != 200 or response.json().get("embedded_by") != served:
                raise UserError(f"GET /search?q={text!r} answered {response.status_code}: "
                                f"{response.text[:300]}")
            if stages is not None:
                header = response.headers.get(server_timing.HEADER, "")
                stages.append(request_stages(seconds[-1], header))
    return seconds


@contextmanager
def proxy_environment(values: dict[str, str]) -> Iterator[None]:
    """``values`` set in this process's environment while the stack starts (the proxy inherits
    its settings from it), then restored."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def time_embeddings(stack: Stack, texts: list[str], served: str = SERVED) -> list[float]:
    """Seconds per direct TorchServe call for a query's embedding (what the proxy sends), one at
    a time: the part of the proxy's latency that is the embedding."""
    seconds = []
    headers = bearer(read_key_file(stack.key_file)[INFERENCE_KEY])
    with http_session() as session:
        for text in texts:
            started = time.perf_counter()
            body = encode(served, ModelRequest(title=text, embedding=True))  # as the proxy sends it
            response = session.post(f"{stack.inference_url}/predictions/{served}", headers=headers,
                                    timeout=60, **body)
            seconds.append(time.perf_counter() - started)
            if response.status_code != 200 or "embedding" not in response.json():
                raise UserError(f"TorchServe answered {response.status_code} for {text!r}: "
                                f"{response.text[:300]}")
    return seconds


def build_text_index(data: Path, run_dir: Path, index: Path) -> dict:
    """A trained text run's index and text.mar; the build's seconds."""
    started = time.perf_counter()
    build.build(build.BuildConfig(data=data, run=run_dir, out=index, no_progress=True))
    build_s = time.perf_counter() - started
    build_archive(run_dir, SERVED, OUT / "model_store", runtime="eager")
    return {"run": str(run_dir), "index_build_s": round(build_s, 1)}


def build_query_index(data: Path, index: Path, threads: int, runtime: str, listings: int) -> dict:
    """The encoder's index, built twice (every listing embedded, then all from the cache), and
    query.mar; listings embedded per second each time."""
    from handler.query_archive import build_query_archive, gate_texts

    rates = {}
    for label in ("embedded", "cached"):
        started = time.perf_counter()
        build.main(build.get_args_parser().parse_args(
            ["--data", str(data), "--out", str(index), "--threads", str(threads), "--no-progress"]))
        seconds = time.perf_counter() - started
        rates[label] = {"seconds": round(seconds, 1), "listings_per_s": round(listings / seconds, 1)}
    _, record = build_query_archive(None, OUT / "model_store", runtime, gate_texts(data))
    return {"encoder": "all-MiniLM-L6-v2", "build_threads": threads, "index_build": rates,
            "runtime": record["runtime"], "accuracy_gate": record.get("accuracy_gate")}


def reused(index: Path, archive: Path) -> dict:
    """What ``--reuse`` serves: an earlier run's index and archive, which must exist."""
    for path in (index / "CURRENT", archive):
        if not path.is_file():
            raise UserError(f"--reuse: {path} is missing; run once without --reuse to build it")
    return {"reused": str(index)}


def main(args: argparse.Namespace) -> dict:
    rng = np.random.default_rng(args.seed)
    load_before = psutil.getloadavg()
    products = synthetic_products(args.listings, rng)
    OUT.mkdir(parents=True, exist_ok=True)
    data = write_dataset(OUT / "data", products)
    index, served = OUT / "index", args.model
    if args.reuse:
        built = reused(index, OUT / "model_store" / f"{served}.mar")
    elif served == "query":
        built = build_query_index(data, index, args.threads, args.runtime, args.listings)
    else:
        built = build_text_index(data, args.run or train_text_run(data, OUT / "run", args.epochs), index)
    stack = stack_on_free_ports(OUT / "serve", OUT / "model_store",
                                text_only_config(OUT / "config.properties", served))
    with proxy_environment({ENV_SEARCH_INDEX: str(index.resolve()), ENV_DEFAULT_MODEL: served}):
        ctl.start(stack, START_TIMEOUT_S)
    try:
        texts = queries(products, WARMUP_QUERIES + args.queries, rng)
        time_queries(stack.proxy_url, texts[:WARMUP_QUERIES], served)  # connections, caches, JIT
        stages: list[dict[str, float]] = []
        with query_stages.cpu_per_query(stack, args.queries) as cpu:
            seconds = time_queries(stack.proxy_url, texts[WARMUP_QUERIES:], served, stages)
        embedding = percentiles_ms(time_embeddings(stack, texts[WARMUP_QUERIES:], served))
    finally:
        ctl.stop(stack)
    encoder = (query_stages.encoder_in_process(OUT / "model_store", texts[WARMUP_QUERIES:])
               if served == "query" else None)
    breakdown = query_stages.summarise(stages)
    latency, target = percentiles_ms(seconds), P99_TARGETS_MS[served]
    report = {"listings": args.listings, "queries": len(seconds), "route": "GET /search?q=&k=10",
              "model": served, **built, "latency_ms": latency, "torchserve_embedding_ms": embedding,
              "stages_ms": breakdown, "encoder_in_process_ms": encoder, "cpu_ms_per_query": cpu,
              "target_p99_ms": target, "met": latency["p99"] <= target,
              "load_average": {"before": [round(x, 2) for x in load_before],
                               "after": [round(x, 2) for x in psutil.getloadavg()]},
              "machine": f"{psutil.cpu_count()} CPUs"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(f"text search through the proxy ({served}), {args.listings:,} listings, {len(seconds)} "
          f"queries (TorchServe embeds each): p50 {latency['p50']:.1f} ms, p99 {latency['p99']:.1f} "
          f"ms (target <= {target:g}) -> {'met' if report['met'] else 'MISSED'}; of which "
          f"TorchServe's embedding alone p50 {embedding['p50']:.1f} ms, p99 {embedding['p99']:.1f} "
          f"ms; load average {report['load_average']['before'][0]} before, "
          f"{report['load_average']['after'][0]} after; written to {args.out}")
    print(query_stages.format_breakdown(breakdown, cpu, embedding, encoder))
    if "index_build" in built:
        print(f"index build on {args.threads} threads: {built['index_build']}")
    return report


if __name__ == "__main__":
    run(main, get_args_parser())
