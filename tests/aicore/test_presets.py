"""Unit tests of aicore.presets: decoding, cleaning every image mode, and the tensor presets."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from aicore.presets import (IMAGENET_MEAN, IMAGENET_STD, EvalPreset, ImageDecodeError,
                            TrainPreset, clean_image, decode_image, load_image)

SIZE = 64
RED, BLUE, WHITE = (220, 20, 20), (20, 20, 220), (255, 255, 255)


def _encode(img: Image.Image, fmt: str, **save_kw) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, fmt, **save_kw)
    return buffer.getvalue()


def _pixel(img: Image.Image, x: int, y: int) -> np.ndarray:
    return np.asarray(img, dtype=int)[y, x]


def _close(actual: np.ndarray, expected: tuple, tol: int = 4) -> bool:
    return bool(np.all(np.abs(np.asarray(actual) - np.asarray(expected)) <= tol))


def _gradient(dtype: type, low: float, high: float) -> Image.Image:
    """A left-to-right ramp from ``low`` to ``high``: uint16 -> mode I;16, float32 -> mode F."""
    ramp = np.tile(np.linspace(low, high, SIZE), (SIZE, 1))  # (S, S)
    return Image.fromarray(ramp.astype(dtype))


@pytest.mark.parametrize(("mode", "colour", "expected"), [
    ("RGB", (10, 200, 30), (10, 200, 30)),
    ("RGBA", (10, 200, 30, 255), (10, 200, 30)),
    ("LA", (100, 255), (100, 100, 100)),
    ("L", 100, (100, 100, 100)),
    ("1", 0, (0, 0, 0)),
    ("1", 1, WHITE),
    ("CMYK", (255, 0, 0, 0), (0, 255, 255)),
    ("YCbCr", Image.new("RGB", (1, 1), (10, 200, 30)).convert("YCbCr").getpixel((0, 0)),
     (10, 200, 30)),
    ("I;16", 32896, (128, 128, 128)),  # 16-bit mid-grey: 32896 / 257 = 128, not clipped to white
    ("I", 32896, (128, 128, 128)),
])
def test_clean_image_mode_gives_rgb_colour(mode, colour, expected):
    cleaned = clean_image(Image.new(mode, (SIZE, SIZE), colour), SIZE)

    assert cleaned.mode == "RGB"
    assert cleaned.size == (SIZE, SIZE)
    assert _close(_pixel(cleaned, SIZE // 2, SIZE // 2), expected, tol=3)


def test_clean_image_palette_keeps_colours():
    img = Image.new("RGB", (SIZE, SIZE), BLUE)
    img.paste(RED, (0, 0, SIZE // 2, SIZE))
    palette = img.quantize(4)

    cleaned = clean_image(palette, SIZE)

    assert palette.mode == "P"
    assert _close(_pixel(cleaned, 5, 5), RED) and _close(_pixel(cleaned, SIZE - 5, 5), BLUE)


def test_clean_image_sixteen_bit_png_keeps_its_greys():
    data = _encode(_gradient(np.uint16, 0, 65535), "PNG")

    cleaned = np.asarray(load_image(data, SIZE))[:, :, 0]  # (S, S)

    assert cleaned[:, 0].max() <= 5, "the dark end must stay dark"
    assert cleaned[:, -1].min() >= 250
    assert 100 <= cleaned[SIZE // 2, SIZE // 2] <= 155, "16-bit mid-grey came out as black/white"


def test_clean_image_float_mode_stretches_to_full_range():
    cleaned = np.asarray(clean_image(_gradient(np.float32, -3.0, 5.0), SIZE))[:, :, 0]  # (S, S)

    assert cleaned[:, 0].max() <= 5 and cleaned[:, -1].min() >= 250


def test_clean_image_rgba_transparency_composites_on_white():
    img = Image.new("RGBA", (SIZE, SIZE), (0, 0, 0, 0))  # transparent *black*
    img.paste((*RED, 255), (SIZE // 2, 0, SIZE, SIZE // 2))
    img.paste((0, 0, 0, 128), (SIZE // 2, SIZE // 2, SIZE, SIZE))  # half-transparent black

    cleaned = load_image(_encode(img, "PNG"), SIZE)

    assert _close(_pixel(cleaned, 5, 5), WHITE, tol=0), "transparency must become white, not black"
    assert _close(_pixel(cleaned, SIZE - 5, 5), RED, tol=0)
    assert _close(_pixel(cleaned, SIZE - 5, SIZE - 5), (127, 127, 127), tol=2)


def test_clean_image_la_transparency_composites_on_white():
    img = Image.new("LA", (SIZE, SIZE), (0, 0))

    assert _close(_pixel(clean_image(img, SIZE), 5, 5), WHITE, tol=0)


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_load_image_palette_transparency_composites_on_white(fmt):
    img = Image.new("P", (SIZE, SIZE), 0)
    img.putpalette([0, 0, 0, *RED] + [0, 0, 0] * 254)  # index 0 black, index 1 red
    img.paste(1, (SIZE // 2, 0, SIZE, SIZE))

    cleaned = load_image(_encode(img, fmt, transparency=0), SIZE)
    opaque = load_image(_encode(img, fmt), SIZE)

    assert _close(_pixel(cleaned, 5, 5), WHITE, tol=0)
    assert _close(_pixel(cleaned, SIZE - 5, 5), RED, tol=0)
    assert _close(_pixel(opaque, 5, 5), (0, 0, 0), tol=0), "no transparency: black stays black"


def _upright_photo() -> Image.Image:
    """A 120 x 60 blue picture with a red marker in its top-left corner."""
    img = Image.new("RGB", (120, 60), BLUE)
    img.paste(RED, (0, 0, 24, 24))
    return img


# EXIF Orientation -> how a camera stored the upright picture (the inverse of the display fix):
# 6 = "rotate 90 clockwise to display", so the stored pixels are the upright ones turned 90
# counter-clockwise; 8 is the opposite; 3 is upside down.
STORED_AS = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90,
             8: Image.Transpose.ROTATE_270}


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_load_image_exif_orientation_comes_out_upright(orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored = _upright_photo().transpose(STORED_AS[orientation])
    data = _encode(stored, "JPEG", quality=95, exif=exif.tobytes())

    cleaned = load_image(data, SIZE)

    # Upright 120 x 60 -> 64 x 32 content between rows 16 and 47, white above and below.
    assert _close(_pixel(cleaned, SIZE // 2, 4), WHITE, tol=0)
    assert _close(_pixel(cleaned, 3, 19), RED, tol=40), "marker not in the top-left corner"
    assert _close(_pixel(cleaned, SIZE - 4, 19), BLUE, tol=40)
    assert _close(_pixel(cleaned, 3, 44), BLUE, tol=40)


@pytest.mark.parametrize(("width", "height"), [(200, 100), (100, 200)])
def test_clean_image_keeps_aspect_ratio_with_white_padding(width, height):
    cleaned = clean_image(Image.new("RGB", (width, height), RED), SIZE)
    pixels = np.asarray(cleaned)
    # 2:1 -> a 64 x 32 picture centred: padding rows (or columns) 0..15 and 48..63.
    content = pixels[16:48, :] if width > height else pixels[:, 16:48]
    padding = np.concatenate([pixels[:16], pixels[48:]]) if width > height \
        else np.concatenate([pixels[:, :16], pixels[:, 48:]], axis=1)

    assert cleaned.size == (SIZE, SIZE)
    assert (padding == 255).all()
    assert np.abs(content.astype(int) - RED).max() <= 1


@pytest.mark.parametrize("make", [
    lambda: Image.new("RGB", (300, 90), RED),
    lambda: Image.new("RGBA", (50, 80), (*BLUE, 100)),
    lambda: Image.new("L", (33, 77), 90),
    lambda: _upright_photo(),
])
def test_clean_image_is_idempotent(make):
    once = clean_image(make(), SIZE)
    twice = clean_image(once, SIZE)
    reloaded = load_image(_encode(once, "PNG"), SIZE)  # what training reads back from disk

    assert twice.tobytes() == once.tobytes()
    assert reloaded.tobytes() == once.tobytes()


def _truncated_jpeg(keep: float) -> bytes:
    """A noisy JPEG cut after ``keep`` of its bytes (noise: the scan data dominates the file)."""
    noise = np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    data = _encode(Image.fromarray(noise), "JPEG", quality=90)
    return data[: int(len(data) * keep)]


@pytest.mark.parametrize(("data", "kwargs", "message"), [
    (b"", {}, "empty image"),
    (b"<html>Access Denied</html>", {}, "not an image"),
    (_truncated_jpeg(0.5), {}, "truncated or corrupt JPEG data"),
    (_truncated_jpeg(0.001), {}, "unreadable image header"),
    (_encode(Image.new("RGB", (100, 100)), "PNG"), {"max_pixels": 5000}, "too large: 100x100"),
])
def test_decode_image_bad_input_raises_with_reason(data, kwargs, message):
    with pytest.raises(ImageDecodeError, match=message):
        decode_image(data, **kwargs)


def test_load_image_large_jpeg_uses_draft_and_keeps_content():
    img = Image.new("RGB", (2000, 1000), BLUE)
    img.paste(RED, (0, 0, 400, 400))

    cleaned = load_image(_encode(img, "JPEG", quality=90), SIZE)

    assert cleaned.size == (SIZE, SIZE)
    assert _close(_pixel(cleaned, 3, 19), RED, tol=40)
    assert _close(_pixel(cleaned, SIZE - 4, 44), BLUE, tol=40)


def test_eval_preset_is_deterministic_and_normalised():
    preset = EvalPreset(SIZE)
    img = Image.new("RGB", (90, 45), RED)  # padded with white at the top

    first, second = preset(img), preset(img)

    assert first.shape == (3, SIZE, SIZE) and first.dtype == torch.float32
    assert torch.equal(first, second)
    white = torch.tensor([(1 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)])
    assert torch.allclose(first[:, 0, 0], white, atol=1e-5)


@pytest.mark.parametrize("augment", ["flip", "affine", "crop", "strong"])
def test_train_preset_is_random_but_shaped_like_eval(augment):
    torch.manual_seed(0)
    preset = TrainPreset(SIZE, augment=augment)
    img = _upright_photo()  # asymmetric: a flip or warp changes the tensor

    outputs = [preset(img) for _ in range(6)]

    assert all(t.shape == (3, SIZE, SIZE) for t in outputs)
    assert any(not torch.equal(outputs[0], t) for t in outputs[1:])
    assert not torch.equal(outputs[0], EvalPreset(SIZE)(img))


def test_train_preset_flip_only_gives_the_picture_or_its_mirror():
    torch.manual_seed(0)
    img = _upright_photo()
    plain = EvalPreset(SIZE)(img)
    outputs = [TrainPreset(SIZE, augment="flip")(img) for _ in range(8)]

    assert all(torch.equal(t, plain) or torch.equal(t, plain.flip(-1)) for t in outputs)
    assert any(torch.equal(t, plain.flip(-1)) for t in outputs)


def test_train_preset_refuses_an_unknown_augmentation():
    with pytest.raises(ValueError, match="augment must be one of"):
        TrainPreset(SIZE, augment="heavy")


# A 16-bit greyscale PNG under the 50 MP pixel cap: a few hundred KB on disk, 98 MB decoded and
# ~0.5 GB while cleaned (float32, L and RGB copies). The header's pixel count let it through.
def test_decode_image_over_memory_budget_is_refused_before_decoding():
    data = _encode(Image.new("I;16", (7000, 7000)), "PNG")

    with pytest.raises(ImageDecodeError, match=r"too large to decode: 7000x7000 in mode I;16"):
        decode_image(data)


def test_decode_image_budget_counts_mode_not_only_pixels():
    rgb = _encode(Image.new("RGB", (1000, 1000)), "PNG")
    rgba = _encode(Image.new("RGBA", (1000, 1000)), "PNG")
    budget = 1000 * 1000 * 6  # the RGB picture and its RGB copy fit, RGBA's extra copies do not

    assert decode_image(rgb, max_bytes=budget).size == (1000, 1000)
    with pytest.raises(ImageDecodeError, match="in mode RGBA"):
        decode_image(rgba, max_bytes=budget)
