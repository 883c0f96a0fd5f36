"""Training recipes: named sets of optimiser, schedule, loss and augmentation settings.

``--recipe NAME`` fills every recipe option the command line leaves unset, so one flag gives a
known-good set and any single option can still be changed (which is how the ablation table in
docs/training.md was measured). The resolved values go into ``config.json``.

- ``default``: the modern recipe, tuned on real pictures (``make devset``; figures in docs/training.md):
  AdamW (lr 1e-3, decoupled weight decay 0.05, not on biases), label smoothing 0.1, linear
  warm-up (2 epochs) then cosine decay per step, RandomResizedCrop + flip, early stopping on
  validation accuracy (patience 10) and the best-validation epoch as ``model.pt``. On the real
  development set SGD (even with Nesterov momentum and the same schedule) left the CNN, which has
  no batch norm, near chance for its first epochs; AdamW's per-weight steps did not.
- ``seed``: the original recipe, exactly: SGD lr 0.08 without momentum, StepLR (x0.5 every 3
  epochs), flip + slight affine warp, plain cross-entropy, no early stopping.
- ``finetune``: an ImageNet backbone's (``--pretrained``): LP-FT, the head started from a linear
  probe of the pretrained features (``--head-init probe``), then everything at AdamW lr 1e-4 with
  the batch norms' running statistics kept (``--frozen-bn``), strong augmentation
  (RandomResizedCrop + flip + TrivialAugmentWide) over 30 epochs without early stopping, WiSE-FT
  at the end; measured in docs/transfer-learning.md.
- ``plain``: the baseline a practitioner writes in 60 lines: SGD lr 0.01 momentum 0.9, constant
  learning rate, random flip only.

The learning rate is a pure function of the optimiser step (:func:`lr_factor`), so a resumed run
(or one under ``torchrun``) rebuilds the schedule at its step instead of trusting stored state.
"""

import argparse
import math
from collections.abc import Callable

import torch
from torch import nn

from aicore.presets import AUGMENTATIONS
from common.cli import UserError, non_negative_float, positive_int
from training.text_runs import TEXT_ARCHS, text_optimizer, text_recipe

# Fine-tuning an ImageNet backbone (EfficientNet-Lite0 --pretrained), chosen on the real-picture
# dev set's validation split (docs/transfer-learning.md has the measurements).
FINETUNE = {
    # LP-FT: the head starts as the logistic-regression probe of the ImageNet features, then the
    # whole network fine-tunes at one low learning rate with batch-norm statistics kept; strong
    # augmentation over a long schedule (its crops cost accuracy in the first epochs, so no early
    # stop); docs/transfer-learning.md has the measurements against the 6-epoch crop schedule
    "optimizer": "adamw", "lr": 0.0001, "momentum": 0.9, "nesterov": False,
    "weight_decay": 0.05, "label_smoothing": 0.1, "schedule": "cosine",
    "warmup_epochs": 1, "step_size": 3, "gamma": 0.5, "augment": "strong", "patience": 0,
    "backbone_lr_scale": 1.0, "head_init": "probe", "frozen_bn": True, "wise_ft": True, "epochs": 30,
    "freeze_blocks": 0, "mixup": 0.0,
}
# The recipe --pretrained gives an architecture when --recipe is not named.
PRETRAINED_RECIPE = {"efficientnet_lite0": "finetune"}
RECIPES: dict[str, dict] = {
    "default": {  # momentum/nesterov/step_size/gamma apply only if --optimizer/--schedule change
        "optimizer": "adamw", "lr": 0.001, "momentum": 0.9, "nesterov": False,
        "weight_decay": 0.05, "label_smoothing": 0.1, "schedule": "cosine",
        "warmup_epochs": 2, "step_size": 3, "gamma": 0.5, "augment": "crop", "patience": 10,
        "backbone_lr_scale": 1.0, "head_init": "new", "frozen_bn": False, "wise_ft": False, "epochs": 10,
        "freeze_blocks": 0, "mixup": 0.0,
    },
    "finetune": FINETUNE,
    "seed": {
        "optimizer": "sgd", "lr": 0.08, "momentum": 0.0, "nesterov": False,
        "weight_decay": 0.0, "label_smoothing": 0.0, "schedule": "step",
        "warmup_epochs": 0, "step_size": 3, "gamma": 0.5, "augment": "affine", "patience": 0,
        "backbone_lr_scale": 1.0, "head_init": "new", "frozen_bn": False, "wise_ft": False, "epochs": 10,
        "freeze_blocks": 0, "mixup": 0.0,
    },
    "plain": {
        "optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "nesterov": False,
        "weight_decay": 0.0, "label_smoothing": 0.0, "schedule": "constant",
        "warmup_epochs": 0, "step_size": 3, "gamma": 0.5, "augment": "flip", "patience": 0,
        "backbone_lr_scale": 1.0, "head_init": "new", "frozen_bn": False, "wise_ft": False, "epochs": 10,
        "freeze_blocks": 0, "mixup": 0.0,
    },
}
RECIPE_OPTIONS = tuple(RECIPES["default"])
OPTIMIZERS = ("sgd", "adamw", "adagrad")
SCHEDULES = ("cosine", "step", "constant")
HEAD_INITS = ("new", "probe")
# The first warm-up step starts at this fraction of the peak learning rate, not at 0 (a step of
# size 0 would be wasted).
WARMUP_START = 0.1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--recipe`` and the options it sets; each left unset takes the recipe's value."""
    group = parser.add_argument_group(
        "recipe", "--recipe sets all of these; any one given on the command line wins")
    group.add_argument("--recipe", choices=tuple(RECIPES), default=None,
                       help="default: the modern recipe tuned on real pictures; finetune: an "
                            "ImageNet backbone's (LP-FT: head from a linear probe, lr 1e-4, "
                            "frozen batch-norm statistics, strong augmentation, 30 epochs, WiSE-FT); "
                            "seed: the original (SGD "
                            "lr 0.08, StepLR 3 x 0.5, no momentum); plain: SGD momentum 0.9 + flip "
                            "(default: finetune for efficientnet_lite0 --pretrained, else default)")
    group.add_argument("--optimizer", choices=OPTIMIZERS, default=None,
                       help="(default: the recipe's)")
    group.add_argument("--lr", type=non_negative_float, default=None,
                       help="peak learning rate (default: the recipe's)")
    group.add_argument("--momentum", type=non_negative_float, default=None,
                       help="SGD momentum (default: the recipe's)")
    group.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=None,
                       help="Nesterov momentum for SGD (default: the recipe's)")
    group.add_argument("--weight-decay", type=non_negative_float, default=None,
                       help="decoupled for AdamW, L2 for SGD; never on biases and norm "
                            "layers (default: the recipe's)")
    group.add_argument("--label-smoothing", type=non_negative_float, default=None,
                       help="of the training loss (default: the recipe's)")
    group.add_argument("--schedule", choices=SCHEDULES, default=None,
                       help="learning rate after the warm-up, updated every step: cosine to 0 "
                            "at --epochs, step (x --gamma every --step-size epochs) or "
                            "constant (default: the recipe's)")
    group.add_argument("--warmup-epochs", type=int, default=None,
                       help="linear warm-up from 0.1 x --lr (default: the recipe's)")
    group.add_argument("--step-size", type=positive_int, default=None,
                       help="epochs between decays of --schedule step (default: the recipe's)")
    group.add_argument("--gamma", type=non_negative_float, default=None,
                       help="decay factor of --schedule step (default: the recipe's)")
    group.add_argument("--augment", choices=AUGMENTATIONS, default=None,
                       help="training augmentation: flip; affine (flip + slight warp); crop "
                            "(RandomResizedCrop + flip); strong (crop + TrivialAugment) "
                            "(default: the recipe's)")
    group.add_argument("--backbone-lr-scale", type=non_negative_float, default=None,
                       help="the backbone (all but the classification head) trains at this times "
                            "--lr; 0 freezes nothing but keeps it still (default: the recipe's)")
    group.add_argument("--head-init", choices=HEAD_INITS, default=None,
                       help="the classification head's start: new (the architecture's own init) "
                            "or probe (a logistic regression fitted on the pretrained features of "
                            "the training split, C chosen on validation: linear probing, then "
                            "fine-tuning; needs --pretrained) (default: the recipe's)")
    group.add_argument("--frozen-bn", action=argparse.BooleanOptionalAction, default=None,
                       help="keep every batch norm's running mean/variance at its pretrained "
                            "values while training (its scale and shift still train): batches "
                            "of 32 estimate them worse than ImageNet did (default: the recipe's)")
    group.add_argument("--wise-ft", action=argparse.BooleanOptionalAction, default=None,
                       help="after training, average the best epoch's weights with the starting "
                            "ones (WiSE-FT), the fine-tune's weight in {0, 0.25, 0.5, 0.75} chosen "
                            "on validation, kept only if better there; needs --pretrained "
                            "(default: the recipe's)")
    group.add_argument("--freeze-blocks", type=int, default=None, metavar="N",
                       help="efficientnet_lite0 --pretrained: the stem and the first N of the 7 "
                            "block stages keep their ImageNet weights; only the later stages, "
                            "conv_head and the head train (default: the recipe's)")
    group.add_argument("--mixup", type=non_negative_float, default=None, metavar="ALPHA",
                       help="image models: blend each training picture with another of its batch "
                            "(mixup, weight ~ Beta(ALPHA, ALPHA)) and their labels' losses; 0 "
                            "is off (default: the recipe's)")
    group.add_argument("--patience", type=int, default=None,
                       help="stop after this many epochs without a better validation accuracy; "
                            "0 never stops early (default: the recipe's)")


def resolve(config: dict) -> dict:
    """``config`` with each recipe option left at ``None`` taken from ``config["recipe"]``.

    A config written before recipes existed (no ``recipe`` key) was trained with ``seed``; one
    whose ``recipe`` is ``None`` (not named) gets :data:`PRETRAINED_RECIPE`'s recipe for a
    ``--pretrained`` model, else ``default``. The
    text and multimodal models keep the recipe's augmentation and early stopping but take their
    optimiser from :func:`training.text_runs.text_recipe` (Adagrad for sparse n-gram features).
    """
    config = dict(config)
    if "recipe" in config and config["recipe"] is None:  # not named: pick by model
        pretrained_recipe = PRETRAINED_RECIPE.get(config.get("model"), "default")
        config["recipe"] = pretrained_recipe if config.get("pretrained") else "default"
    recipe = dict(RECIPES[config.setdefault("recipe", "seed")])
    if config.get("model") in TEXT_ARCHS:
        recipe.update(text_recipe(config["model"]))
    for key, value in recipe.items():
        if config.get(key) is None:
            config[key] = value
    return config


def check(config: dict) -> str | None:
    """A message for a combination that cannot work, else ``None``."""
    if config["warmup_epochs"] < 0 or config["patience"] < 0:
        return "--warmup-epochs and --patience must be 0 or more"
    if config["nesterov"] and (config["optimizer"] != "sgd" or config["momentum"] <= 0):
        return "--nesterov needs --optimizer sgd and a --momentum above 0"
    if config["augment"] not in AUGMENTATIONS:
        return f"--augment must be one of {AUGMENTATIONS}, got {config['augment']}"
    if config["head_init"] == "probe" and not config.get("pretrained"):
        return "--head-init probe needs --pretrained: a probe of random features teaches nothing"
    if config["wise_ft"] and not config.get("pretrained"):
        return "--wise-ft needs --pretrained: it averages with the pretrained starting weights"
    if config["freeze_blocks"] and not config.get("pretrained"):
        return "--freeze-blocks needs --pretrained: frozen random stages cannot learn features"
    if config["freeze_blocks"] < 0:
        return f"--freeze-blocks must be 0 or more, got {config['freeze_blocks']}"
    if config["mixup"] and config.get("model") in TEXT_ARCHS:
        return f"--mixup blends pictures: --model {config['model']} has text input; leave it at 0"
    if not 0 <= config["label_smoothing"] < 1:
        return f"--label-smoothing must be in [0, 1), got {config['label_smoothing']}"
    return None


def make_optimizer(model: nn.Module, config: dict) -> torch.optim.Optimizer:
    """SGD or AdamW over the trainable parameters.

    Weight decay applies to weight matrices and kernels only: decaying biases and norm scales
    (1-D tensors) pulls them towards 0 for no regularising benefit (as in torchvision's
    ``--norm-weight-decay 0`` and timm). With weight decay 0 there is one group, as before. With
    ``backbone_lr_scale`` below 1 the backbone's groups peak at that fraction of ``lr``: ImageNet
    features need nudging, the new head needs learning.
    """
    if config["optimizer"] == "adagrad":
        return text_optimizer(model, config)
    groups = []
    for params, scale in _backbone_and_head(model, config.get("backbone_lr_scale", 1.0)):
        params = [p for p in params if p.requires_grad]
        wd, lr = config["weight_decay"], config["lr"] * scale
        split = [(params, wd)] if wd == 0 else [([p for p in params if p.ndim > 1], wd),
                                                 ([p for p in params if p.ndim <= 1], 0.0)]
        groups += [{"params": ps, "weight_decay": w, "lr": lr, "peak_lr": lr} for ps, w in split if ps]
    if config["optimizer"] == "adamw":
        return torch.optim.AdamW(groups, lr=config["lr"])
    return torch.optim.SGD(groups, lr=config["lr"], momentum=config["momentum"],
                           nesterov=config["nesterov"])


def _backbone_and_head(model: nn.Module, scale: float) -> list[tuple[list, float]]:
    """``[(parameters, lr scale)]``: all at 1, or the backbone at ``scale`` and the head at 1."""
    if scale == 1.0:
        return [(list(model.parameters()), 1.0)]
    prefix = getattr(model, "head_prefix", None)  # the image architectures name their head
    if prefix is None:
        raise UserError(f"--backbone-lr-scale {scale}: {type(model).__name__} has no separate "
                        "head; leave it at 1")
    named = list(model.named_parameters())
    return [([p for n, p in named if not n.startswith(prefix)], scale),
            ([p for n, p in named if n.startswith(prefix)], 1.0)]


def lr_factor(config: dict, steps_per_epoch: int) -> Callable[[int], float]:
    """step -> multiplier of the peak learning rate, for ``config["epochs"]`` epochs."""
    total = max(1, config["epochs"] * steps_per_epoch)
    warmup = min(config["warmup_epochs"] * steps_per_epoch, total - 1)
    schedule = config["schedule"]

    def factor(step: int) -> float:
        if step < warmup:  # linear from WARMUP_START to 1
            return WARMUP_START + (1 - WARMUP_START) * step / warmup
        if schedule == "constant":
            return 1.0
        if schedule == "step":  # StepLR(step_size, gamma) applied at epoch boundaries
            return config["gamma"] ** ((step // steps_per_epoch) // config["step_size"])
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1 + math.cos(math.pi * progress))  # cosine from 1 to 0

    return factor


def make_scheduler(optimizer: torch.optim.Optimizer, config: dict, steps_per_epoch: int,
                   step: int = 0) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step schedule placed at ``step`` (the steps already taken by a resumed run)."""
    for group in optimizer.param_groups:
        # LambdaLR scales initial_lr; a resume must not start from a decayed lr. A group with a
        # peak of its own (the multimodal model's embedding table) keeps it.
        group["initial_lr"] = group.get("peak_lr", config["lr"])
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(config, steps_per_epoch),
                                             last_epoch=step - 1)
