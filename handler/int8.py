"""Static int8 quantisation of an image model's ONNX graph, and which nodes stay fp32.

:func:`quantize_int8` is what ``handler.runtimes`` runs for ``onnx-int8``: QDQ format, int8
per-channel weights, uint8 per-tensor activations, ranges calibrated on training-split images.
An :class:`Int8Recipe` says how the ranges are calibrated and which convolutions stay fp32, by
their role in the graph (found from the ONNX ``Conv`` attributes, not from layer names, so it
applies to every architecture):

- ``depthwise``: ``group == channels`` convolutions (EfficientNet's and MobileNet's 3x3/5x5
  per-channel kernels: few weights per output, activation ranges set by a few outliers);
- ``stem``: the first convolution (it sees the raw pixels);
- ``head``: the last convolution and the classifier (``Gemm``/``MatMul``), whose errors reach
  the logits unaveraged;
- ``classifier``: the classifier alone. :data:`DEFAULT_RECIPE` keeps it fp32: it is a few
  thousandths of the arithmetic, and a head folded from a standardised linear probe
  (``--head-init probe``) has weights of wildly different sizes within one class's row, which
  per-row int8 rounds to nothing (EfficientNet-Lite0 on the demo data: agreement with fp32 66 %
  with it quantised, 94 % without; docs/transfer-learning.md).

Shape arithmetic is never quantised, whatever the recipe (:func:`shape_arithmetic`): TF "same"
padding (EfficientNet-Lite0's) computes each ``Pad``'s sizes from the input's shape at run time,
in float ops ONNX Runtime would otherwise calibrate and round like activations.

``python -m bench.int8_recipes`` measures the recipes against the accuracy gate.
"""

from dataclasses import dataclass
from pathlib import Path

import onnx
import torch

from aicore.runtime import INPUT_NAME

ROLES = ("depthwise", "stem", "head", "classifier")
METHODS = ("MinMax", "Percentile", "Entropy")


@dataclass(frozen=True)
class Int8Recipe:
    """How to calibrate and what to keep in fp32."""

    method: str = "MinMax"  # one of METHODS
    keep_fp32: tuple[str, ...] = ()  # roles of ROLES left unquantised
    # ONNX op types to quantise (None: every op ONNX Runtime can); ("Conv",) keeps the residual
    # Adds, the pooling and the classifier's input in fp32
    op_types: tuple[str, ...] | None = None
    # Bits of the activations and the weights: 16 is a diagnosis, not a runtime (ONNX Runtime's
    # CPU kernels run 16-bit QDQ in fp32): which of the two roundings loses the answers.
    activation_bits: int = 8
    weight_bits: int = 8

    def __post_init__(self) -> None:
        if {self.activation_bits, self.weight_bits} - {8, 16}:
            raise ValueError(f"bits must be 8 or 16, got A{self.activation_bits}W{self.weight_bits}")

    def describe(self) -> str:
        kept = "+".join(self.keep_fp32) or "nothing"
        ops = "+".join(self.op_types) if self.op_types else "all ops"
        return f"{self.method}, {ops}, fp32: {kept}, A{self.activation_bits}W{self.weight_bits}"


DEFAULT_RECIPE = Int8Recipe(keep_fp32=("classifier",))


def conv_roles(model: onnx.ModelProto) -> dict[str, list[str]]:
    """role -> names of the nodes of ``model`` playing it (see the module docstring)."""
    convs = [node for node in model.graph.node if node.op_type == "Conv"]
    roles: dict[str, list[str]] = {role: [] for role in ROLES}
    for node in convs:
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        if group > 1:
            roles["depthwise"].append(node.name)
    if convs:
        roles["stem"].append(convs[0].name)
        roles["head"].append(convs[-1].name)
    roles["classifier"] = [node.name for node in model.graph.node if node.op_type in ("Gemm", "MatMul")]
    roles["head"] += roles["classifier"]
    return roles


def shape_arithmetic(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes of ``model`` that compute sizes from shapes, not values from the input.

    A node is shape arithmetic when none of its inputs carries the graph input's values: a
    ``Shape``/``Size`` node, or a node fed only by initialisers, constants and other shape
    arithmetic. Quantising one rounds a size: EfficientNet-Lite0's pads, computed as
    ``(ceil(h / s) - 1) * s + k - h`` in float, came out a pixel off after uint8 rounding, so the
    int8 graph's feature maps after the stride-2 convolutions had other sizes than fp32's (ImageNet
    top-1 agreement with fp32 0.50 on dev-set pictures; 0.83 with these nodes left alone).
    """
    carries_input = {tensor.name for tensor in model.graph.input}
    names = []
    for node in model.graph.node:  # ONNX keeps nodes in topological order
        if node.op_type not in ("Shape", "Size") and carries_input.intersection(node.input):
            carries_input.update(node.output)
        else:
            names.append(node.name)
    return names


def quantize_int8(fp32_path: Path, out_path: Path, calibration: list[torch.Tensor],
                  recipe: Int8Recipe = DEFAULT_RECIPE) -> dict:
    """Quantise ``fp32_path`` into ``out_path`` by ``recipe``, calibrated on ``calibration``.

    Returns:
        The calibration record stored in ``runtime.json``.
    """
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(calibration)

        def get_next(self) -> dict | None:
            batch = next(self.batches, None)
            return None if batch is None else {INPUT_NAME: batch.numpy()}

    prepared = out_path.with_name("prepared.onnx")
    quant_pre_process(str(fp32_path), str(prepared))  # shape inference + graph fusions first
    roles = conv_roles(onnx.load(str(prepared)))
    excluded = [name for role in recipe.keep_fp32 for name in roles[role]]
    sizes = shape_arithmetic(onnx.load(str(prepared)))
    wide = 16 in (recipe.activation_bits, recipe.weight_bits)
    quantize_static(str(prepared), str(out_path), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt16 if recipe.activation_bits == 16 else QuantType.QUInt8,
                    weight_type=QuantType.QInt16 if recipe.weight_bits == 16 else QuantType.QInt8,
                    per_channel=True, calibrate_method=getattr(CalibrationMethod, recipe.method),
                    nodes_to_exclude=excluded + sizes,
                    op_types_to_quantize=list(recipe.op_types) if recipe.op_types else None,
                    extra_options={"UseQDQContribOps": wide})  # 16-bit Q/DQ: com.microsoft ops
    prepared.unlink()
    return {"format": "QDQ", "weights": f"int{recipe.weight_bits} per-channel",
            "activations": f"uint{recipe.activation_bits} per-tensor",
            "method": recipe.method, "fp32_nodes": sorted(recipe.keep_fp32),
            "op_types": list(recipe.op_types) if recipe.op_types else "all",
            "fp32_node_count": len(excluded), "shape_nodes": len(sizes),
            "images": sum(len(b) for b in calibration),
            "source": "training split"}
