"""Does a head on the pretrained encoder classify listing text better than the trained text model?

    python -m bench.encoder_head --runs runs/textdev-s0 runs/textdev-s1

For each finished ``train --model text`` run (one per seed, so one split per seed) this embeds
every listing of the run's dataset with the default encoder (all-MiniLM-L6-v2,
:mod:`aicore.sentence`), fits scikit-learn's logistic regression on the run's training split,
picks C on its validation split, and prints its validation and test accuracy next to the run's
own (``metrics.json``: the fastText-style model and the TF-IDF + logistic regression reference
on the same split). The test split is only read for the final figure (docs/relevance.md).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from aicore.sentence import SentenceEncoder, default_folder, listing_text
from common.cli import run
from common.dataset_format import SPLIT_FILE, read_clean_dir
from search.listings import read_listings

C_GRID = (0.3, 1.0, 3.0, 10.0, 30.0)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.encoder_head",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, nargs="+", required=True,
                        help="finished text runs (train --model text), one per seed")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    return parser


def main(args: argparse.Namespace) -> list[dict]:
    import torch

    torch.set_num_threads(1)
    encoder = SentenceEncoder(default_folder())
    cache: dict[str, dict[str, np.ndarray]] = {}
    rows = []
    for run_dir in args.runs:
        config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
        data = str(Path(config["data"]).resolve())
        if data not in cache:
            cache[data] = _embed_dataset(encoder, Path(data))
        rows.append(_compare(run_dir, Path(data), cache[data]))
        print(json.dumps(rows[-1]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return rows


def _embed_dataset(encoder: SentenceEncoder, data: Path) -> dict[str, np.ndarray]:
    """Product id -> its unit vector (title + description, as search embeds a listing)."""
    started = time.perf_counter()
    listings, _ = read_listings(data)
    vectors = encoder.encode([listing_text(x.title, x.description) for x in listings])  # (N, 384)
    print(f"embedded {len(listings)} listings in {time.perf_counter() - started:.0f} s", flush=True)
    return {x.id: v for x, v in zip(listings, vectors, strict=True)}


def _compare(run_dir: Path, data: Path, vectors: dict[str, np.ndarray]) -> dict:
    from sklearn.linear_model import LogisticRegression

    split = json.loads((run_dir / SPLIT_FILE).read_text(encoding="utf-8"))
    manifest = read_clean_dir(data).manifest.set_index("image_id")
    parts = {name: _xy(manifest, split[name], vectors) for name in ("train", "val", "test")}
    best = None
    for c in C_GRID:  # chosen on validation only
        model = LogisticRegression(C=c, max_iter=3000).fit(*parts["train"])
        accuracy = model.score(*parts["val"])
        if best is None or accuracy > best[0]:
            best = (accuracy, c, model)
    val_accuracy, c, model = best
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    return {"run": str(run_dir), "seed": json.loads((run_dir / "config.json").read_text())["seed"],
            "train": len(parts["train"][1]), "test": len(parts["test"][1]),
            "minilm_logreg": {"C": c, "val_accuracy": round(val_accuracy, 4),
                              "test_accuracy": round(model.score(*parts["test"]), 4)},
            "text_model_test_accuracy": round(_run_accuracy(metrics), 4),
            "tfidf_logreg_test_accuracy": round(metrics["tfidf_logreg"]["test_accuracy"], 4)}


def _run_accuracy(metrics: dict) -> float:
    for key in ("test_accuracy", "accuracy"):
        if key in metrics:
            return float(metrics[key])
    return float(metrics["test"]["accuracy"])


def _xy(manifest, ids: list[str], vectors: dict[str, np.ndarray]) -> tuple[np.ndarray, list[str]]:
    rows = manifest.loc[ids]
    return np.stack([vectors[pid] for pid in rows["product_id"]]), list(rows["category"])


if __name__ == "__main__":
    run(main, get_args_parser())
