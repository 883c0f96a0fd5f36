"""ImageNet weights for ResNet-50 (cached, offline, corrupt) and a frozen backbone."""

from pathlib import Path
from urllib.error import URLError
import pytest
import torch
import torch.nn.functional as F
from torchvision.models import resnet50 as tv_resnet50
from aicore.models import build_model
from common.cli import UserError
from training.pretrained import (freeze_backbone, freeze_early_blocks, keep_frozen_batchnorm_eval,
                                 load_imagenet_weights, weights_cache_path)
from training.recipes import RECIPES, make_optimizer



WEIGHTS_FILE = "resnet50-11ad3fa6.pth"


CONFIG = RECIPES["seed"]


@pytest.fixture
def empty_torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """TORCH_HOME in tmp, and a download that fails as it does offline."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def offline(url: str, *args: object, **kwargs: object) -> None:
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return tmp_path / "torch"


@pytest.fixture(scope="module")
def fake_imagenet_state() -> dict[str, torch.Tensor]:
    """A randomly initialised but correctly keyed 1000-class ResNet-50 state_dict."""
    torch.manual_seed(123)
    return tv_resnet50(weights=None).state_dict()


def test_load_imagenet_weights_names_the_file_to_place_when_offline(empty_torch_home: Path
                                                                    ) -> None:
    expected = empty_torch_home / "hub" / "checkpoints" / WEIGHTS_FILE
    assert weights_cache_path() == expected
    with pytest.raises(UserError) as err:
        load_imagenet_weights(build_model("resnet50", num_classes=3))
    message = str(err.value)
    assert str(expected) in message
    assert f"https://download.pytorch.org/models/{WEIGHTS_FILE}" in message
    assert "name resolution" in message
    assert "\n" not in message


def test_load_imagenet_weights_reads_the_cache_then_replaces_fc(
        empty_torch_home: Path, fake_imagenet_state: dict[str, torch.Tensor]) -> None:
    cached = empty_torch_home / "hub" / "checkpoints" / WEIGHTS_FILE
    cached.parent.mkdir(parents=True)
    torch.save(fake_imagenet_state, cached)
    torch.manual_seed(0)
    model = build_model("resnet50", num_classes=3)
    untouched_fc = model.fc.weight.detach().clone()
    load_imagenet_weights(model)  # the download is patched to fail: this must read the cache
    assert torch.equal(model.conv1.weight, fake_imagenet_state["conv1.weight"])
    assert torch.equal(model.layer4[2].bn3.running_var, fake_imagenet_state["layer4.2.bn3.running_var"])
    assert model.fc.weight.shape == (3, 2048)
    assert torch.equal(model.fc.weight, untouched_fc)


def test_load_imagenet_weights_refuses_a_corrupt_cache_file(empty_torch_home: Path) -> None:
    cached = empty_torch_home / "hub" / "checkpoints" / WEIGHTS_FILE
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"half a download")
    with pytest.raises(UserError, match=f"{WEIGHTS_FILE} is unreadable.*delete it"):
        load_imagenet_weights(build_model("resnet50", num_classes=3))


def test_freeze_backbone_trains_only_fc() -> None:
    torch.manual_seed(0)
    model = build_model("resnet50", num_classes=3)
    freeze_backbone(model)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"fc.weight", "fc.bias"}
    optimizer = make_optimizer(model, CONFIG)
    assert {id(p) for p in optimizer.param_groups[0]["params"]} == \
        {id(model.fc.weight), id(model.fc.bias)}


def test_frozen_backbone_keeps_weights_and_batchnorm_statistics() -> None:
    torch.manual_seed(0)
    model = build_model("resnet50", num_classes=3)
    freeze_backbone(model)
    optimizer = make_optimizer(model, CONFIG)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    keep_frozen_batchnorm_eval(model)
    assert not model.bn1.training and not model.layer1[0].bn1.training
    loss = F.cross_entropy(model(torch.randn(4, 3, 32, 32)), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    optimizer.step()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"fc.weight", "fc.bias"}


def test_unfrozen_model_keeps_batchnorm_training() -> None:
    model = build_model("resnet50", num_classes=3)
    model.train()
    keep_frozen_batchnorm_eval(model)
    assert model.bn1.training and model.layer4[2].bn3.training


def test_freeze_early_blocks_trains_only_the_later_stages_and_keeps_their_statistics() -> None:
    torch.manual_seed(0)
    model = build_model("efficientnet_lite0", num_classes=3)
    torch.nn.init.normal_(model.net.classifier.weight)  # a zero head sends no gradient back
    freeze_early_blocks(model, 5)
    trainable = {n.split(".")[1] + ("." + n.split(".")[2] if n.startswith("net.blocks") else "")
                 for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"blocks.5", "blocks.6", "conv_head", "bn2", "classifier"}
    optimizer = make_optimizer(model, CONFIG)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    keep_frozen_batchnorm_eval(model)
    assert not model.net.bn1.training and not model.net.blocks[4][0].bn1.training
    assert model.net.blocks[5][0].bn1.training
    F.cross_entropy(model(torch.randn(4, 3, 32, 32)), torch.tensor([0, 1, 2, 0])).backward()
    optimizer.step()
    changed = {k for k in before if not torch.equal(before[k], model.state_dict()[k])}
    assert not any(k.startswith(("net.conv_stem", "net.bn1", "net.blocks.4.")) for k in changed)
    assert "net.blocks.5.0.conv_pw.weight" in changed and "net.conv_head.weight" in changed


@pytest.mark.parametrize("arch, blocks, message", [
    ("resnet50", 2, "ResNet50Classifier has no block stages"),
    ("efficientnet_lite0", 8, "has 7 block stages, got 8"),
])
def test_freeze_early_blocks_refuses_what_it_cannot_freeze(arch: str, blocks: int, message: str) -> None:
    with pytest.raises(UserError, match=message):
        freeze_early_blocks(build_model(arch, num_classes=3), blocks)
