"""WiSE-FT: average the fine-tuned weights with the ones fine-tuning started from.

Wortsman et al., "Robust fine-tuning of zero-shot models" (CVPR 2022): the straight line between
a pretrained model and its fine-tune holds models better than either end. Here the start is the
ImageNet backbone with the linear-probe head (``--head-init probe``), so the line runs from the
probe to the fine-tune; with ``--frozen-bn`` both ends share their batch-norm statistics and the
average is a plain weighted mean of the tensors. The mixing weight is chosen on the validation
split among :data:`ALPHAS` and kept only when it beats the fine-tune's best epoch there.
"""

import torch
from torch import nn

from aicore.models import MODEL_FILE, build_model, save_trained
from common.atomic import atomic_write_bytes
from training import progress
from training.engine import cpu_state_dict, evaluate, make_loader
from training.listing_data import build_dataset
from training.pretrained import load_imagenet_weights
from training.probe import init_head_from_probe
from training.run_state import RunState
from training.split import limit_ids

ALPHAS = (0.0, 0.25, 0.5, 0.75)  # weight of the fine-tune; 1.0 is the fine-tune itself


def interpolate(start: dict[str, torch.Tensor], end: dict[str, torch.Tensor],
                alpha: float) -> dict[str, torch.Tensor]:
    """``(1 - alpha) * start + alpha * end`` for float tensors; others (counters) from ``end``."""
    return {k: torch.lerp(start[k], v, alpha) if v.is_floating_point() else v
            for k, v in end.items()}


def starting_weights(state: RunState) -> dict[str, torch.Tensor]:
    """The weights fine-tuning started from, rebuilt (a resumed run no longer holds them):
    the pretrained backbone and, for ``--head-init probe``, the same probe head."""
    model = build_model(**state.model_args)
    load_imagenet_weights(model, state.config["pretrained"])
    if state.config["head_init"] == "probe":
        split = {**state.split, "train": limit_ids(state.split["train"], state.run.limit_train,
                                                   state.run.seed)}
        init_head_from_probe(model, state.data, split, state.config["image_size"],
                             state.config["workers"])
    return cpu_state_dict(model)


def average_with_start(state: RunState, device: torch.device,
                       start: dict[str, torch.Tensor] | None) -> dict | None:
    """Replace ``model.pt`` by the best average on validation if it beats the best epoch.

    Returns:
        ``{"alpha", "val_accuracy", "val_accuracy_by_alpha"}``; ``alpha`` is 1.0 when no average
        beat the fine-tune (``model.pt`` unchanged).
    """
    model: nn.Module = state.model
    tuned = torch.load(state.run_dir / MODEL_FILE, map_location="cpu", weights_only=True)
    start = start if start is not None else starting_weights(state)
    tuned_acc = state.best_val_acc
    val_ds = build_dataset(state.data, state.split["val"], model, state.model_args, augment=None)
    loader = make_loader(val_ds, state.run.batch_size, state.run.workers, device)
    by_alpha = {}
    for alpha in ALPHAS:
        model.load_state_dict(interpolate(start, tuned, alpha))
        by_alpha[alpha] = evaluate(model, loader, device)["accuracy"]
    best = max(by_alpha, key=by_alpha.get)
    result = {"alpha": 1.0, "val_accuracy": tuned_acc,
              "val_accuracy_by_alpha": {str(a): round(v, 4) for a, v in by_alpha.items()}}
    if by_alpha[best] > tuned_acc:
        result.update(alpha=best, val_accuracy=by_alpha[best])
        model.load_state_dict(interpolate(start, tuned, best))
        state.best_val_acc = by_alpha[best]
        if state.dist.is_main:
            save_trained(state.run_dir, model, state.data.class_names, state.model_args,
                         write_bytes=atomic_write_bytes)
    else:
        model.load_state_dict(tuned)
    if state.dist.is_main:
        progress.log(f"WiSE-FT: validation accuracy by weight of the fine-tune "
                     f"{result['val_accuracy_by_alpha']}, 1.0: {tuned_acc:.4f} "
                     f"-> keeping {result['alpha']}")
    return result
