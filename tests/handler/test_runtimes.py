"""Runtimes inside archives: a tiny trained run -> an archive per runtime -> the real handler gives
the same answers; the accuracy gate stops a build that changes them and names a runtime that passes."""

import json
import zipfile
from pathlib import Path

import pytest
import torch

from aicore.runtime import EAGER, ONNX_FILE, ONNX_FP32, ONNX_INT8, load_runtime, read_record
from handler import archive, runtimes
from handler.image_handler import ImageClassifierHandler
from common.cli import UserError
from tests.support.data import make_clean_dataset
from tests.support.handler import make_context
from training import train

IMAGE_SIZE = 48


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (tiny) CNN run: 3 hues, 3 epochs at 48 px, with split.json and the dataset it names."""
    root = tmp_path_factory.mktemp("runtime")
    data = make_clean_dataset(root / "clean", num_classes=3, products_per_class=10,
                              images_per_product=2, size=IMAGE_SIZE)
    run_dir = root / "runs" / "cnn"
    train.main(train.get_args_parser().parse_args(
        ["--model", "cnn", "--data", str(data), "--out", str(run_dir), "--epochs", "3",
         "--workers", "0", "--batch-size", "8", "--image-size", str(IMAGE_SIZE)]))
    return run_dir


@pytest.fixture(scope="module")
def stores(cnn_run: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict]]:
    """``{runtime: (unpacked archive, runtime.json record)}`` for every runtime."""
    built = {}
    for runtime in (EAGER, ONNX_FP32, ONNX_INT8):
        mar, record = archive.build_archive(cnn_run, "cnn", tmp_path_factory.mktemp(runtime), runtime)
        unpacked = tmp_path_factory.mktemp(f"{runtime}-unpacked")
        with zipfile.ZipFile(mar) as z:
            z.extractall(unpacked)
        built[runtime] = (unpacked, record)
    return built


def serve(model_dir: Path, images: list[bytes]) -> list[dict]:
    """The real handler over one batch of raw image bytes, as a TorchServe worker runs it."""
    threads = torch.get_num_threads()
    handler = ImageClassifierHandler()
    handler.initialize(make_context(model_dir, len(images)))
    try:
        return [json.loads(body) for body in handler.handle([{"body": b} for b in images],
                                                            make_context(model_dir, len(images)))]
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def requests(cnn_run: Path) -> list[bytes]:
    """The run's test images as served requests (PNG bytes of the cleaned files)."""
    split = json.loads((cnn_run / "split.json").read_text())
    data = Path(json.loads((cnn_run / "config.json").read_text())["data"])
    return [(data / "images" / f"{image_id}.png").read_bytes() for image_id in split["test"]]


@pytest.mark.parametrize("runtime", [ONNX_FP32, ONNX_INT8])
def test_runtime_archive_answers_like_eager_through_the_handler(stores, requests, runtime):
    eager = serve(stores[EAGER][0], requests)
    served = serve(stores[runtime][0], requests)

    assert [a["category"] for a in served] == [a["category"] for a in eager]
    tolerance = 1e-4 if runtime == ONNX_FP32 else 0.05  # int8 moves probabilities a little
    for mine, reference in zip(served, eager, strict=True):
        assert mine["probabilities"] == pytest.approx(reference["probabilities"], abs=tolerance)


@pytest.mark.parametrize("runtime", [EAGER, ONNX_FP32, ONNX_INT8])
def test_archive_records_runtime_version_and_gate(stores, cnn_run, runtime):
    model_dir, record = stores[runtime]

    assert read_record(model_dir) == record
    assert record["runtime"] == runtime
    version = json.loads((model_dir / "MAR-INF" / "MANIFEST.json").read_text())["model"]["modelVersion"]
    assert version == archive.archive_version(cnn_run, runtime)
    assert version.endswith(f"-{runtime}")
    if runtime == EAGER:
        assert record["engine"] == "torch" and not (model_dir / ONNX_FILE).exists()
        return
    import onnxruntime

    assert record["engine_version"] == onnxruntime.__version__
    assert (model_dir / ONNX_FILE).is_file()
    gate = record["accuracy_gate"]
    assert gate["passed"] and gate["top1_agreement_with_eager"] >= 0.99
    assert gate["test_images"] == len(json.loads((cnn_run / "split.json").read_text())["test"])
    if runtime == ONNX_INT8:
        assert record["calibration"]["images"] > 0 and record["calibration"]["format"] == "QDQ"


def test_handler_describe_shows_runtime_record(stores):
    model_dir, record = stores[ONNX_INT8]
    handler = ImageClassifierHandler()
    handler.initialize(make_context(model_dir))

    assert handler.describe_handle() == record


def test_runtimes_return_the_same_embedding(stores):
    batch = torch.rand(3, 3, IMAGE_SIZE, IMAGE_SIZE)
    eager, _, _, _ = load_runtime(stores[EAGER][0])
    onnx, _, _, _ = load_runtime(stores[ONNX_FP32][0])

    a, b = eager(batch), onnx(batch)

    assert a.embedding.shape == (3, 64)
    assert torch.linalg.vector_norm(b.embedding, dim=1) == pytest.approx(torch.ones(3), abs=1e-5)
    assert b.embedding == pytest.approx(a.embedding, abs=1e-4)
    assert b.logits == pytest.approx(a.logits, abs=1e-4)


def test_gate_failure_stops_build_and_names_a_passing_runtime(cnn_run, tmp_path, monkeypatch):
    real_gate = runtimes.gate

    def int8_disagrees(run_dir, model_dir, test, labels):
        result = real_gate(run_dir, model_dir, test, labels)
        if read_record(model_dir)["runtime"] == ONNX_INT8:
            result.agreement = 0.5  # as if int8 had flipped half of the answers
        return result

    monkeypatch.setattr(runtimes, "gate", int8_disagrees)

    with pytest.raises(UserError) as error:
        archive.build_archive(cnn_run, "cnn", tmp_path / "store", ONNX_INT8)

    message = str(error.value)
    assert "\n" not in message
    assert "onnx-int8 fails the accuracy gate" in message and "agreement with eager fp32 50.0%" in message
    assert message.endswith("use RUNTIME=onnx-fp32 instead")
    assert not (tmp_path / "store" / "cnn.mar").exists()


def test_auto_takes_the_fastest_runtime_that_passes(cnn_run, tmp_path, monkeypatch):
    real_gate = runtimes.gate

    def int8_fails(run_dir, model_dir, test, labels):
        result = real_gate(run_dir, model_dir, test, labels)
        if read_record(model_dir)["runtime"] == ONNX_INT8:
            result.accuracy = result.eager_accuracy - 0.05  # 5 points lost
        return result

    monkeypatch.setattr(runtimes, "gate", int8_fails)

    _, record = archive.build_archive(cnn_run, "cnn", tmp_path / "store", "auto")

    assert record["runtime"] == ONNX_FP32


def test_gate_result_thresholds():
    ok = runtimes.GateResult(agreement=0.99, accuracy=0.80, eager_accuracy=0.81,
                             embedding_cosine_min=0.99, images=100)
    assert ok.passed
    assert not runtimes.GateResult(0.98, 0.81, 0.81, 1.0, 100).passed  # agreement below 99 %
    assert not runtimes.GateResult(1.0, 0.79, 0.81, 1.0, 100).passed  # 2 points of accuracy lost


def test_build_without_dataset_says_how_to_pass_it(cnn_run, tmp_path):
    with pytest.raises(UserError, match=r"manifest.csv is missing.*--data \(DATA=\)"):
        archive.build_archive(cnn_run, "cnn", tmp_path / "store", ONNX_FP32, data_dir=tmp_path / "nope")
