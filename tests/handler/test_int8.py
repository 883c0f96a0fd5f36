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


def pad_sizes(path: Path, image: torch.Tensor) -> list[list[int]]:
    """The ``pads`` every Pad node of the graph at ``path`` computes for ``image``."""
    import onnxruntime

    model = onnx.load(str(path))
    pads = [node.input[1] for node in model.graph.node if node.op_type == "Pad"]
    model.graph.output.extend(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.INT64, None)
                              for name in pads)
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    outputs = session.run(pads, {session.get_inputs()[0].name: image.numpy()})
    return [list(map(int, out)) for out in outputs]


def test_quantize_leaves_tf_same_padding_sizes_exact(tmp_path: Path) -> None:
    # TF "same" padding computes each Pad's sizes from the input's shape in float ops; quantised
    # like activations, they rounded a pixel off and the int8 feature maps changed size.
    # 224 px: the input whose padding arithmetic spans the widest ranges (pads up to 113).
    torch.manual_seed(0)
    fp32 = tmp_path / "fp32.onnx"
    export_onnx(EfficientNetLite0(3).eval(), 224, fp32)
    calibration = [torch.randn(2, 3, 224, 224)]
    out = tmp_path / "int8.onnx"
    record = quantize_int8(fp32, out, calibration)
    assert record["shape_nodes"] > 0
    image = torch.randn(1, 3, 224, 224)
    expected = pad_sizes(fp32, image)
    assert len(expected) == 5  # the stem and the four stride-2 depthwise convolutions
    assert pad_sizes(out, image) == expected


@pytest.mark.parametrize("training", [False, True])
def test_export_leaves_the_models_mode_as_it_was(tmp_path: Path, training: bool) -> None:
    # An eval model came back in training mode (dropout, batch statistics) after export.
    model = EfficientNetLite0(3).train(training)
    export_onnx(model, SIZE, tmp_path / "fp32.onnx")
    assert {m.training for m in model.modules()} == {training}


@pytest.mark.parametrize("bits", [(16, 8), (8, 16)])
def test_sixteen_bit_diagnosis_recipes_quantise_with_those_widths(effnet_onnx, tmp_path: Path, bits) -> None:
    from onnx import numpy_helper

    _, path = effnet_onnx
    activations, weights = bits
    out = tmp_path / "int16.onnx"
    record = quantize_int8(path, out, [torch.randn(4, 3, SIZE, SIZE)],
                           Int8Recipe(activation_bits=activations, weight_bits=weights))
    assert record["activations"] == f"uint{activations} per-tensor"
    assert record["weights"] == f"int{weights} per-channel"
    graph = onnx.load(str(out)).graph
    dtypes = {numpy_helper.to_array(t).dtype.name for t in graph.initializer}
    assert f"int{weights}" in dtypes and f"uint{activations}" in dtypes  # weights and zero points
    assert {f"int{24 - weights}", f"uint{24 - activations}"}.isdisjoint(dtypes)


def test_recipe_refuses_other_widths() -> None:
    with pytest.raises(ValueError, match="8 or 16"):
        Int8Recipe(weight_bits=4)


def test_default_recipe_quantises_every_convolution_and_leaves_the_classifier_fp32(effnet_onnx,
                                                                                   tmp_path: Path):
    _, path = effnet_onnx
    out = tmp_path / "int8.onnx"
    record = quantize_int8(path, out, [torch.randn(4, 3, SIZE, SIZE)])
    nodes = onnx.load(str(out)).graph.node
    convs = {n.name for n in nodes if n.op_type == "Conv"}
    classifier = {n.name for n in nodes if n.op_type in ("Gemm", "MatMul")}
    assert record["fp32_nodes"] == ["classifier"] and len(classifier) == 1
    assert quantised_weights(out) == convs
