"""common.handling: the answer body every handler writes, and the worker's torch threads."""

import pytest

from common.handling import DEFAULT_TORCH_THREADS, prediction, torch_threads_from_env
from common.torchserve import ENV_TORCH_THREADS


def test_prediction_names_the_top_class_with_every_probability():
    body = prediction([0.1, 0.7, 0.2], ["a", "b", "c"])
    assert body == {"category": "b", "probabilities": {"a": 0.1, "b": 0.7, "c": 0.2}}


def test_prediction_refuses_a_length_mismatch():
    with pytest.raises(ValueError):
        prediction([0.5, 0.5], ["a", "b", "c"])


def test_torch_threads_default_and_from_env(monkeypatch):
    monkeypatch.delenv(ENV_TORCH_THREADS, raising=False)
    assert torch_threads_from_env() == DEFAULT_TORCH_THREADS
    monkeypatch.setenv(ENV_TORCH_THREADS, " 3 ")
    assert torch_threads_from_env() == 3


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_torch_threads_refuses_non_positive_integers(monkeypatch, value):
    monkeypatch.setenv(ENV_TORCH_THREADS, value)
    with pytest.raises(ValueError, match=f"{ENV_TORCH_THREADS}='{value}' must be a positive"):
        torch_threads_from_env()
