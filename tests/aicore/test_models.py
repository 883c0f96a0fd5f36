"""Both architectures: logits per class, and the embedding (the layer before the head)."""

import pytest
import torch
import torch.nn.functional as F
from aicore.models import build_model, embed, encode



def test_cnn_outputs_logits_per_class_at_128_px() -> None:
    model = build_model("cnn", num_classes=13, image_size=128).eval()
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        assert model.features(x).shape == (2, 5408)  # 32 x 13 x 13
        logits = model(x)
    assert logits.shape == (2, 13)
    # Logits, not probabilities: cross_entropy applies the softmax itself.
    assert not torch.allclose(logits.sum(dim=1), torch.ones(2))
    assert not torch.allclose(F.softmax(logits, dim=1), logits)


def test_resnet50_outputs_logits_per_class() -> None:
    model = build_model("resnet50", num_classes=5).eval()
    with torch.no_grad():
        logits = model(torch.randn(2, 3, 64, 64))
    assert logits.shape == (2, 5)
    assert model.fc.out_features == 5
    assert not torch.allclose(logits.sum(dim=1), torch.ones(2))


@pytest.mark.parametrize(("arch", "dim"), [("cnn", 64), ("resnet50", 2048)])
def test_embed_is_the_unit_length_layer_before_the_head(arch: str, dim: int) -> None:
    torch.manual_seed(0)
    model = build_model(arch, num_classes=5).eval()
    x = torch.randn(3, 3, 128, 128)
    with torch.no_grad():
        vectors = embed(model, x)
        head = model.classifier[-1] if arch == "cnn" else model.fc
        logits_from_features = head(encode(model, x))
        logits = model(x)
    assert vectors.shape == (3, dim)
    torch.testing.assert_close(vectors.norm(dim=1), torch.ones(3))
    # encode() really is the input of the head: applying the head to it gives forward()'s logits.
    torch.testing.assert_close(logits_from_features, logits)
