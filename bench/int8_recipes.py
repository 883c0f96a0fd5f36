"""Which int8 recipe keeps an image model's answers? The accuracy gate's figures per recipe.

    python -m bench.int8_recipes --run runs/efficientnet_lite0 --calibration 64 256

For each calibration size and each recipe of :data:`RECIPES` (:class:`handler.int8.Int8Recipe`:
calibration method, convolutions left in fp32) it quantises the run's ONNX export as
``make archive RUNTIME=onnx-int8`` does and compares it with eager fp32 on the run's test split:
top-1 agreement and test accuracy (the gate: >= 99 % and within 1 point) and the forward pass's
images/s with one thread at the served batch of 4. Writes ``--out`` (JSON) and prints a table.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from aicore.models import load_trained
from aicore.runtime import INPUT_NAME
from common.cli import positive_int, run
from common.runs import read_run_config
from handler.int8 import DEFAULT_RECIPE, Int8Recipe, quantize_int8
from handler.runtimes import MAX_ACCURACY_DROP, MIN_AGREEMENT, _batches, export_onnx
from handler.split_images import read_split_images

RECIPES = {
    "default": DEFAULT_RECIPE,  # what make archive RUNTIME=onnx-int8 builds
    "all": Int8Recipe(),
    "percentile": Int8Recipe(method="Percentile"),
    "entropy": Int8Recipe(method="Entropy"),
    "fp32-stem-head": Int8Recipe(keep_fp32=("stem", "head")),
    "fp32-classifier": Int8Recipe(keep_fp32=("classifier",)),
    "fp32-stem-classifier": Int8Recipe(keep_fp32=("stem", "classifier")),
    "fp32-stem-head-percentile": Int8Recipe(method="Percentile", keep_fp32=("stem", "head")),
    "fp32-depthwise": Int8Recipe(keep_fp32=("depthwise",)),
    "pointwise-only": Int8Recipe(keep_fp32=("depthwise", "stem", "head")),
    "pointwise-only-percentile": Int8Recipe(method="Percentile", keep_fp32=("depthwise", "stem", "head")),
    "conv-only": Int8Recipe(op_types=("Conv",)),
    "conv-only-percentile": Int8Recipe(method="Percentile", op_types=("Conv",)),
    # diagnoses, not runtimes: which rounding, the activations' or the weights', loses answers
    "a16w8": Int8Recipe(activation_bits=16),
    "a8w16": Int8Recipe(weight_bits=16),
}
SPEED_BATCH = 4  # config.properties' batch size for the image models
SPEED_SECONDS = 5.0  # per recipe: long enough to average over a busy machine's bursts


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.int8_recipes",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, type=Path, help="a trained image run (required)")
    parser.add_argument("--data", type=Path, default=None,
                        help="its cleaned dataset (default: the run's config.json data)")
    parser.add_argument("--calibration", type=positive_int, nargs="+", default=[64],
                        help="training pictures to calibrate on, one pass per value (default: 64)")
    parser.add_argument("--recipes", nargs="+", choices=tuple(RECIPES), default=list(RECIPES),
                        help="recipes to measure (default: all)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/int8_recipes.json"),
                        help="JSON of the figures (default: bench/results/int8_recipes.json)")
    return parser


def top1(session, batches: list[torch.Tensor]) -> np.ndarray:
    return np.concatenate([session.run(None, {INPUT_NAME: b.numpy()})[0].argmax(1) for b in batches])


def images_per_second(session, image_size: int) -> float:
    batch = {INPUT_NAME: np.random.default_rng(0).random((SPEED_BATCH, 3, image_size, image_size),
                                                          dtype=np.float32)}
    session.run(None, batch)  # warm-up
    done, began = 0, time.perf_counter()
    while time.perf_counter() - began < SPEED_SECONDS:
        session.run(None, batch)
        done += SPEED_BATCH
    return done / (time.perf_counter() - began)


def session_of(path: Path):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1  # one thread, as served
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def main(args: argparse.Namespace) -> list[dict]:
    torch.set_num_threads(1)
    model, _, margs = load_trained(args.run)
    data = args.data or read_run_config(args.run).data
    size = margs["image_size"]
    paths, labels = read_split_images(args.run, data, "test")
    test, truth = _batches(paths, size), np.array(labels)
    with torch.inference_mode():
        eager = np.concatenate([model(b).argmax(1).numpy() for b in test])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        export_onnx(model, size, fp32)
        rows.append(measure("fp32", None, session_of(fp32), test, eager, truth, size))
        for count in args.calibration:
            calib_paths, _ = read_split_images(args.run, data, "train", limit=count)
            calibration = _batches(calib_paths, size)
            for name in args.recipes:
                out = Path(tmp) / f"{name}-{count}.onnx"
                quantize_int8(fp32, out, calibration, RECIPES[name])
                rows.append(measure(name, count, session_of(out), test, eager, truth, size))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"run": str(args.run), "eager_accuracy": float((eager == truth).mean()),
                                    "rows": rows}, indent=2) + "\n", encoding="utf-8")
    return rows


def measure(name: str, count: int | None, session, test: list[torch.Tensor], eager: np.ndarray,
            truth: np.ndarray, size: int) -> dict:
    """One recipe's gate figures and speed; printed as it is measured."""
    answers = top1(session, test)
    agreement, accuracy = float((answers == eager).mean()), float((answers == truth).mean())
    passed = agreement >= MIN_AGREEMENT and accuracy >= (eager == truth).mean() - MAX_ACCURACY_DROP
    row = {"recipe": name, "calibration_images": count, "agreement": round(agreement, 4),
           "accuracy": round(accuracy, 4), "eager_accuracy": round(float((eager == truth).mean()), 4),
           "passes_gate": bool(passed), "images_per_second": round(images_per_second(session, size), 1)}
    print(json.dumps(row), flush=True)
    return row


if __name__ == "__main__":
    run(main, get_args_parser())
