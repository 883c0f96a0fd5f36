"""Pack the pretrained query encoder into ``model_store/query.mar`` on the fastest runtime that
passes the accuracy gate.

    python -m handler.query_archive --out model_store --data data/demo/clean   # part of `make archive`

The archive holds ``query_handler.py`` (:mod:`handler.query_handler`), the encoder's
``tokenizer.json``, ``runtime.json`` and, by runtime, ``model.safetensors`` + ``config.json``
(eager) or ``model.onnx`` (``onnx-fp32``; ``onnx-int8``: the same graph with int8 weights,
ONNX Runtime's dynamic quantisation, :func:`quantize_int8`), plus ``aicore`` and
``common``. ``--runtime auto`` tries ``onnx-int8``, then ``onnx-fp32``, and keeps the first whose
vectors keep a cosine >= :data:`MIN_COSINE` to eager PyTorch on every gate text (listing texts of
``--data`` and sample queries) and, when the judged benchmark is there (``--relevance``, default
``data/relevance`` from ``make relevanceset``), whose dense dev nDCG@10 is within 0.01 of eager's
(:mod:`handler.query_gate`); eager when none does. Without the benchmark the nDCG half is not
measured, and the output and ``runtime.json`` say so. The version is
``<date>-<sha8>-<runtime>`` with the weights' SHA-256 prefix, which the proxy compares with the
index's ``model_sha256``.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
import time
import warnings
from pathlib import Path

from aicore.sentence import (ONNX_FILE, ONNX_OUTPUT, RUNTIME_FILE, TOKENIZER_FILE, EncoderError,
                             OnnxSentenceEncoder, SentenceEncoder, listing_text, mean_pool,
                             resolve_encoder, weights_file)
from common.catalogue import format_version
from common.cli import UserError, run
from common.dataset_format import PRODUCTS_FILE
from common.torchserve import QUERY_MODEL as SERVED_MODEL
from handler.archive import pack_shared_code, private_tempdir
from handler.query_gate import RELEVANCE_DIR, JudgedQueries, NdcgGate, find_judged, not_measured

logger = logging.getLogger(__name__)

HANDLER_FILE = Path(__file__).with_name("query_handler.py")
EAGER, ONNX_FP32, ONNX_INT8 = "eager", "onnx-fp32", "onnx-int8"
RUNTIMES = (ONNX_INT8, ONNX_FP32, EAGER)  # fastest first (docs/relevance.md)
MIN_COSINE = 0.99  # every gate text's vector vs eager fp32
GATE_TEXTS = 256
ONNX_OPSET = 17
SAMPLE_QUERIES = ("sofa", "red leather sofa bed", "something to edit my holiday videos",
                  "a game for kids", "second hand road bike in good condition", "kettle")


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m handler.query_archive",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoder", metavar="NAME_OR_PATH",
                        help="the encoder (default: all-MiniLM-L6-v2 from its wheel)")
    parser.add_argument("--out", type=Path, default=Path("model_store"),
                        help="model store the .mar is written to (default: model_store)")
    parser.add_argument("--runtime", choices=("auto", *RUNTIMES), default="auto",
                        help="auto = the fastest that passes the gate (default: auto)")
    parser.add_argument("--data", type=Path,
                        help="a cleaned dataset whose listing texts the gate compares on "
                             "(default: sample queries only)")
    parser.add_argument("--relevance", type=Path, default=RELEVANCE_DIR,
                        help="the judged benchmark (clean/ + queries/dev.{tsv,qrels}) for the "
                             "nDCG half of the gate; skipped, and said so, when it is missing "
                             f"(default: {RELEVANCE_DIR})")
    return parser


def main(args: argparse.Namespace) -> Path:
    judged, why = find_judged(args.relevance)
    path, record = build_query_archive(args.encoder, args.out, args.runtime, gate_texts(args.data),
                                       judged, why)
    print(f"{path}  version {record['version']}{describe_gate(record.get('accuracy_gate'))}")
    return path


def describe_gate(gate: dict | None) -> str:
    """The gate's figures in words, for the command's output."""
    if not gate:
        return " (eager: the reference itself, no gate)"
    said = f" (min cosine to eager {gate['cosine_min']:.4f} on {gate['texts']} texts"
    ndcg = gate.get("ndcg", {})
    if ndcg.get("measured"):
        return (f"{said}; dense dev nDCG@10 {ndcg['runtime']:.4f} vs eager {ndcg['eager']:.4f} "
                f"on {ndcg['queries']} judged queries, drop {ndcg['drop']:+.4f} "
                f"<= {ndcg['max_drop']})")
    return f"{said}; dev nDCG@10 NOT MEASURED: {ndcg.get('why', 'no judged queries')})"


def gate_texts(data: Path | None) -> list[str]:
    """Listing texts of ``data`` (at most :data:`GATE_TEXTS`, the longest too) and sample queries."""
    texts = list(SAMPLE_QUERIES)
    if data is None:
        return texts
    import pandas as pd

    try:
        products = pd.read_csv(Path(data) / PRODUCTS_FILE, dtype=str, keep_default_na=False)
        rows = zip(products["product_name"], products["product_description"], strict=True)
    except (OSError, KeyError, ValueError) as exc:
        raise UserError(f"--data {data}: cannot read its listing texts ({exc})") from None
    return texts + [listing_text(title, description) for title, description in rows][:GATE_TEXTS]


def build_query_archive(encoder: str | None, out_dir: Path, runtime: str = "auto",
                        texts: list[str] | None = None, judged: JudgedQueries | None = None,
                        no_judged_why: str = "no judged queries given") -> tuple[Path, dict]:
    """Stage, gate and pack the encoder into ``out_dir/query.mar``; returns it and its record.
    ``judged``: the dev queries of the nDCG half of the gate (None: not measured, because
    ``no_judged_why``).

    Raises:
        UserError: a bad encoder, or a named runtime that fails the gate (nothing written then).
    """
    from model_archiver.model_archiver_config import ModelArchiverConfig
    from model_archiver.model_packaging import generate_model_archive

    try:
        folder, name, sha = resolve_encoder(encoder)
    except EncoderError as exc:
        raise UserError(f"--encoder: {exc}") from None
    texts = texts or list(SAMPLE_QUERIES)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".query-", dir=out_dir) as tmp:
        stage = Path(tmp) / "extra"
        record, serialized = stage_encoder(folder, stage, runtime, texts, judged, no_judged_why)
        # sha is weights_sha256 of that same file: the version names these weights
        record.update(encoder=name, sha256=sha,
                      version=format_version(weights_file(folder), record["runtime"]))
        (stage / RUNTIME_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        config = ModelArchiverConfig(model_name=SERVED_MODEL, handler=str(HANDLER_FILE),
                                     version=record["version"], serialized_file=str(serialized),
                                     extra_files=str(stage), export_path=tmp, force=True)
        with private_tempdir(Path(tmp) / "staging"):
            generate_model_archive(config)
        target = out_dir / f"{SERVED_MODEL}.mar"
        (Path(tmp) / f"{SERVED_MODEL}.mar").replace(target)  # atomic
    return target, record


def stage_encoder(folder: Path, stage: Path, runtime: str, texts: list[str],
                  judged: JudgedQueries | None = None,
                  no_judged_why: str = "no judged queries given") -> tuple[dict, Path]:
    """Lay out the archive's files in ``stage``; returns the runtime record and the model file
    the archive serialises (the weights for eager, ``stage/model.onnx`` for ONNX). An ONNX
    runtime must pass the cosine gate and, with ``judged``, the nDCG one."""
    stage.mkdir(parents=True)
    pack_shared_code(stage)
    shutil.copy2(folder / TOKENIZER_FILE, stage / TOKENIZER_FILE)
    eager = SentenceEncoder(folder)
    base = {"token_budget": eager.token_budget, "dim": eager.dim}
    if runtime == EAGER:
        return _eager(folder, stage, base), weights_file(folder)
    failures = []
    ndcg_gate = None if judged is None else NdcgGate(eager, judged)  # eager's side, once
    for candidate in (ONNX_INT8, ONNX_FP32) if runtime == "auto" else (runtime,):
        record = _onnx(eager, stage, candidate, texts, base, ndcg_gate, no_judged_why)
        if record["accuracy_gate"]["passed"]:
            return {**record, "rejected": failures} if failures else record, stage / ONNX_FILE
        failures.append(f"{candidate}: {_failure(record['accuracy_gate'])}")
        (stage / ONNX_FILE).unlink()
    if runtime != "auto":
        raise UserError(f"query.mar: runtime {runtime} fails the accuracy gate ({failures[0]}); "
                        "use --runtime eager or onnx-fp32")
    logger.warning("no ONNX runtime passed the gate (%s); using eager", "; ".join(failures))
    return _eager(folder, stage, {**base, "note": "; ".join(failures)}), weights_file(folder)


def _eager(folder: Path, stage: Path, base: dict) -> dict:
    """Eager PyTorch reads the transformer's ``config.json`` next to the weights (the archive's
    serialized file, packed from the encoder folder as it is)."""
    shutil.copy2(folder / "config.json", stage / "config.json")
    return {"runtime": EAGER, **base}


def _failure(gate: dict) -> str:
    ndcg = gate.get("ndcg", {})
    if gate["cosine_min"] < gate["min_cosine"]:
        return f"min cosine {gate['cosine_min']:.4f}, needs >= {gate['min_cosine']}"
    return (f"dev nDCG@10 {ndcg['runtime']:.4f} vs eager {ndcg['eager']:.4f}, a drop over "
            f"{ndcg['max_drop']}")


def _onnx(eager: SentenceEncoder, stage: Path, runtime: str, texts: list[str], base: dict,
          ndcg_gate: NdcgGate | None = None, no_judged_why: str = "no judged queries given"
          ) -> dict:
    began = time.perf_counter()
    fp32 = stage.parent / "model-fp32.onnx"
    export_onnx(eager, fp32)
    if runtime == ONNX_INT8:
        quantize_int8(fp32, stage / ONNX_FILE)
        fp32.unlink()
    else:
        fp32.replace(stage / ONNX_FILE)
    served = OnnxSentenceEncoder(stage, stage / ONNX_FILE, eager.token_budget, eager.dim)
    cosines = (served.encode(texts) * eager.encode(texts)).sum(1)  # (N,)
    gate = {"texts": len(texts), "cosine_min": round(float(cosines.min()), 5),
            "cosine_mean": round(float(cosines.mean()), 5), "min_cosine": MIN_COSINE,
            "passed": bool(cosines.min() >= MIN_COSINE)}
    if not gate["passed"]:  # nDCG only decides between runtimes whose vectors are close
        gate["ndcg"] = not_measured("the cosine half failed")
    elif ndcg_gate is None:
        gate["ndcg"] = not_measured(no_judged_why)
    else:
        gate["ndcg"] = ndcg_gate.check(served)
        gate["passed"] = gate["ndcg"]["passed"]
    logger.info("%s: %s", runtime, gate)
    return {"runtime": runtime, **base, "model_file": ONNX_FILE, "opset": ONNX_OPSET,
            "build_seconds": round(time.perf_counter() - began, 1), "accuracy_gate": gate}


def quantize_int8(fp32: Path, out: Path) -> None:
    """Dynamic int8 quantisation of the exported encoder: int8 per-channel weights for the
    MatMuls, activations quantised per call, except the feed-forward output projections.

    Measured on the AppStream benchmark's texts (docs/relevance.md), min / mean cosine to eager:
    ONNX Runtime's defaults (embeddings and every MatMul, per-tensor) 0.89 / 0.96; MatMuls only
    per-tensor 0.92 / 0.96; per-channel 0.989 / 0.994; per-channel with reduce_range 0.981 /
    0.993; per-channel without the 6 feed-forward output MatMuls 0.993 / 0.997 (this one).
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    matmuls = [n.name for n in onnx.load(str(fp32)).graph.node if n.op_type == "MatMul"]
    # ".../layer.N/output/dense/MatMul": the FFN's 1536 -> 384 projection, whose inputs (after GELU)
    # have the widest range; ".../attention/output/dense" stays quantised.
    keep_fp32 = [name for name in matmuls if "/output/dense/" in name and "/attention/" not in name]
    quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["MatMul"], nodes_to_exclude=keep_fp32)


def _pooled(eager: SentenceEncoder):
    """The graph ONNX gets: transformer, mean pooling, normalisation; ``(B, T)`` -> ``(B, H)``."""
    import torch

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = eager.model

        def forward(self, input_ids, attention_mask):  # (B, T), (B, T)
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask,
                                token_type_ids=torch.zeros_like(input_ids)).last_hidden_state
            return mean_pool(hidden, attention_mask)  # (B, H)

    return Pooled().eval()


def export_onnx(eager: SentenceEncoder, path: Path) -> None:
    """Write the encoder as ONNX with dynamic batch and sequence axes."""
    import torch

    ids = torch.ones(2, 8, dtype=torch.int64)
    axes = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
            ONNX_OUTPUT: {0: "batch"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation: torch is pinned
        torch.onnx.export(_pooled(eager), (ids, torch.ones_like(ids)), str(path), dynamo=False,
                          input_names=["input_ids", "attention_mask"], output_names=[ONNX_OUTPUT],
                          opset_version=ONNX_OPSET, dynamic_axes=axes)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    run(main, get_args_parser())
