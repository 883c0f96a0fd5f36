"""``make bench-text``: the text model's own speed on one core, in-process.

    python -m bench.text [--listings 10000] [--epochs 5] [--repeats 2]

1. **train** — featurise N listings and train the fastText-style model (the default 2^18 x 64
   table, Adagrad, batch 32) for ``--epochs`` epochs: seconds in all, listings/s;
2. **classify** — the served handler's work per listing (clean + hash + EmbeddingBag + head +
   softmax) at batch 1 and 16: listings/s.

Torch runs single-threaded (one TorchServe worker's setting). The listings are synthetic: words
drawn from a 5,000-word vocabulary with the demo data's lengths (titles ~8 words, descriptions
0-120 words, a few very long), so the figures measure speed, not accuracy. Each figure is repeated
``--repeats`` times; the spread is printed.
"""

import argparse
import json
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from aicore.models import build_model, model_args
from aicore.text import DEFAULT_BUCKETS, DEFAULT_CHAR_NGRAMS, MAX_TOKENS, collate_ids
from common.cli import positive_int, run

NUM_CLASSES = 13


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.text", description=__doc__.split("\n")[0])
    parser.add_argument("--listings", type=positive_int, default=10_000,
                        help="listings to train on (default: 10000)")
    parser.add_argument("--epochs", type=positive_int, default=5, help="epochs (default: 5)")
    parser.add_argument("--repeats", type=positive_int, default=2,
                        help="repetitions of every figure (default: 2)")
    return parser


def synthetic_listings(n: int, seed: int = 0) -> tuple[list[tuple[str, str]], list[int]]:
    rng = np.random.default_rng(seed)
    vocabulary = ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), int(k)))
                  for k in rng.integers(2, 11, size=5000)]
    listings, labels = [], []
    for _ in range(n):
        title = " ".join(rng.choice(vocabulary, int(rng.integers(3, 14))))
        words = int(rng.integers(0, 120)) if rng.random() > 0.03 else 2000
        listings.append((title.title(), " ".join(rng.choice(vocabulary, words)) + "."))
        labels.append(int(rng.integers(NUM_CLASSES)))
    return listings, labels


def new_model() -> torch.nn.Module:
    text = {"buckets": DEFAULT_BUCKETS, "char_ngrams": list(DEFAULT_CHAR_NGRAMS),
            "word_ngrams": 2, "max_tokens": MAX_TOKENS}
    return build_model(**model_args("text", NUM_CLASSES, text=text))


def train_seconds(listings: list[tuple[str, str]], labels: list[int], epochs: int) -> float:
    """Featurise and train from scratch; seconds in all."""
    started = time.perf_counter()
    model = new_model()
    features = [model.featurizer.encode(*listing) for listing in listings]
    optimizer = torch.optim.Adagrad(model.parameters(), lr=0.2)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(features), generator=generator).split(32):
            batch = collate_ids([features[i] for i in idx.tolist()])
            loss = F.cross_entropy(model(batch), torch.tensor([labels[i] for i in idx.tolist()]))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return time.perf_counter() - started


@torch.inference_mode()
def classify_per_second(listings: list[tuple[str, str]], batch_size: int) -> float:
    """Listings/s of clean + hash + forward + softmax, as the handler does per request."""
    model = new_model().eval()
    started = time.perf_counter()
    for i in range(0, len(listings), batch_size):
        chunk = listings[i:i + batch_size]
        batch = collate_ids([model.featurizer.encode(*listing) for listing in chunk])
        torch.softmax(model.head(model.encode(batch)), dim=1).tolist()
    return len(listings) / (time.perf_counter() - started)


def spread(values: list[float]) -> str:
    return f"{statistics.mean(values):.1f} (min {min(values):.1f}, max {max(values):.1f})"


def main(args: argparse.Namespace) -> dict:
    torch.set_num_threads(1)
    listings, labels = synthetic_listings(args.listings)
    train = [train_seconds(listings, labels, args.epochs) for _ in range(args.repeats)]
    fresh, _ = synthetic_listings(2000, seed=1)  # unseen words: the featuriser's cache is cold
    batch1 = [classify_per_second(fresh, 1) for _ in range(args.repeats)]
    batch16 = [classify_per_second(fresh, 16) for _ in range(args.repeats)]
    results = {"listings": args.listings, "epochs": args.epochs, "train_seconds": train,
               "train_listings_per_second": [args.listings * args.epochs / s for s in train],
               "classify_listings_per_second_batch1": batch1,
               "classify_listings_per_second_batch16": batch16}
    print(f"train {args.listings} listings x {args.epochs} epochs: {spread(train)} s "
          f"(target < 60 s)")
    print(f"classify, one core: batch 1 {spread(batch1)} listings/s, batch 16 {spread(batch16)} "
          "listings/s (target >= 1000)")
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    run(main, get_args_parser())
