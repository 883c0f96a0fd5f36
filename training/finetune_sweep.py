"""Does fine-tuning beat the linear probe? Many settings x split seeds in CPU-minutes, not hours.

    python -m training.finetune_sweep --data data/devset/clean --freeze-blocks 5 --seeds 0 1 2 \\
        --setting lr=1e-4 --setting lr=1e-3 --setting lr=3e-4,mixup=0.4,epochs=30

A fine-tune of EfficientNet-Lite0 with ``--freeze-blocks K`` never changes the stem and the first K
block stages, so their output for every picture (plain and horizontally flipped: the ``flip``
augmentation) is computed once (``--cache``) and each run trains only the rest: stages K..6,
``conv_head`` and the head. The run is the ``finetune`` recipe of ``training.train`` (the head
starts as the linear probe, LP-FT; batch-norm statistics frozen; AdamW, warm-up + cosine, label
smoothing, weight decay on kernels only) through the trainer's own optimiser, schedule and epoch
loop (:func:`training.engine.train_one_epoch`); a ``--setting`` overrides recipe keys
(``lr=1e-3,epochs=10``). What it cannot do is what needs pictures: crops and other augmentations
than flips, and training the frozen stages; for those, :mod:`training.ablation` runs each variant
as a whole ``training.train`` run (tens of minutes each on a 2-core machine, where a setting x
3 seeds here takes about five).

For each setting and split seed it prints the probe's validation accuracy (the model before any
step), the validation accuracy after each epoch, and across seeds the mean, spread and minimum of
the last epoch's gain over the probe: a fixed number of epochs, so no epoch is picked on the
figures being compared. ``--test`` adds the last epoch's and the probe's test accuracy: for
reporting a setting chosen on validation, never for choosing one.
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from aicore.efficientnet import EfficientNetLite0
from common.cli import UserError, positive_int, run
from common.dataset_format import CleanDataset, read_clean_dir
from training.dataset import MarketplaceImageDataset
from training.effnet_weights import load_efficientnet_weights
from training.engine import evaluate, make_loader, seed_everything, train_one_epoch
from training.listing_data import preset
from training.probe import fit_probes, fold_into_linear
from training.recipes import RECIPES, make_optimizer, make_scheduler
from training.split import split_dataset

RECIPE = "finetune"
# what a --setting may change; augmentation is fixed to flips (the cache holds both sides)
SETTING_KEYS = ("lr", "weight_decay", "label_smoothing", "warmup_epochs", "epochs", "mixup",
                "optimizer", "momentum", "nesterov", "schedule")
BATCH_SIZE = 32  # training.train's default
SPLITS = ("train", "val", "test")


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.finetune_sweep",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path,
                        help="cleaned dataset directory (required)")
    parser.add_argument("--freeze-blocks", type=int, default=5, metavar="K",
                        help="stem + first K of the 7 block stages frozen and cached (default: 5)")
    parser.add_argument("--image-size", type=positive_int, default=None,
                        help="side the backbone sees (default: the dataset's image_size)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="split seeds, as training.train --seed (default: 0 1 2)")
    parser.add_argument("--setting", action="append", default=None, metavar="KEY=VALUE,...",
                        help=f"recipe keys to change, one run per setting and seed; keys: "
                             f"{', '.join(SETTING_KEYS)} (default: the recipe as it is)")
    parser.add_argument("--cache", type=Path, default=None, metavar="FILE.pt",
                        help="the frozen stages' activations: read if they match, else written "
                             "(default: none, computed each time)")
    parser.add_argument("--test", action="store_true",
                        help="also report test accuracy (of a setting already chosen on validation)")
    parser.add_argument("--out", type=Path, default=None, help="write every result as JSON")
    return parser


def parse_setting(text: str) -> dict:
    """``"lr=1e-3,epochs=10"`` -> ``{"lr": 0.001, "epochs": 10}``, typed like the recipe's value."""
    setting = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or key not in SETTING_KEYS:
            raise UserError(f"--setting {text!r}: {item!r} is not KEY=VALUE with KEY one of "
                           f"{', '.join(SETTING_KEYS)}")
        kind = type(RECIPES[RECIPE][key])
        try:
            setting[key] = (value.lower() in ("1", "true", "yes")) if kind is bool else kind(value)
        except ValueError:
            raise UserError(f"--setting {text!r}: {key}={value!r} is not a valid {kind.__name__}") from None
    return setting


class Frozen(nn.Module):
    """What ``--freeze-blocks K`` keeps: ImageNet-normalised pixels -> stage K's input."""

    def __init__(self, model: EfficientNetLite0, blocks: int) -> None:
        super().__init__()
        self.model = model
        self.layers = nn.Sequential(*model.early_layers(blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, S, S) -> (B, C_K, S', S')
        return self.layers(self.model.to_tf_input(x))


class Trained(nn.Module):
    """The rest of the network: stage K's input -> class logits, as ``model.forward`` computes it.

    Its parameters are the model's own (shared), so what it learns is the model's.
    """

    def __init__(self, model: EfficientNetLite0, blocks: int) -> None:
        super().__init__()
        net = model.net
        self.model = model
        self.layers = nn.Sequential(*net.blocks[blocks:], net.conv_head, net.bn2)

    def encode(self, a: torch.Tensor) -> torch.Tensor:  # (B, C_K, S', S') -> (B, 1280)
        return self.model.net.forward_head(self.layers(a), pre_logits=True)

    def forward(self, a: torch.Tensor) -> torch.Tensor:  # (B, C_K, S', S') -> (B, num_classes)
        return self.model.head(self.encode(a))


class Activations(Dataset):
    """Cached activations ``(N, 2, C, H, W)`` (plain, flipped) with labels; ``flip`` draws a side
    per sample from torch's seeded generator, like ``RandomHorizontalFlip(0.5)``."""

    def __init__(self, acts: torch.Tensor, labels: torch.Tensor, flip: bool) -> None:
        self.acts, self.labels, self.flip = acts, labels, flip

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        side = int(torch.randint(2, ())) if self.flip else 0
        return self.acts[i, side], int(self.labels[i])


@torch.inference_mode()
def frozen_activations(data: CleanDataset, blocks: int, size: int, cache: Path | None
                       ) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """Image ids, ``(N, 2, C, H, W)`` activations of the plain and flipped picture, labels."""
    ids = [str(i) for i in data.manifest["image_id"]]
    key = {"ids": ids, "blocks": blocks, "image_size": size}
    if cache is not None and cache.is_file():
        saved = torch.load(cache, weights_only=True)
        if {k: saved.get(k) for k in key} == key:
            return ids, saved["acts"], saved["labels"]
    model = EfficientNetLite0(len(data.class_names))
    load_efficientnet_weights(model, True)
    frozen = Frozen(model.eval(), blocks)
    acts, labels = [], []
    for images, y in make_loader(MarketplaceImageDataset(data, ids, preset(size, None)), 64, 0,
                                 torch.device("cpu")):
        acts.append(torch.stack([frozen(images), frozen(images.flip(3))], dim=1))
        labels.append(y)
    acts, labels = torch.cat(acts), torch.cat(labels)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save({**key, "acts": acts, "labels": labels}, cache)
    return ids, acts, labels


def fine_tune(data: CleanDataset, acts: torch.Tensor, labels: torch.Tensor,
              rows: dict[str, torch.Tensor], config: dict, blocks: int, seed: int,
              test: bool) -> dict:
    """One LP-FT run on one split: the probe folded into the head, then ``config["epochs"]``
    epochs of the trained stages. Returns the probe's and each epoch's validation accuracy."""
    seed_everything(seed)
    model = EfficientNetLite0(len(data.class_names))
    load_efficientnet_weights(model, True)
    model.requires_grad_(False)  # the stem and the first `blocks` stages: in the cache
    trained = Trained(model, blocks)
    trained.layers.requires_grad_(True)
    model.net.classifier.requires_grad_(True)
    loaders = {name: make_loader(Activations(acts[rows[name]], labels[rows[name]], False),
                                 256, 0, torch.device("cpu")) for name in SPLITS}

    def accuracy(name: str) -> float:
        return round(evaluate(trained, loaders[name], torch.device("cpu"))["accuracy"], 4)

    with torch.inference_mode():
        trained.eval()
        feats = {name: (trained.encode(acts[rows[name], 0]).numpy(), labels[rows[name]].numpy())
                 for name in ("train", "val")}
    scores = fit_probes(feats["train"], feats["val"])
    best_c = max(scores, key=lambda c: scores[c][0])
    fold_into_linear(scores[best_c][1], model.net.classifier)
    result = {"seed": seed, "C": best_c, "probe_val": accuracy("val"), "val": []}
    if test:
        result["probe_test"] = accuracy("test")
    generator = torch.Generator().manual_seed(seed)
    train = make_loader(Activations(acts[rows["train"]], labels[rows["train"]], True), BATCH_SIZE,
                        0, torch.device("cpu"), generator)
    optimizer = make_optimizer(trained, config)
    scheduler = make_scheduler(optimizer, config, len(train))
    criterion = nn.CrossEntropyLoss(label_smoothing=config["label_smoothing"])
    began = time.perf_counter()
    for epoch in range(1, config["epochs"] + 1):
        fit = train_one_epoch(trained, criterion, optimizer, scheduler, train, torch.device("cpu"),
                              f"seed {seed} epoch {epoch}", frozen_bn=config["frozen_bn"],
                              mixup=config["mixup"])
        result["val"].append(accuracy("val"))
    result |= {"train_accuracy": round(fit["accuracy"], 4), "last_val": result["val"][-1],
               "gain": round(result["val"][-1] - result["probe_val"], 4),
               "seconds": round(time.perf_counter() - began, 1)}
    if test:
        result["last_test"] = accuracy("test")
        result["test_gain"] = round(result["last_test"] - result["probe_test"], 4)
    return result


def summarise(runs: list[dict], key: str) -> dict:
    gains = [r[key] for r in runs]
    return {"mean": round(statistics.fmean(gains), 4), "min": min(gains),
            "sd": round(statistics.stdev(gains), 4) if len(gains) > 1 else 0.0}


def main(args: argparse.Namespace) -> list[dict]:
    settings = [parse_setting(text) for text in (args.setting or [""])]
    data = read_clean_dir(args.data)
    size = args.image_size or data.image_size
    if not 0 <= args.freeze_blocks <= 7:
        raise UserError(f"--freeze-blocks must be 0..7 (EfficientNet-Lite0 has 7 block stages), "
                       f"got {args.freeze_blocks}")
    began = time.perf_counter()
    ids, acts, labels = frozen_activations(data, args.freeze_blocks, size, args.cache)
    print(f"frozen activations {tuple(acts.shape)} in {time.perf_counter() - began:.0f} s",
          flush=True)
    position = {image_id: n for n, image_id in enumerate(ids)}
    results = []
    for text, setting in zip(args.setting or [""], settings, strict=True):
        config = {**RECIPES[RECIPE], **setting}
        runs = []
        for seed in args.seeds:
            split = split_dataset(data.manifest, seed, data.class_names)
            rows = {name: torch.tensor([position[i] for i in split[name]]) for name in SPLITS}
            runs.append(fine_tune(data, acts, labels, rows, config, args.freeze_blocks, seed,
                                  args.test))
            print(json.dumps({"setting": text, **runs[-1]}), flush=True)
        summary = {"setting": text or "(recipe)", "freeze_blocks": args.freeze_blocks,
                   "image_size": size, "val_gain": summarise(runs, "gain"), "runs": runs}
        if args.test:
            summary["test_gain"] = summarise(runs, "test_gain")
        results.append(summary)
    print_table(results)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))
    return results


def print_table(results: list[dict]) -> None:
    print("\n| setting | seed | probe val | val by epoch | last val | gain |")
    print("|---|---|---|---|---|---|")
    for summary in results:
        for r in summary["runs"]:
            epochs = ", ".join(f"{v:.3f}" for v in r["val"])
            print(f"| {summary['setting']} | {r['seed']} | {r['probe_val']:.3f} | {epochs} | "
                  f"{r['last_val']:.3f} | {r['gain']:+.3f} |")
        g = summary["val_gain"]
        print(f"| {summary['setting']} | mean | | | | {g['mean']:+.3f} (sd {g['sd']:.3f}, "
              f"min {g['min']:+.3f}) |")


if __name__ == "__main__":
    run(main, get_args_parser())
