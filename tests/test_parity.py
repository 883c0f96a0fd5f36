"""Training and serving turn the same image bytes into the same tensor.

Training path: ``python -m training.prepare --image-folder`` cleans each file into a PNG, and the
training dataset reads that PNG through ``EvalPreset`` (validation, test, ``make evaluate``).
Serving path: the TorchServe handler's ``preprocess`` on the raw bytes of the same file.
"""

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.support.models import make_model_dir
from aicore.presets import IMAGE_SIZE, EvalPreset
from handler.image_handler import ImageClassifierHandler
from tests.support.handler import make_context
from training import prepare
from common.dataset_format import read_clean_dir
from training.dataset import MarketplaceImageDataset

CATEGORY = "Home & Garden"


def noise(width: int, height: int, channels: int, seed: int, dtype=np.uint8, high: int = 256):
    shape = (height, width, channels) if channels > 1 else (height, width)
    return np.random.default_rng(seed).integers(0, high, size=shape).astype(dtype)


def encode(img: Image.Image, fmt: str, **save_kw: object) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, fmt, **save_kw)
    return buffer.getvalue()


def exif_rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    return encode(Image.fromarray(noise(150, 100, 3, seed=5)), "JPEG", exif=exif)


def palette_png() -> bytes:
    img = Image.fromarray(noise(64, 48, 3, seed=6)).convert("P", palette=Image.Palette.ADAPTIVE)
    return encode(img, "PNG", transparency=0)


def rgba_png() -> bytes:
    pixels = noise(211, 99, 4, seed=7)
    pixels[:40, :, 3] = 0  # a fully transparent band: must become white on both sides
    return encode(Image.fromarray(pixels, "RGBA"), "PNG")


# Odd sizes, every aspect ratio and the modes listing photos arrive in.
CASES = {
    "rgb_odd.jpg": lambda: encode(Image.fromarray(noise(301, 157, 3, seed=1)), "JPEG", quality=90),
    "grey_tall.jpg": lambda: encode(Image.fromarray(noise(77, 203, 1, seed=2)), "JPEG"),  # L
    "cmyk.jpg": lambda: encode(Image.fromarray(noise(120, 90, 3, seed=3)).convert("CMYK"),
                                  "JPEG"),
    "large_photo.jpg": lambda: encode(Image.fromarray(noise(1601, 1199, 3, seed=4)), "JPEG"),
    "exif_rotated.jpg": exif_rotated_jpeg,
    "palette.png": palette_png,
    "rgba.png": rgba_png,
    "grey_alpha.png": lambda: encode(Image.fromarray(noise(33, 95, 2, seed=8)), "PNG"),  # LA
    "sixteen_bit.png": lambda: encode(
        Image.fromarray(noise(93, 71, 1, seed=9, dtype=np.uint16, high=65536)), "PNG"),  # I;16
    "exact_size.png": lambda: encode(Image.fromarray(noise(IMAGE_SIZE, IMAGE_SIZE, 3, seed=10)),
                                     "PNG"),
    "tiny.webp": lambda: encode(Image.fromarray(noise(17, 9, 3, seed=11)), "WEBP", lossless=True),
}


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An image-folder tree ROOT/<category>/<file> holding every case."""
    root = tmp_path_factory.mktemp("raw")
    (root / CATEGORY).mkdir()
    for name, make in CASES.items():
        (root / CATEGORY / name).write_bytes(make())
    return root


@pytest.fixture(scope="module")
def training_tensors(sources: Path, tmp_path_factory: pytest.TempPathFactory
                     ) -> dict[str, torch.Tensor]:
    """file name -> the tensor training's evaluation sees (prepare, then the dataset)."""
    out = tmp_path_factory.mktemp("clean") / "data"
    prepare.main(prepare.get_args_parser().parse_args(
        ["--image-folder", str(sources), "--out", str(out), "--workers", "1"]))
    data = read_clean_dir(out)
    dataset = MarketplaceImageDataset(data, None, EvalPreset(data.image_size))
    return {Path(image_id).name: dataset[i][0] for i, image_id in enumerate(dataset.image_ids)}


@pytest.fixture(scope="module")
def handler(tmp_path_factory: pytest.TempPathFactory):
    model_dir = make_model_dir(tmp_path_factory.mktemp("model"), "cnn", ["a", "b"], IMAGE_SIZE)
    threads = torch.get_num_threads()
    service = ImageClassifierHandler()
    service.initialize(make_context(model_dir))
    yield service
    torch.set_num_threads(threads)


def test_prepare_keeps_every_case(training_tensors):
    assert sorted(training_tensors) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_preprocess_matches_training(handler, sources, training_tensors, name):
    raw = (sources / CATEGORY / name).read_bytes()

    [served] = handler.preprocess([{"body": raw}])

    assert served.shape == (3, IMAGE_SIZE, IMAGE_SIZE)
    assert served.dtype == torch.float32
    assert torch.equal(served, training_tensors[name])


def test_preprocess_differs_between_images(handler, sources, training_tensors):
    # Guards the test itself: the tensors carry the picture, so equality above means something.
    raw = (sources / CATEGORY / "rgb_odd.jpg").read_bytes()
    [served] = handler.preprocess([{"body": raw}])
    assert not torch.equal(served, training_tensors["grey_tall.jpg"])
