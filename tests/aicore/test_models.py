"""Both architectures: logits per class, and the embedding (the layer before the head)."""

import pytest
import torch
import torch.nn.functional as F
from aicore.models import (ARCHITECTURES, IMAGE_ARCHITECTURES, EncoderClassifier, build_model,
                           embed, encode)



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


def _example_input(arch: str):
    """A batch of 2 of each architecture's own input."""
    from aicore.text_models import model_input

    if arch in IMAGE_ARCHITECTURES:
        return torch.randn(2, 3, 64, 64)
    return model_input(arch, [[1, 2, 3], [4]], [torch.randn(3, 64, 64), None], 64)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_architecture_implements_the_protocol(arch: str) -> None:
    torch.manual_seed(0)
    options = {"text": {"buckets": 64}} if arch in ("text", "multimodal") else {}
    model = build_model(arch, num_classes=4, image_size=64, **options).eval()
    x = _example_input(arch)

    assert isinstance(model, EncoderClassifier)
    with torch.no_grad():
        features = model.encode(x)
        assert features.shape == (2, model.embedding_dim)
        # encode then head is forward: one pass can give both the embedding and the logits
        torch.testing.assert_close(model.head(features), model(x))


def test_multimodal_fusion_is_sized_by_its_image_architectures_embedding() -> None:
    model = build_model("multimodal", num_classes=3, image_size=64, image_arch="resnet50",
                        text={"buckets": 64})
    assert model.fuse[0].in_features == 2048 + model.text.dim + 2
    with pytest.raises(ValueError, match="unknown image_arch 'vgg'; choose one of cnn, resnet50"):
        build_model("multimodal", num_classes=3, image_arch="vgg")
