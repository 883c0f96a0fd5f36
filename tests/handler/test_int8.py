"""handler.int8: the convolutions' roles in an exported graph, and which of them a recipe leaves fp32."""

from pathlib import Path

import onnx
import pytest
import torch
from torch import nn

from aicore.efficientnet import EfficientNetLite0
from handler.int8 import Int8Recipe, conv_roles, quantize_int8
from handler.runtimes import export_onnx

SIZE = 32


@pytest.fixture(scope="module")
def effnet_onnx(tmp_path_factory: pytest.TempPathFactory) -> tuple[nn.Module, Path]:
    torch.manual_seed(0)
    model = EfficientNetLite0(3).eval()
    path = tmp_path_factory.mktemp("int8") / "fp32.onnx"
    export_onnx(model, SIZE, path)
    return model, path


def quantised_weights(path: Path) -> set[str]:
    """Names of the Conv/Gemm nodes whose weight input comes out of a DequantizeLinear."""
    graph = onnx.load(str(path)).graph
    dequantised = {out for node in graph.node if node.op_type == "DequantizeLinear" for out in node.output}
    return {node.name for node in graph.node
            if node.op_type in ("Conv", "Gemm") and node.input[1] in dequantised}


def test_conv_roles_find_the_depthwise_convolutions_stem_and_head(effnet_onnx) -> None:
    model, path = effnet_onnx
    roles = conv_roles(onnx.load(str(path)))
    depthwise = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert len(roles["depthwise"]) == len(depthwise) == 16  # one per MBConv block of Lite0
    assert len(roles["stem"]) == 1 and roles["stem"][0] not in roles["depthwise"]
    assert len(roles["head"]) == 2  # conv_head and the classifier's Gemm


@pytest.mark.parametrize("keep", [(), ("depthwise", "stem", "head")])
def test_quantize_leaves_exactly_the_recipes_roles_in_fp32(effnet_onnx, tmp_path: Path, keep) -> None:
    _, path = effnet_onnx
    calibration = [torch.randn(4, 3, SIZE, SIZE) for _ in range(2)]
    out = tmp_path / "int8.onnx"
    record = quantize_int8(path, out, calibration, Int8Recipe(keep_fp32=keep))
    roles = conv_roles(onnx.load(str(out)))
    kept = {name for role in keep for name in roles[role]}
    quantised = quantised_weights(out)
    assert record["fp32_node_count"] == len(kept) and record["images"] == 8
    assert quantised and not kept & quantised
    assert len(quantised) == sum(1 for n in onnx.load(str(out)).graph.node
                                 if n.op_type in ("Conv", "Gemm")) - len(kept)
