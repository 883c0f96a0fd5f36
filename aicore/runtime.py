"""The inference runtime inside an archive: eager PyTorch, or ONNX Runtime in fp32 or int8.

An archive built with ``make archive RUNTIME=...`` carries ``runtime.json`` (:data:`RUNTIME_FILE`)
naming its runtime and, for the ONNX runtimes, ``model.onnx`` (:data:`ONNX_FILE`), exported and (for
int8) quantised at build time by ``handler.runtimes``. The worker calls :func:`load_runtime` and gets
one callable, ``runtime(batch) -> Outputs(logits, embedding)``, whatever the engine and whatever
the kind of model: ``batch`` is the model's own input (an image tensor, a
:class:`aicore.text.TextBatch`, a :class:`aicore.text_models.ListingBatch`); the ONNX runtimes
take image tensors (the text models are served eager, ``handler.archive``). The handler's
preprocessing (:mod:`aicore.presets`) is the same for every runtime.

Every runtime returns the embedding too (the layer before the head, L2-normalised, as
:func:`aicore.models.embed`), computed in the same pass as the logits: the exported graph has both
outputs.

Measured on a 2-core AVX2 CPU (ResNet-50, 128 px, batch 4, one thread, docs/serving.md):
``onnx-int8`` is the fastest, ``onnx-fp32`` next, eager channels-last the slowest.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from aicore.categories import INDEX_TO_NAME_FILE, read_index_to_name
from aicore.models import MODEL_ARGS_FILE, load_trained

RUNTIME_FILE = "runtime.json"
ONNX_FILE = "model.onnx"
EAGER = "eager"
ONNX_FP32 = "onnx-fp32"
ONNX_INT8 = "onnx-int8"
# Fastest first, as measured (docs/serving.md); `make archive`'s default takes the first one that
# passes the accuracy gate.
RUNTIMES = (ONNX_INT8, ONNX_FP32, EAGER)
# Names of the exported graph's input and outputs.
INPUT_NAME = "image"
OUTPUT_NAMES = ("logits", "embedding")


@dataclass(frozen=True)
class Outputs:
    """One forward pass over a batch."""

    logits: torch.Tensor  # (B, C)
    embedding: torch.Tensor  # (B, D), unit L2 norm


class EagerRuntime:
    """The trained PyTorch model itself (images in channels-last memory layout)."""

    name = EAGER

    def __init__(self, model: torch.nn.Module, device: torch.device) -> None:
        # channels_last: ResNet-50 ran as fast (batch 4) or 5-10 % faster (batch 1) than with the
        # default layout on this CPU; same results up to float rounding.
        self.model = model.to(device, memory_format=torch.channels_last).eval()
        self.device = device

    def __call__(self, batch) -> Outputs:  # the model's input, B listings -> Outputs
        if isinstance(batch, torch.Tensor):  # (B, 3, S, S)
            batch = batch.to(self.device, memory_format=torch.channels_last)
        else:  # a TextBatch or ListingBatch
            batch = batch.to(self.device)
        with torch.inference_mode():
            features = self.model.encode(batch)  # (B, D)
            logits = self.model.head(features)  # (B, C)
            return Outputs(logits.float().cpu(), F.normalize(features.float(), dim=1).cpu())


class OnnxRuntime:
    """An ONNX Runtime session over the archive's ``model.onnx`` (fp32 or int8 QDQ), on the CPU."""

    def __init__(self, name: str, path: Path, threads: int) -> None:
        import onnxruntime as ort  # only archives of an ONNX runtime need it installed

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # No spin-waiting: on a small shared CPU a spinning thread takes a core from the other
        # workers (TorchServe runs several).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.name = name

    def __call__(self, batch: torch.Tensor) -> Outputs:  # (B, 3, S, S) -> Outputs
        array = np.ascontiguousarray(batch.detach().cpu().numpy(), dtype=np.float32)
        logits, embedding = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: array})
        return Outputs(torch.from_numpy(logits), torch.from_numpy(embedding))


def read_record(model_dir: Path) -> dict:
    """The archive's ``runtime.json``; an archive without one (built before runtimes) is eager.

    Raises:
        ValueError: if the record names an unknown runtime.
    """
    path = Path(model_dir) / RUNTIME_FILE
    record = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {"runtime": EAGER}
    if record.get("runtime") not in RUNTIMES:
        raise ValueError(f"{path} names runtime {record.get('runtime')!r}; known runtimes: "
                         f"{', '.join(RUNTIMES)}")
    return record


def load_runtime(model_dir: Path, threads: int = 1, device: str | torch.device = "cpu"
                 ) -> tuple[EagerRuntime | OnnxRuntime, list[str], dict, dict]:
    """Load the runtime an archive (or training run) asks for.

    Args:
        model_dir: an unpacked archive or a run directory (model.pt, model_args.json,
            index_to_name.json, and runtime.json + model.onnx for an ONNX runtime).
        threads: CPU threads for the ONNX Runtime session (eager uses torch's setting).
        device: where eager runs; an ONNX runtime always runs on the CPU.

    Returns:
        ``(runtime, class_names, model_args, record)``.

    Raises:
        FileNotFoundError, ValueError: if the files are missing or do not fit together.
    """
    model_dir = Path(model_dir)
    record = read_record(model_dir)
    if record["runtime"] == EAGER:
        model, class_names, args = load_trained(model_dir, "cpu")
        return EagerRuntime(model, torch.device(device)), class_names, args, record
    args = json.loads((model_dir / MODEL_ARGS_FILE).read_text(encoding="utf-8"))
    class_names = read_index_to_name(model_dir / INDEX_TO_NAME_FILE)
    onnx_path = model_dir / record.get("model_file", ONNX_FILE)
    if not onnx_path.is_file():
        raise FileNotFoundError(f"{onnx_path} is missing: {model_dir / RUNTIME_FILE} names runtime "
                                f"{record['runtime']!r}, which runs that file")
    return OnnxRuntime(record["runtime"], onnx_path, threads), class_names, args, record
