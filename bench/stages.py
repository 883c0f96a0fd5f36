"""Where one served request's time goes: the handler's stages, timed one by one per bench image.

Stages, exactly as :mod:`handler.image_handler` runs them (the same :mod:`aicore.presets` functions):
decode (``decode_image`` with the JPEG reduced-size draft), clean (``to_rgb`` + ``resize_pad``),
tensor (the eval preset's ToImage/ToDtype/Normalize), forward (the archive's runtime, batch 1) and
JSON (the answer's dict and ``json.dumps``). Each figure is the median of ``repeats`` timings in
milliseconds, so one slow moment of a shared machine does not decide it.
"""

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from aicore.presets import EvalPreset, decode_image, resize_pad, to_rgb
from aicore.runtime import load_runtime

STAGES = ("decode", "clean", "tensor", "forward", "json")


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return round(statistics.median(times) * 1000, 2)


def measure_stages(model_dir: Path, images: list[Path], repeats: int = 5) -> list[dict]:
    """Per image: ``{"image", "decoded_size", <stage>: ms, ...}`` with one torch thread."""
    torch.set_num_threads(1)
    runtime, class_names, args, _ = load_runtime(model_dir)
    size = int(args["image_size"])
    to_tensor = EvalPreset(size).transforms  # the preset's tensor steps, without its clean_image
    return [_image_stages(Path(p), runtime, class_names, size, to_tensor, repeats) for p in images]


def _image_stages(path: Path, runtime, class_names: list[str], size: int, to_tensor, repeats: int) -> dict:
    from common.handling import prediction

    data = path.read_bytes()
    decoded = decode_image(data, draft_size=size)
    clean = resize_pad(to_rgb(decoded), size)
    tensor = to_tensor(clean).unsqueeze(0)  # (1, 3, S, S)
    probabilities = torch.softmax(runtime(tensor).logits, dim=1)[0]  # (C,)
    return {
        "image": path.name, "decoded_size": list(decoded.size),
        "decode": _median_ms(lambda: decode_image(data, draft_size=size), repeats),
        "clean": _median_ms(lambda: resize_pad(to_rgb(decoded), size), repeats),
        "tensor": _median_ms(lambda: to_tensor(clean), repeats),
        "forward": _median_ms(lambda: runtime(tensor), repeats),
        "json": _median_ms(lambda: json.dumps(prediction(probabilities, class_names)), repeats),
    }


def markdown(rows: list[dict]) -> list[str]:
    lines = ["", "| image | decoded at | " + " | ".join(f"{s} ms" for s in STAGES) + " |",
             "|---|---|" + "---|" * len(STAGES)]
    for r in rows:
        lines.append(f"| {r['image']} | {r['decoded_size'][0]}x{r['decoded_size'][1]} | "
                     + " | ".join(f"{r[s]:.2f}" for s in STAGES) + " |")
    return lines
