"""The sentence encoder's pure parts: masked mean pooling, the listing text, and batch order.

Parity with sentence-transformers on the real weights is in tests/search/test_encoder.py.
"""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from aicore.sentence import _Encoder, listing_text, mean_pool


def test_mean_pool_ignores_padding_and_normalises():
    hidden = torch.tensor([[[3.0, 0.0], [1.0, 4.0], [100.0, 100.0]],  # (B=2, T=3, H=2)
                           [[0.0, 2.0], [7.0, 7.0], [7.0, 7.0]]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])

    pooled = mean_pool(hidden, mask)

    # row 0: mean of (3, 0) and (1, 4) = (2, 2) -> unit; row 1: (0, 2) alone -> (0, 1)
    expected = torch.tensor([[2 ** -0.5, 2 ** -0.5], [0.0, 1.0]])
    torch.testing.assert_close(pooled, expected)


def test_mean_pool_of_an_all_padding_row_is_zero_not_nan():
    pooled = mean_pool(torch.ones(1, 2, 3), torch.zeros(1, 2, dtype=torch.int64))

    assert torch.equal(pooled, torch.zeros(1, 3))


@pytest.mark.parametrize("title, description, text", [
    (" Red sofa ", " Comfy. ", "Red sofa\nComfy."),
    ("Kettle", "", "Kettle"),
    ("", "only words", "only words"),
])
def test_listing_text_puts_the_title_first(title, description, text):
    assert listing_text(title, description) == text


class _LengthEncoder(_Encoder):
    """Each text's row is (its token count, 1): shows which text a row came from."""

    dim = 2

    def __init__(self) -> None:
        self.tokenizer = SimpleNamespace(encode_batch=lambda texts: [
            SimpleNamespace(ids=[1] * len(t) + [0] * (max(map(len, texts)) - len(t)),
                            attention_mask=[1] * len(t) + [0] * (max(map(len, texts)) - len(t)))
            for t in texts])
        self.batches: list[int] = []

    def forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        self.batches.append(ids.shape[1])  # the padded width of the batch
        return np.stack([mask.sum(1), np.ones(len(ids))], axis=1).astype(np.float32)


def test_encode_batches_by_length_and_returns_rows_in_input_order():
    encoder = _LengthEncoder()
    texts = ["aaaaa", "a", "aaa", "aa", "aaaa"]

    rows = encoder.encode(texts, batch_size=2)

    assert rows[:, 0].tolist() == [5, 1, 3, 2, 4]
    assert encoder.batches == [2, 4, 5]  # sorted by length: little padding
