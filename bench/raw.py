"""The ceiling: the served model's own throughput, in-process, without HTTP.

It runs the very handler TorchServe runs (``handler.image_handler.ImageClassifierHandler``, or
``handler.listing_handler.ListingClassifierHandler`` for the text model) over the unpacked
``.mar``: decode + preprocess + forward + softmax + JSON, with the worker's torch thread count, in
as many processes as TorchServe has workers for the model. For an image model it also times the
forward pass alone on ready tensors, to show where the time goes.
"""

import multiprocessing as mp
import os
import time
import zipfile
from pathlib import Path

import torch

from common.torchserve import ENV_TORCH_THREADS


def unpack_archive(mar: Path, dest: Path) -> Path:
    """Unzip a ``.mar`` into ``dest`` (what TorchServe does at load time) and return it."""
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(mar) as archive:
        archive.extractall(dest)
    return dest


HANDLERS = ("image", "listing")  # handler/image_handler.py, handler/listing_handler.py


def _handler(model_dir: Path, batch_size: int, kind: str = "image"):
    from ts.context import Context, RequestProcessor

    from handler.image_handler import ImageClassifierHandler
    from handler.listing_handler import ListingClassifierHandler

    context = Context(Path(model_dir).name, str(model_dir), {"model": {}}, batch_size, None, "0.12.0")
    context.request_processor = [RequestProcessor({}) for _ in range(batch_size)]
    handler = ImageClassifierHandler() if kind == "image" else ListingClassifierHandler()
    handler.initialize(context)
    return handler


def _worker(model_dir: str, images: list[bytes], batch_size: int, threads: int, duration_s: float,
            forward_only: bool, ready: mp.Barrier, out: mp.Queue, kind: str) -> None:
    """One 'worker': loop the handler (or the forward pass alone) on batches until the deadline.
    ``images`` are request bodies: photos, or JSON listings for the listing handler."""
    os.environ[ENV_TORCH_THREADS] = str(threads)
    handler = _handler(Path(model_dir), batch_size, kind)
    if forward_only:
        size = handler.image_size
        tensor = torch.randn(batch_size, 3, size, size)

        def step(_: int) -> None:
            torch.softmax(handler.runtime(tensor).logits, dim=1)  # (B, C), the archive's runtime
    else:
        batches = [[{"body": images[(i + j) % len(images)]} for j in range(batch_size)]
                   for i in range(len(images))]

        def step(i: int) -> None:
            handler.postprocess(handler.inference(handler.preprocess(batches[i % len(batches)])))
    step(0)  # warm-up
    ready.wait()  # every process loaded: start together
    done, i, began = 0, 0, time.perf_counter()
    while time.perf_counter() - began < duration_s:
        step(i)
        done += batch_size
        i += 1
    out.put((done, time.perf_counter() - began))


def throughput(model_dir: Path, images: list[bytes], batch_size: int, threads: int, workers: int,
               duration_s: float, forward_only: bool = False, kind: str = "image") -> float:
    """Requests/s (images, or listings with ``kind="listing"``) of ``workers`` processes running
    the handler pipeline (or, for images, the forward pass alone) side by side, as TorchServe's
    workers do. A listing body is the JSON bytes TorchServe hands over, so the handler parses it."""
    if kind not in HANDLERS:
        raise ValueError(f"unknown handler {kind!r}: choose from {', '.join(HANDLERS)}")
    if forward_only and kind != "image":
        raise ValueError("forward_only times image tensors: only for the image handler")
    ctx = mp.get_context("spawn")  # a fresh interpreter per worker, like TorchServe's
    out, ready = ctx.Queue(), ctx.Barrier(workers)
    procs = [ctx.Process(target=_worker, args=(str(model_dir), images, batch_size, threads,
                                               duration_s, forward_only, ready, out, kind))
             for _ in range(workers)]
    for proc in procs:
        proc.start()
    try:
        results = [out.get(timeout=duration_s + 180) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    return sum(done / elapsed for done, elapsed in results)


def read_images(paths: list[Path]) -> list[bytes]:
    return [Path(p).read_bytes() for p in paths]


