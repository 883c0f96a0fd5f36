"""The archive's runtime record and the eager runtime's one-pass outputs.

The ONNX runtimes against eager, through built archives, are in tests/handler/test_runtimes.py.
"""

import json

import pytest
import torch
import torch.nn.functional as F

from aicore.models import load_trained
from aicore.runtime import EAGER, ONNX_INT8, RUNTIME_FILE, EagerRuntime, load_runtime, read_record
from tests.support.models import make_model_dir

SIZE = 32


def test_read_record_without_a_file_is_eager(tmp_path):
    assert read_record(tmp_path) == {"runtime": EAGER}


def test_read_record_keeps_the_record_and_refuses_an_unknown_runtime(tmp_path):
    (tmp_path / RUNTIME_FILE).write_text(json.dumps({"runtime": ONNX_INT8, "gate": {"agreement": 0.99}}))
    assert read_record(tmp_path) == {"runtime": ONNX_INT8, "gate": {"agreement": 0.99}}

    (tmp_path / RUNTIME_FILE).write_text(json.dumps({"runtime": "tensorrt"}))
    with pytest.raises(ValueError, match="names runtime 'tensorrt'; known runtimes: onnx-int8, onnx-fp32, "):
        read_record(tmp_path)


def test_load_runtime_of_an_onnx_record_names_the_missing_file(tmp_path):
    make_model_dir(tmp_path, "cnn", ["a", "b"], image_size=SIZE)
    (tmp_path / RUNTIME_FILE).write_text(json.dumps({"runtime": ONNX_INT8}))

    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'model.onnx'} is missing: .* names "
                                                "runtime 'onnx-int8'"):
        load_runtime(tmp_path)


def test_eager_runtime_returns_the_models_logits_and_unit_embedding(tmp_path):
    make_model_dir(tmp_path, "cnn", ["a", "b", "c"], image_size=SIZE, seed=1)
    runtime, class_names, args, record = load_runtime(tmp_path)
    model, _, _ = load_trained(tmp_path, "cpu")
    model.eval()
    images = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))  # (B, 3, S, S)

    outputs = runtime(images)

    assert isinstance(runtime, EagerRuntime) and record == {"runtime": EAGER}
    assert class_names == ["a", "b", "c"] and args["arch"] == "cnn"
    with torch.inference_mode():
        features = model.encode(images)
        expected_logits = model.head(features)
    assert outputs.logits.shape == (2, 3)
    torch.testing.assert_close(outputs.logits, expected_logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(outputs.embedding, F.normalize(features, dim=1), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(outputs.embedding.norm(dim=1), torch.ones(2))
