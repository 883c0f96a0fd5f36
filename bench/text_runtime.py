"""``make bench-text`` (last step): does ONNX Runtime speed up the text model? Measured, not assumed.

    python -m bench.text_runtime [--listings 2000] [--repeats 3]

The image models gain 1.5-4x from ONNX Runtime (docs/serving.md, "Runtimes"); the text model is an
``EmbeddingBag`` + a 64 x 13 head, so its forward pass is a table lookup and a tiny matrix product.
This exports the served computation (embedding bag -> head -> softmax) with the same TorchScript
exporter ``handler.runtimes`` uses and times, per listing on one thread, ``collate`` + forward +
softmax for eager PyTorch and ONNX Runtime fp32 at batch 1 and 16 (cleaning and hashing are left
out: both runtimes share them). It also checks that both give the same probabilities.
"""

import argparse
import io
import json
import statistics
import time

import numpy as np
import torch
from torch import nn

from aicore.models import build_model, model_args
from aicore.text import DEFAULT_BUCKETS, DEFAULT_CHAR_NGRAMS, MAX_TOKENS, TextBatch, collate_ids
from common.cli import positive_int, run

NUM_CLASSES = 13
BATCH_SIZES = (1, 16)


class Served(nn.Module):
    """What the text handler computes after hashing: probabilities from ids + offsets."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:  # -> (B, 13)
        return torch.softmax(self.model(TextBatch(ids, offsets)), dim=1)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.text_runtime",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--listings", type=positive_int, default=2000,
                        help="synthetic listings per timing (default: 2000)")
    parser.add_argument("--repeats", type=positive_int, default=3,
                        help="timings per runtime and batch size (default: 3)")
    parser.add_argument("--buckets", type=positive_int, default=DEFAULT_BUCKETS,
                        help=f"hash buckets of the embedding table (default: {DEFAULT_BUCKETS})")
    return parser


def text_model(buckets: int) -> nn.Module:
    text = {"buckets": buckets, "char_ngrams": list(DEFAULT_CHAR_NGRAMS), "word_ngrams": 2,
            "max_tokens": MAX_TOKENS}
    # idf=True: the idf-weighted mean that training.train's text runs serve
    return build_model(**model_args("text", NUM_CLASSES, text=text, idf=True)).eval()


def onnx_session(served: nn.Module, example: TextBatch):
    """An ONNX Runtime session (one thread) for ``served``, exported as ``handler.runtimes`` does."""
    import onnxruntime as ort

    buffer = io.BytesIO()
    torch.onnx.export(served, (example.ids, example.offsets), buffer, dynamo=False,
                      input_names=["ids", "offsets"], output_names=["probabilities"],
                      dynamic_axes={"ids": {0: "tokens"}, "offsets": {0: "batch"},
                                    "probabilities": {0: "batch"}}, opset_version=17)
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level = 3  # the exporter's Loop renaming warnings are harmless
    return ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])


def per_listing_ms(predict, ids: list[list[int]], batch_size: int) -> float:
    started = time.perf_counter()
    for i in range(0, len(ids), batch_size):
        predict(collate_ids(ids[i:i + batch_size]))
    return 1000 * (time.perf_counter() - started) / len(ids)


def main(args: argparse.Namespace) -> dict:
    from bench.text import synthetic_listings

    torch.set_num_threads(1)
    model = text_model(args.buckets)
    listings, _ = synthetic_listings(args.listings, seed=1)
    ids = [model.featurizer.encode(*listing) for listing in listings]
    served = Served(model).eval()
    session = onnx_session(served, collate_ids(ids[:4]))

    def eager(batch: TextBatch) -> list:
        with torch.inference_mode():
            return served(batch.ids, batch.offsets).tolist()

    def onnx(batch: TextBatch) -> list:
        return session.run(None, {"ids": batch.ids.numpy(), "offsets": batch.offsets.numpy()})[0].tolist()

    check = collate_ids(ids[:64])
    max_diff = float(np.abs(np.asarray(eager(check)) - np.asarray(onnx(check))).max())
    results: dict = {"listings": args.listings, "max_probability_difference": max_diff}
    print(f"ONNX Runtime vs eager on 64 listings: max probability difference {max_diff:.1e}")
    for batch_size in BATCH_SIZES:
        for name, predict in (("eager", eager), ("onnx-fp32", onnx)):
            times = [per_listing_ms(predict, ids, batch_size) for _ in range(args.repeats)]
            results[f"{name}_batch{batch_size}_ms_per_listing"] = times
            print(f"batch {batch_size:>2} {name:<9} {statistics.median(times):.3f} ms per listing "
                  f"(min {min(times):.3f}, max {max(times):.3f}; collate + forward + softmax)")
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    run(main, get_args_parser())
