"""``make bench-text``: the text model's own speed on one core, in-process.

    python -m bench.text [--listings 10000] [--epochs 5] [--repeats 2] [--out bench/out/text]

1. **train** — the real trainer, as a user runs it: the synthetic listings are written as an
   export's ``Products.csv``, cleaned by ``python -m training.prepare --products`` into a
   text-only dataset whose training split holds N listings, then
   ``python -m training.train --model text --epochs E --workers 0`` trains the fastText-style
   model (the default 2^18 x 64 table, Adagrad, batch 32). Reported: the training epochs' seconds
   (from the run's ``metrics.json`` history: the target, < 60 s for 10,000 x 5), the whole
   command's wall time (adds featurisation, validation, checkpoints, the test pass and the TF-IDF
   reference) and the reference's own seconds;
2. **classify** — the served handler's work per listing (clean + hash + EmbeddingBag + head +
   softmax) at batch 1 and 16: listings/s.

Torch runs single-threaded (one TorchServe worker's setting; ``OMP_NUM_THREADS=1`` for the
trainer). The listings are synthetic: words drawn from a 5,000-word vocabulary with the demo
data's lengths (titles ~8 words, descriptions 0-120 words, a few very long); a third of each
listing's words come from its class's own 300 words, so the model and the reference have something
to learn (their accuracy is printed as a sanity check, not as a result). Each figure is repeated
``--repeats`` times; the spread is printed.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from aicore.models import build_model, model_args
from aicore.text import DEFAULT_BUCKETS, DEFAULT_CHAR_NGRAMS, MAX_TOKENS, collate_ids
from common.cli import UserError, positive_int, run

NUM_CLASSES = 13
TRAIN_FRACTION = 0.7  # training.split: 70 / 15 / 15


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.text", description=__doc__.split("\n")[0])
    parser.add_argument("--listings", type=positive_int, default=10_000,
                        help="listings to train on (default: 10000)")
    parser.add_argument("--epochs", type=positive_int, default=5, help="epochs (default: 5)")
    parser.add_argument("--repeats", type=positive_int, default=2,
                        help="repetitions of every figure (default: 2)")
    parser.add_argument("--out", type=Path, default=Path("bench/out/text"),
                        help="working folder for the export, dataset and runs, emptied first "
                             "(default: bench/out/text)")
    return parser


def synthetic_listings(n: int, seed: int = 0) -> tuple[list[tuple[str, str]], list[int]]:
    rng = np.random.default_rng(seed)
    vocabulary = np.array(["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), int(k)))
                           for k in rng.integers(2, 11, size=5000)])
    listings, labels = [], []
    for _ in range(n):
        label = int(rng.integers(NUM_CLASSES))

        def words(k: int, label: int = label) -> str:
            picked = rng.integers(0, len(vocabulary), size=k)
            own = rng.random(k) < 1 / 3  # these come from the class's own 300 words
            picked[own] = label * 300 + rng.integers(0, 300, size=int(own.sum()))
            return " ".join(vocabulary[picked])

        title = words(int(rng.integers(3, 14)))
        body = words(int(rng.integers(0, 120)) if rng.random() > 0.03 else 2000)
        listings.append((title.title(), body + "."))
        labels.append(label)
    return listings, labels


def write_export(listings: list[tuple[str, str]], labels: list[int], path: Path) -> None:
    """The listings as an export's ``Products.csv`` (category "Class 0" .. "Class 12")."""
    pd.DataFrame({"id": [f"p{i}" for i in range(len(listings))],
                  "product_name": [title for title, _ in listings],
                  "category": [f"Class {label}" for label in labels],
                  "product_description": [body for _, body in listings],
                  "price": "£1", "location": "Bench"}).to_csv(path, index=False)


def train_run(data: Path, out: Path, epochs: int) -> dict:
    """``python -m training.train --model text`` on one core; its seconds and metrics."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "training.train", "--model", "text", "--data", str(data),
               "--out", str(out), "--epochs", str(epochs), "--workers", "0"]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise UserError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-2000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    trained = metrics["counts"]["train"]["total"]
    epoch_seconds = sum(trained / row["train_images_per_second"] for row in metrics["history"])
    return {"train_listings": trained, "epochs_seconds": epoch_seconds, "wall_seconds": wall,
            "tfidf_seconds": metrics["tfidf_logreg"]["seconds"],
            "test_accuracy": metrics["test_accuracy"],
            "tfidf_test_accuracy": metrics["tfidf_logreg"]["test_accuracy"]}


def train_bench(args: argparse.Namespace) -> list[dict]:
    """Export -> ``training.prepare --products`` -> ``--repeats`` training runs."""
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    listings, labels = synthetic_listings(round(args.listings / TRAIN_FRACTION))
    write_export(listings, labels, args.out / "Products.csv")
    subprocess.run([sys.executable, "-m", "training.prepare", "--products",
                    str(args.out / "Products.csv"), "--out", str(args.out / "clean")],
                   check=True, capture_output=True)
    return [train_run(args.out / "clean", args.out / f"run{r}", args.epochs)
            for r in range(args.repeats)]


def new_model() -> torch.nn.Module:
    text = {"buckets": DEFAULT_BUCKETS, "char_ngrams": list(DEFAULT_CHAR_NGRAMS),
            "word_ngrams": 2, "max_tokens": MAX_TOKENS}
    # idf=True: the weighted mean that training.train's text runs serve (weights all 1 here:
    # the same work per listing as fitted ones)
    return build_model(**model_args("text", NUM_CLASSES, text=text, idf=True))


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
    runs = train_bench(args)
    torch.set_num_threads(1)
    fresh, _ = synthetic_listings(2000, seed=1)  # unseen words: the featuriser's cache is cold
    batch1 = [classify_per_second(fresh, 1) for _ in range(args.repeats)]
    batch16 = [classify_per_second(fresh, 16) for _ in range(args.repeats)]
    epochs = [r["epochs_seconds"] for r in runs]
    trained = runs[0]["train_listings"]
    results = {"train_listings": trained, "epochs": args.epochs, "train_runs": runs,
               "train_seconds": epochs,
               "train_listings_per_second": [trained * args.epochs / s for s in epochs],
               "classify_listings_per_second_batch1": batch1,
               "classify_listings_per_second_batch16": batch16}
    print(f"train {trained} listings x {args.epochs} epochs (training.train, one core): "
          f"{spread(epochs)} s of epochs (target < 60 s); whole command "
          f"{spread([r['wall_seconds'] for r in runs])} s, of which TF-IDF reference "
          f"{spread([r['tfidf_seconds'] for r in runs])} s; test accuracy "
          f"{runs[0]['test_accuracy']:.3f} (TF-IDF {runs[0]['tfidf_test_accuracy']:.3f})")
    print(f"classify, one core: batch 1 {spread(batch1)} listings/s, batch 16 {spread(batch16)} "
          "listings/s (target >= 1000)")
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    run(main, get_args_parser())
