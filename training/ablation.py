"""Measure the training recipes: each variant x seed as a real run, then one table.

    python -m training.ablation --data data/devset/clean --out runs/ablation-devset --epochs 20
    python -m training.ablation --data data/demo/clean --out runs/ablation-demo --variants seed plain default

Every variant is ``--recipe`` plus changed options (:data:`VARIANTS`): the full default recipe,
the original (``seed``), a plain trainer, and the default with one choice taken back at a time.
Each run is ``python -m training.train`` in its own process, into ``OUT/<variant>-s<seed>``; a
run whose ``metrics.json`` exists is reused, so an interrupted ablation continues. The table
(mean test accuracy, the spread over seeds, best validation accuracy, the epoch it came from,
minutes per run) is printed as Markdown and written to ``OUT/results.json``.
"""

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from common.cli import UserError, positive_int, run

VARIANTS: dict[str, list[str]] = {
    "default": ["--recipe", "default"],
    "seed": ["--recipe", "seed"],
    "plain": ["--recipe", "plain"],
    "default, affine augmentation": ["--recipe", "default", "--augment", "affine"],
    "default, no label smoothing": ["--recipe", "default", "--label-smoothing", "0"],
    "default, constant lr (no warm-up/cosine)": ["--recipe", "default", "--schedule", "constant",
                                                 "--warmup-epochs", "0"],
    "default, no weight decay": ["--recipe", "default", "--weight-decay", "0"],
    "default, AdamW lr 1e-3 wd 0.05": ["--recipe", "default", "--optimizer", "adamw", "--lr",
                                       "0.001", "--weight-decay", "0.05", "--no-nesterov"],
    "default, no early stopping": ["--recipe", "default", "--patience", "0"],
}


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.ablation",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path, help="cleaned dataset (required)")
    parser.add_argument("--out", required=True, type=Path, help="folder of the runs (required)")
    parser.add_argument("--model", default="cnn", help="architecture (default: cnn)")
    parser.add_argument("--epochs", type=positive_int, default=20,
                        help="the same epoch budget for every run (default: 20)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1],
                        help="seeds of split, weights and order (default: 0 1)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), metavar="NAME",
                        help="variants to run, by the start of their name (default: all)")
    parser.add_argument("--train-args", default="",
                        help="more options for every run, e.g. '--workers 1' (default: none)")
    return parser


def main(args: argparse.Namespace) -> list[dict]:
    chosen = [name for name in VARIANTS if any(name == v or name.startswith(v + ",")
                                               for v in args.variants)]
    if not chosen:
        raise UserError(f"--variants {args.variants} match none of {list(VARIANTS)}")
    rows = []
    for name in chosen:
        runs = [train_once(args, name, seed) for seed in args.seeds]
        rows.append(summarise(name, runs))
        print(format_table(rows), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    return rows


def run_name(variant: str, seed: int) -> str:
    slug = "".join(c if c.isalnum() else "-" for c in variant.lower()).strip("-")
    return f"{'-'.join(filter(None, slug.split('-')))}-s{seed}"


def train_once(args: argparse.Namespace, variant: str, seed: int) -> dict:
    """The metrics of one run, training it unless it finished before."""
    out = args.out / run_name(variant, seed)
    if not (out / "metrics.json").is_file():
        if out.exists():  # an interrupted run: start it again rather than mix two
            subprocess.run(["rm", "-rf", str(out)], check=True)
        command = [sys.executable, "-m", "training.train", "--model", args.model, "--data",
                   str(args.data), "--out", str(out), "--epochs", str(args.epochs), "--seed",
                   str(seed), *VARIANTS[variant], *args.train_args.split()]
        print("$ " + " ".join(command), flush=True)
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return json.loads((out / "metrics.json").read_text())


def summarise(variant: str, runs: list[dict]) -> dict:
    test = [r["test_accuracy"] for r in runs]
    return {"variant": variant, "test_accuracy": test, "mean": statistics.mean(test),
            "spread": max(test) - min(test), "val_accuracy": [r["val_accuracy"] for r in runs],
            "best_epoch": [r["best_epoch"] for r in runs],
            "epochs_run": [len(r["history"]) for r in runs],
            "minutes": statistics.mean(r["wall_time_s"] for r in runs) / 60}


def format_table(rows: list[dict]) -> str:
    lines = ["| variant | test accuracy (mean) | per seed | best val | best epoch / run | "
             "min per run |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['mean']:.3f} | "
            f"{' / '.join(f'{a:.3f}' for a in r['test_accuracy'])} | "
            f"{' / '.join(f'{a:.3f}' for a in r['val_accuracy'])} | "
            f"{' / '.join(f'{b}/{e}' for b, e in zip(r['best_epoch'], r['epochs_run'], strict=True))}"
            f" | {r['minutes']:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    run(main, get_args_parser())
