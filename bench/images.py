"""Benchmark inputs: photo-sized JPEGs and PNGs (640x480 to 1600x1200), deterministic from a seed.

Served traffic is phone/camera photos, not 128-px thumbnails: decoding and resizing them is a real
part of the cost, so the benchmark pays it too. The pictures are smooth gradients with shapes and
mild noise, which compress like photos (JPEG ~100-300 KB, PNG ~1-3 MB at 1600x1200).
"""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SIZES = ((640, 480), (1024, 768), (1280, 960), (1600, 1200))


def _photo(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(40, 215, size=3)
    slope = rng.uniform(-0.08, 0.08, size=(3, 2))
    channels = [base[c] + slope[c, 0] * xx + slope[c, 1] * yy for c in range(3)]
    arr = np.stack(channels, axis=-1) + rng.normal(0, 6, size=(height, width, 3))
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        x0, y0 = rng.uniform(0, width * 0.8), rng.uniform(0, height * 0.8)
        w, h = rng.uniform(0.1, 0.4) * width, rng.uniform(0.1, 0.4) * height
        colour = tuple(int(v) for v in rng.integers(0, 256, size=3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((x0, y0, x0 + w, y0 + h), fill=colour)
    return img


def make_bench_images(out_dir: Path, seed: int = 0) -> list[Path]:
    """Write one JPEG and one PNG per size in :data:`SIZES`; reuse files already there."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for width, height in SIZES:
        img = _photo(rng, width, height)
        for ext, kwargs in (("jpg", {"quality": 90}), ("png", {"compress_level": 6})):
            path = out_dir / f"photo_{width}x{height}.{ext}"
            if not path.exists():
                tmp = path.with_suffix(".tmp")
                img.save(tmp, format="JPEG" if ext == "jpg" else "PNG", **kwargs)
                tmp.replace(path)
            paths.append(path)
    return paths


def content_type(path: Path) -> str:
    return "image/png" if Path(path).suffix.lower() == ".png" else "image/jpeg"
