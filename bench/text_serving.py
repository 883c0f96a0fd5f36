"""``make bench``'s text layer: the text model in-process vs TorchServe vs the proxy, listings/s.

    python -m bench.run --layers text    # this layer alone: bench/out/results-text.{json,md}

The listings are :func:`bench.text.synthetic_listings` (a 5,000-word vocabulary with the demo
data's lengths, a few very long descriptions), written once as the JSON bodies ``POST
/predict/text`` takes; the same bodies go to every layer:

1. **raw** — the served listing handler over the unpacked ``text.mar``, in-process (JSON parse +
   clean + hash + EmbeddingBag + head + softmax + JSON), in as many processes as TorchServe has
   workers for ``text``: batch 1 and the configured ``batchSize`` (:mod:`bench.raw`);
2. **torchserve** — ``POST /predictions/text`` with the inference key, at each concurrency;
3. **proxy** — ``POST /predict/text`` through the FastAPI proxy, same concurrencies;
4. **ratios** — torchserve/raw and proxy/torchserve at the top concurrency, the proxy's added p50
   at the lowest (:func:`bench.report.ratios`, without the baseline, which serves images only).

The figures measure speed, not accuracy: the words are random.
"""

import json
from pathlib import Path

from common.catalogue import TEXT
from common.codec import MAX_DESCRIPTION_CHARS, MAX_TITLE_CHARS, ModelRequest, encode
from bench import raw
from bench.loadgen import Body
from bench.text import synthetic_listings

MODEL = "text"  # the served text model (config.properties' model of kind text)
LISTINGS = 256  # distinct bodies wrk rotates through
JSON = "application/json"


def listing_bodies(listings: list[tuple[str, str]], dest: Path) -> list[Body]:
    """One JSON body per listing in ``dest``, as the request codec writes it for a text model
    (:func:`common.codec.encode`; also the body ``POST /predict/text`` takes), each field cut to
    the handler's cap (a longer one would be a 400, not a measurement)."""
    dest.mkdir(parents=True, exist_ok=True)
    bodies = []
    for i, (title, description) in enumerate(listings):
        request = ModelRequest(title=title[:MAX_TITLE_CHARS],
                               description=description[:MAX_DESCRIPTION_CHARS])
        path = dest / f"listing-{i:04d}.json"
        path.write_text(json.dumps(encode(TEXT, request)["json"]), encoding="utf-8")
        bodies.append(Body(path, JSON))
    return bodies


def make_bodies(out: Path, count: int = LISTINGS) -> list[Body]:
    """The bench's listings (seed 1: words the model was not built on) as JSON bodies."""
    listings, _ = synthetic_listings(count, seed=1)
    return listing_bodies(listings, out / "listings")


def measure_raw(model_dir: Path, bodies: list[Body], settings: dict, threads: int,
                duration: float) -> dict:
    """Listings/s of the handler in-process at batch 1 and at the served ``batchSize``."""
    data = raw.read_images([b.path for b in bodies])
    workers, batch = settings["workers"], settings["batch_size"]
    print(f"text raw: {workers} process(es) x {threads} thread(s), batch 1 and {batch} ...",
          flush=True)
    return {
        "workers": workers, "torch_threads": threads, "batch_size": batch,
        "pipeline_batch1_ips": round(raw.throughput(model_dir, data, 1, threads, workers, duration,
                                                    kind="listing"), 2),
        "pipeline_batchN_ips": round(raw.throughput(model_dir, data, batch, threads, workers,
                                                    duration, kind="listing"), 2),
    }


def raw_line(figures: dict) -> str:
    return (f"text raw (in-process handler, {figures['workers']} x {figures['torch_threads']} "
            f"thread): batch 1 {figures['pipeline_batch1_ips']} listings/s, batch "
            f"{figures['batch_size']} {figures['pipeline_batchN_ips']} listings/s")
