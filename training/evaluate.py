"""Re-compute a trained run's test metrics from its ``model.pt`` on its saved test split.

    python -m training.evaluate --run runs/cnn --data data/demo/clean

Loads the model the way serving does (:func:`aicore.models.load_trained`), evaluates it on the
test image ids recorded in ``RUN/split.json`` with the evaluation preset, prints a per-class
report and writes the metrics to ``RUN/eval_metrics.json`` (or ``--out``).
"""

import argparse
import json
from pathlib import Path

import torch
from torch import nn

from aicore.models import load_trained
from common.atomic import atomic_write_text
from common.cli import UserError, positive_int, run
from common.dataset_format import SPLIT_FILE, read_clean_dir
from training.listing_data import build_dataset
from training.engine import DEFAULT_WORKERS, evaluate, make_loader, resolve_device
from training.report import compute_metrics, format_report
from training.split import SPLITS, load_split

EVAL_METRICS_FILE = "eval_metrics.json"


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.evaluate", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, type=Path,
                        help="trained run directory written by training.train (required)")
    parser.add_argument("--data", required=True, type=Path,
                        help="the cleaned dataset directory the run was trained on (required)")
    parser.add_argument("--split", choices=SPLITS, default="test",
                        help="which of the run's splits to evaluate (default: test)")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"where to write the metrics JSON (default: RUN/{EVAL_METRICS_FILE})")
    parser.add_argument("--batch-size", type=positive_int, default=64,
                        help="evaluation batch size (default: 64)")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS,
                        help=f"DataLoader worker processes (default: {DEFAULT_WORKERS})")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto uses CUDA when available, else the CPU (default: auto)")
    return parser


def main(args: argparse.Namespace) -> dict:
    """Evaluate ``args.run`` on its saved split; print and write the metrics, and return them."""
    device = resolve_device(args.device)
    model, class_names, margs = load_run(args.run, device)
    data = read_clean_dir(args.data)
    if data.class_names != class_names:
        raise UserError(f"{args.data} has classes {data.class_names}, but {args.run} was trained "
                       f"on {class_names}; evaluate with the run's dataset")
    ids = load_split(args.run / SPLIT_FILE)[args.split]
    if not ids:
        raise UserError(f"{args.run / SPLIT_FILE} has no {args.split} images")
    dataset = build_dataset(data, ids, model, margs, augment=None)
    result = evaluate(model, make_loader(dataset, args.batch_size, args.workers, device), device)
    metrics = compute_metrics(result["y_true"], result["y_pred"], class_names)
    metrics.update(split=args.split, loss=result["loss"], run=str(args.run), arch=margs["arch"])
    out = args.out or args.run / EVAL_METRICS_FILE
    atomic_write_text(out, json.dumps(metrics, indent=2) + "\n")
    print(format_report(metrics, f"{args.run} ({margs['arch']}), {args.split} split"))
    print(f"metrics written to {out}")
    return metrics


def load_run(run_dir: Path, device: torch.device) -> tuple[nn.Module, list[str], dict]:
    """``load_trained`` with its errors turned into one-line CLI errors."""
    if not (run_dir / SPLIT_FILE).is_file():
        raise UserError(f"{run_dir} is not a training run: {SPLIT_FILE} is missing (expected the "
                       "--out directory of python -m training.train)")
    try:
        return load_trained(run_dir, device)
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(str(exc)) from None


if __name__ == "__main__":
    run(main, get_args_parser())
