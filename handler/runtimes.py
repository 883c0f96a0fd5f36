"""Build an archive's runtime: export to ONNX, calibrate int8, and prove the accuracy held.

``handler.archive`` calls :func:`prepare_runtime` for every archive. For an ONNX runtime it

1. exports the trained model with both outputs (logits, embedding) and a dynamic batch axis
   (:func:`export_onnx`; the TorchScript-based exporter: the dynamo one also works but took 8x
   longer, 11 s vs 91 s for ResNet-50 on this machine, and needs onnxscript);
2. for ``onnx-int8``, quantises it statically (QDQ, int8 per-channel weights, uint8 activations,
   min/max ranges) calibrated on training-split images (:func:`handler.int8.quantize_int8`);
3. runs the **accuracy gate** (:func:`gate`): on the run's test split, the runtime must agree with
   the eager fp32 model on the top-1 category for >= 99 % of images and keep test accuracy within
   1 point. Otherwise the build stops with one line naming a runtime that passes.

Everything it measured goes into ``runtime.json`` inside the archive, which the handler shows in
``GET /models/<name>?customized=true``.
"""

import json
import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from aicore.models import embed, load_trained
from aicore.presets import EvalPreset
from aicore.runtime import (EAGER, INPUT_NAME, ONNX_FILE, ONNX_INT8, OUTPUT_NAMES, RUNTIME_FILE, RUNTIMES,
                            load_runtime)
from handler.int8 import quantize_int8
from handler.split_images import SplitError, read_split_images

logger = logging.getLogger(__name__)

MIN_AGREEMENT = 0.99  # top-1 agreement with eager fp32 on the test split
MAX_ACCURACY_DROP = 0.01  # test accuracy within 1 point of eager fp32
CALIBRATION_IMAGES = 64  # training images whose activation ranges set the int8 scales
ONNX_OPSET = 17
GATE_BATCH = 16
AUTO = "auto"  # `make archive`'s default: the fastest runtime that passes the gate
CHOICES = (AUTO, *RUNTIMES)

__all__ = ["AUTO", "CHOICES", "GateError", "SplitError", "prepare_runtime"]


class GateError(ValueError):
    """The runtime changed the model's answers more than the gate allows; the message says so."""


@dataclass
class GateResult:
    agreement: float  # share of test images where runtime and eager fp32 pick the same category
    accuracy: float  # the runtime's test accuracy
    eager_accuracy: float
    embedding_cosine_min: float  # worst cosine between runtime and eager embeddings
    images: int

    @property
    def passed(self) -> bool:
        return self.agreement >= MIN_AGREEMENT and \
            self.accuracy >= self.eager_accuracy - MAX_ACCURACY_DROP - 1e-9

    def as_dict(self) -> dict:
        return {"test_images": self.images, "top1_agreement_with_eager": round(self.agreement, 4),
                "test_accuracy": round(self.accuracy, 4),
                "eager_test_accuracy": round(self.eager_accuracy, 4),
                "embedding_cosine_min": round(self.embedding_cosine_min, 4),
                "min_agreement": MIN_AGREEMENT, "max_accuracy_drop": MAX_ACCURACY_DROP}

    def describe(self) -> str:
        return (f"top-1 agreement with eager fp32 {self.agreement:.1%} (needs >= {MIN_AGREEMENT:.0%}), "
                f"test accuracy {self.accuracy:.3f} vs eager {self.eager_accuracy:.3f} "
                f"(allowed drop {MAX_ACCURACY_DROP:.2f}) on {self.images} test images")


class _LogitsAndEmbedding(nn.Module):
    """The graph ONNX gets: one backbone pass, two outputs."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # (B, 3, S, S)
        features = self.model.encode(x)  # (B, D)
        return self.model.head(features), nn.functional.normalize(features, dim=1)  # (B, C), (B, D)


def export_onnx(model: nn.Module, image_size: int, path: Path) -> None:
    """Write ``model`` as ONNX with outputs (logits, embedding) and a dynamic batch axis."""
    example = torch.zeros(2, 3, image_size, image_size)
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of dynamo=True; it is kept for now
        # (module docstring) and torch is pinned, so its warning tells a user nothing to do.
        warnings.simplefilter("ignore", DeprecationWarning)
        _export(model, example, path)


def _export(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    # The exporter puts the module it is given back in that module's mode afterwards: the wrapper
    # is built in training mode, so without the .eval() the caller's model came back training.
    training = model.training
    try:
        torch.onnx.export(
            _LogitsAndEmbedding(model).eval(), (example,), str(path), dynamo=False,
            input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES), opset_version=ONNX_OPSET,
            dynamic_axes={INPUT_NAME: {0: "batch"}, **{name: {0: "batch"} for name in OUTPUT_NAMES}})
    finally:
        model.train(training)


def _batches(paths: list[Path], image_size: int) -> list[torch.Tensor]:
    """Cleaned images -> EvalPreset tensors in batches of :data:`GATE_BATCH`, as evaluation reads them."""
    from PIL import Image

    preset = EvalPreset(image_size)
    tensors = []
    for path in paths:
        with Image.open(path) as img:
            tensors.append(preset(img))  # (3, S, S)
    return [torch.stack(tensors[i:i + GATE_BATCH]) for i in range(0, len(tensors), GATE_BATCH)]


def gate(run_dir: Path, model_dir: Path, test: list[torch.Tensor], labels: list[int]) -> GateResult:
    """Compare the runtime staged in ``model_dir`` with eager fp32 from ``run_dir`` on the test split."""
    model, _, _ = load_trained(run_dir)
    runtime, _, _, _ = load_runtime(model_dir, threads=torch.get_num_threads())
    eager_top, runtime_top, cosines = [], [], []
    with torch.inference_mode():
        for batch in test:
            reference = model(batch)  # (B, C)
            out = runtime(batch)
            eager_top.append(reference.argmax(1))
            runtime_top.append(out.logits.argmax(1))
            cosines.append((embed(model, batch) * out.embedding).sum(1))  # (B,)
    eager_top, runtime_top = torch.cat(eager_top), torch.cat(runtime_top)
    truth = torch.tensor(labels)
    return GateResult(agreement=(eager_top == runtime_top).float().mean().item(),
                      accuracy=(runtime_top == truth).float().mean().item(),
                      eager_accuracy=(eager_top == truth).float().mean().item(),
                      embedding_cosine_min=torch.cat(cosines).min().item(), images=len(truth))


def eager_record(**extra: str) -> dict:
    return {"runtime": EAGER, "engine": "torch", "engine_version": torch.__version__, **extra}


def stage_onnx(runtime: str, run_dir: Path, stage: Path, data_dir: Path) -> dict:
    """Export (and for int8 calibrate) the run's model into ``stage/model.onnx``.

    Returns:
        The ``runtime.json`` record of the build (without the gate's figures).
    """
    import onnxruntime

    model, _, args = load_trained(run_dir)
    began = time.perf_counter()
    fp32 = stage / "model-fp32.onnx"
    export_onnx(model, args["image_size"], fp32)
    record = {"runtime": runtime, "engine": "onnxruntime", "engine_version": onnxruntime.__version__,
              "model_file": ONNX_FILE, "opset": ONNX_OPSET, "execution_provider": "CPUExecutionProvider"}
    if runtime == ONNX_INT8:
        paths, _ = read_split_images(run_dir, data_dir, "train", limit=CALIBRATION_IMAGES)
        record["calibration"] = quantize_int8(fp32, stage / ONNX_FILE, _batches(paths, args["image_size"]))
        fp32.unlink()
    else:
        fp32.replace(stage / ONNX_FILE)
    record["build_seconds"] = round(time.perf_counter() - began, 1)
    return record


def prepare_runtime(runtime: str, run_dir: Path, stage: Path, data_dir: Path) -> dict:
    """Stage ``runtime`` for the run into ``stage`` and prove its accuracy on the test split.

    ``stage`` already holds model_args.json and index_to_name.json; this adds ``runtime.json``
    and, for an ONNX runtime, ``model.onnx``. ``runtime="auto"`` tries the optimised runtimes of
    :data:`aicore.runtime.RUNTIMES` fastest first and keeps the first that passes the gate
    (eager when none does).

    Returns:
        The ``runtime.json`` record written.

    Raises:
        GateError: if ``runtime`` changes the answers more than the gate allows; the message names a
            runtime that passes.
        SplitError: if the run's dataset or split cannot be read.
    """
    if runtime == EAGER:
        return _write_record(stage, eager_record())
    image_size = load_trained(run_dir)[2]["image_size"]
    test_paths, labels = read_split_images(run_dir, data_dir, "test")
    test = _batches(test_paths, image_size)
    candidates = [r for r in RUNTIMES if r != EAGER] if runtime == AUTO else [runtime]
    failures = []
    for candidate in candidates:
        record = _build_and_gate(candidate, run_dir, stage, data_dir, test, labels)
        if record["accuracy_gate"]["passed"]:
            return record
        failures.append(f"{candidate}: {record['accuracy_gate']['summary']}")
        (stage / ONNX_FILE).unlink()
    if runtime == AUTO:
        logger.warning("no optimised runtime passed the accuracy gate (%s); using eager",
                       "; ".join(failures))
        return _write_record(stage, eager_record(note="optimised runtimes failed the accuracy gate: "
                                                      + "; ".join(failures)))
    alternative = _passing_alternative(runtime, run_dir, stage, data_dir, test, labels)
    (stage / RUNTIME_FILE).unlink()
    raise GateError(f"runtime {runtime} fails the accuracy gate for {run_dir}: "
                    f"{failures[0].split(': ', 1)[1]}; use RUNTIME={alternative} instead")


def _build_and_gate(runtime: str, run_dir: Path, stage: Path, data_dir: Path,
                    test: list[torch.Tensor], labels: list[int]) -> dict:
    record = _write_record(stage, stage_onnx(runtime, run_dir, stage, data_dir))
    result = gate(run_dir, stage, test, labels)
    record["accuracy_gate"] = {**result.as_dict(), "passed": result.passed, "summary": result.describe()}
    logger.info("%s: %s -> %s", runtime, result.describe(), "passed" if result.passed else "FAILED")
    return _write_record(stage, record)


def _passing_alternative(runtime: str, run_dir: Path, stage: Path, data_dir: Path,
                         test: list[torch.Tensor], labels: list[int]) -> str:
    """The fastest runtime slower than ``runtime`` that passes the gate (eager always does)."""
    for other in RUNTIMES[RUNTIMES.index(runtime) + 1:]:
        if other == EAGER:
            break
        passed = _build_and_gate(other, run_dir, stage, data_dir, test, labels)["accuracy_gate"]["passed"]
        (stage / ONNX_FILE).unlink()
        if passed:
            return other
    return EAGER


def _write_record(stage: Path, record: dict) -> dict:
    (stage / RUNTIME_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record
