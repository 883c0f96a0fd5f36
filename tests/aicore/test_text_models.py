"""Text and multimodal models: their inputs, and a multimodal listing encoded the same alone or in a
batch, with a missing photo or missing text masked out.

The text encoder's training/serving paths and idf weighting are in tests/training/test_sparse_adagrad.py.
"""

import pytest
import torch
from torch import nn

from aicore.text import TextBatch
from aicore.text_models import ListingBatch, MultimodalClassifier, TextEncoder, model_input

SIZE = 8


class _MeanImage(nn.Module):
    """A stand-in image model: the per-channel mean through one linear layer."""

    embedding_dim = 4

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 4)

    def encode(self, images: torch.Tensor) -> torch.Tensor:  # (B, 3, S, S) -> (B, 4)
        return self.linear(images.mean(dim=(2, 3)))


@pytest.fixture
def model() -> MultimodalClassifier:
    torch.manual_seed(0)
    return MultimodalClassifier(3, "cnn", _MeanImage(), {"buckets": 32}, text_dim=5, fusion_dim=6).eval()


def _photo(seed: int) -> torch.Tensor:
    return torch.rand(3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def test_model_input_of_a_text_model_is_the_text_batch():
    batch = model_input("text", [[1, 2], [], [7]], [None, None, None], SIZE)

    assert isinstance(batch, TextBatch)
    assert batch.ids.tolist() == [1, 2, 7] and batch.offsets.tolist() == [0, 2, 2]


def test_model_input_of_a_multimodal_model_flags_missing_photos():
    photo = _photo(1)

    batch = model_input("multimodal", [[1], [2, 3]], [None, photo], SIZE)

    assert isinstance(batch, ListingBatch)
    assert batch.has_image.tolist() == [0.0, 1.0]
    assert torch.count_nonzero(batch.images[0]) == 0 and torch.equal(batch.images[1], photo)
    assert batch.text.ids.tolist() == [1, 2, 3] and batch.text.offsets.tolist() == [0, 1]


def test_multimodal_listing_encodes_the_same_alone_and_in_a_batch(model):
    ids = [[1, 2], [], [3, 4, 5], []]  # empty text in the middle and at the end
    photos = [_photo(0), _photo(1), None, _photo(3)]

    with torch.inference_mode():
        batched = model.encode(model_input("multimodal", ids, photos, SIZE))
        alone = torch.cat([model.encode(model_input("multimodal", [i], [p], SIZE))
                           for i, p in zip(ids, photos, strict=True)])

    torch.testing.assert_close(batched, alone)


def test_multimodal_masks_the_photo_of_a_listing_without_one(model):
    batch = model_input("multimodal", [[1, 2]], [None], SIZE)
    noisy = batch._replace(images=torch.rand(1, 3, SIZE, SIZE))  # has_image stays 0

    with torch.inference_mode():
        torch.testing.assert_close(model(noisy), model(batch))
        with_photo = model(model_input("multimodal", [[1, 2]], [noisy.images[0]], SIZE))
    assert not torch.allclose(with_photo, model(batch))


def test_listing_batch_moves_every_tensor():
    batch = model_input("multimodal", [[1]], [None], SIZE)

    moved = batch.to("cpu")

    assert isinstance(moved, ListingBatch)
    assert all(torch.equal(a, b) for a, b in zip(moved, batch, strict=True))


def test_set_idf_on_an_encoder_without_idf_is_refused():
    with pytest.raises(ValueError, match="built with idf=False"):
        TextEncoder(8, 2).set_idf(torch.zeros(8), 3)
