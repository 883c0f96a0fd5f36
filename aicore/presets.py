"""Image preprocessing, defined once for training and serving.

Two stages, both deterministic unless stated:

1. **Cleaning** (:func:`load_image` = :func:`decode_image` + :func:`clean_image`): raw bytes of any
   format/mode -> an ``image_size`` x ``image_size`` RGB picture. EXIF orientation is applied,
   transparency is composited onto white, the aspect ratio is kept by padding with white (product
   photos are mostly shot on light backgrounds, so white padding looks like more background rather
   than a black frame the model could learn as a feature). ``training.prepare`` writes this result
   to disk; the TorchServe handler computes it per request.
2. **Tensor presets**: :class:`EvalPreset` (no randomness; evaluation and serving) and
   :class:`TrainPreset` (random augmentation, see :data:`AUGMENTATIONS`; training samples only).

Both presets start with :func:`clean_image`, which is a no-op on an already-clean picture, so
"cleaned file -> EvalPreset" (training) and "raw bytes -> load_image -> EvalPreset" (serving) give
the same tensor; ``tests/test_parity.py`` proves it.
"""

import io

import numpy as np
import torch
from PIL import Image, ImageFile, ImageMode, ImageOps, UnidentifiedImageError
from torchvision.transforms import v2

IMAGE_SIZE = 128
PAD_COLOUR = (255, 255, 255)  # white: see the module docstring
# ImageNet statistics: what torchvision's pretrained ResNet-50 expects; harmless for the CNN.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# 50 megapixels admits any phone photo (48 MP sensors) and refuses decompression bombs, whose
# decoded size (e.g. 20000 x 20000 = 400 MP, 1.2 GB as RGB) would take a worker's memory.
MAX_IMAGE_PIXELS = 50_000_000
# The pixel cap alone lets a 49 MP 16-bit or RGBA file through, and cleaning one copies it several
# times (16-bit -> float32 -> L -> RGB), ~0.5 GB for a file of a few MB. So the decode also has a
# budget of bytes: the picture as decoded plus the copies to_rgb makes of it (see decoded_bytes).
# 256 MiB admits a 48 MP RGB PNG (144 MB) and any JPEG (decoded at reduced scale), and keeps a
# worker, which cleans its batch one picture at a time, within ~256 MiB more than its model.
MAX_DECODED_BYTES = 256 * 2**20

# Pillow's own bomb check raises only above 2 x its limit; ours is explicit and per call.
Image.MAX_IMAGE_PIXELS = None
ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, never a half-grey picture

_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


class ImageDecodeError(ValueError):
    """Raised when bytes cannot be turned into a picture; the message says why."""


def decoded_bytes(mode: str, width: int, height: int, transparent: bool = False) -> int:
    """The memory decoding and cleaning a ``mode`` picture of ``width`` x ``height`` takes at its
    peak: the decoded picture plus the copies :func:`to_rgb` makes (float32 and L for 16-bit and
    float modes, RGBA for transparency, the final RGB)."""
    try:
        info = ImageMode.getmode(mode)
        per_pixel = len(info.bands) * int(info.typestr[-1])
    except (KeyError, ValueError):
        per_pixel = 4  # a mode Pillow cannot describe: assume the widest common one
    if mode in _SIXTEEN_BIT_MODES or mode == "F":
        per_pixel += 4 + 1  # the float32 array, then the L picture
    if transparent or mode in _ALPHA_MODES:
        per_pixel += 4  # composited on white through an RGBA copy
    return width * height * (per_pixel + 3)  # + the RGB copy


def decode_image(data: bytes, *, draft_size: int | None = None,
                 max_pixels: int = MAX_IMAGE_PIXELS,
                 max_bytes: int = MAX_DECODED_BYTES) -> Image.Image:
    """Decode image bytes fully, refusing empty, non-image, truncated and oversized input.

    Args:
        data: the encoded image (JPEG, PNG, WebP, GIF, BMP, TIFF ...).
        draft_size: if given, let JPEG decode at a reduced scale that is still at least
            ``draft_size`` on each side (much faster for large photos; the later resize hides it).
        max_pixels: refuse pictures with more pixels than this.
        max_bytes: refuse pictures whose decoding and cleaning would take more memory than this
            (:func:`decoded_bytes`; only the first frame of an animation is ever decoded).

    Returns:
        The decoded ``PIL.Image`` (any mode; see :func:`to_rgb`).

    Raises:
        ImageDecodeError: with a message naming the problem.
    """
    if not data:
        raise ImageDecodeError("empty image: the request body or file has 0 bytes")
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageDecodeError(
            f"not an image: {len(data)} bytes that no supported format (JPEG, PNG, WebP, GIF, "
            "BMP, TIFF) recognises") from None
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageDecodeError(f"unreadable image header: {exc}") from None
    width, height = img.size
    if width * height > max_pixels:
        raise ImageDecodeError(
            f"image too large: {width}x{height} = {width * height} pixels, "
            f"the limit is {max_pixels}")
    if draft_size is not None and img.format == "JPEG":
        img.draft(img.mode, (draft_size, draft_size))  # decoded at reduced scale: counted so
    needed = decoded_bytes(img.mode, *img.size, transparent="transparency" in img.info)
    if needed > max_bytes:
        raise ImageDecodeError(
            f"image too large to decode: {img.size[0]}x{img.size[1]} in mode {img.mode} takes "
            f"{needed / 2**20:.0f} MiB decoded, the limit is {max_bytes / 2**20:.0f} MiB")
    try:
        img.load()
    except (OSError, ValueError, SyntaxError) as exc:
        # Pillow says "image file is truncated" / "broken data stream" here.
        raise ImageDecodeError(f"truncated or corrupt {img.format or 'image'} data: {exc}") from None
    return img


def to_rgb(img: Image.Image) -> Image.Image:
    """Return an upright RGB copy of ``img``: EXIF orientation applied, alpha composited on white.

    Handles every Pillow mode: 1, L, P (with or without transparency), LA, PA, RGBA, CMYK, YCbCr,
    16-bit greyscale (I;16*, I) and float (F).
    """
    img = ImageOps.exif_transpose(img)
    if img.mode in _SIXTEEN_BIT_MODES:
        # Pillow keeps 16-bit samples as 0..65535; convert("L") would clip them to 255 (white).
        arr = np.asarray(img, dtype=np.float32) / 257.0
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "L")
    elif img.mode == "F":
        arr = np.asarray(img, dtype=np.float32)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        img = Image.fromarray(arr.astype(np.uint8), "L")
    if "transparency" in img.info or img.mode in _ALPHA_MODES:
        rgba = img.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, PAD_COLOUR)
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return img if img.mode == "RGB" else img.convert("RGB")


def resize_pad(img: Image.Image, size: int = IMAGE_SIZE) -> Image.Image:
    """Scale ``img`` so its longer side is ``size``, then pad it to a white ``size`` x ``size`` square."""
    width, height = img.size
    if (width, height) == (size, size):
        return img
    scale = size / max(width, height)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    resized = img.resize((new_w, new_h), Image.Resampling.BICUBIC, reducing_gap=2.0)
    canvas = Image.new("RGB", (size, size), PAD_COLOUR)
    canvas.paste(resized, ((size - new_w) // 2, (size - new_h) // 2))
    return canvas


def clean_image(img: Image.Image, size: int = IMAGE_SIZE) -> Image.Image:
    """Any picture -> ``size`` x ``size`` RGB, upright, padded with white. Idempotent."""
    return resize_pad(to_rgb(img), size)


def load_image(data: bytes, size: int = IMAGE_SIZE, max_pixels: int = MAX_IMAGE_PIXELS,
               max_bytes: int = MAX_DECODED_BYTES) -> Image.Image:
    """Decode and clean image bytes: what training's ``prepare`` and the handler both call.

    Raises:
        ImageDecodeError: see :func:`decode_image`.
    """
    return clean_image(decode_image(data, draft_size=size, max_pixels=max_pixels,
                                    max_bytes=max_bytes), size)


def _to_normalized_tensor() -> list:
    return [
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD),
    ]


class EvalPreset:
    """Deterministic preprocessing for evaluation and serving: picture -> (3, S, S) float tensor."""

    def __init__(self, image_size: int = IMAGE_SIZE) -> None:
        self.image_size = image_size
        self.transforms = v2.Compose(_to_normalized_tensor())

    def __call__(self, img: Image.Image) -> torch.Tensor:
        return self.transforms(clean_image(img, self.image_size))  # (3, S, S)


# Training augmentation levels, weakest first; the recipes in training/recipes.py pick one.
#   flip:   a random horizontal flip only (what a plain trainer does).
#   affine: flip + a slight affine warp (the original recipe's augmentation, kept for --recipe seed).
#   crop:   RandomResizedCrop + flip.
#   strong: RandomResizedCrop + flip + TrivialAugmentWide (torchvision's reference recipe uses the
#           same trio). Which one a recipe uses is measured in docs/training.md.
AUGMENTATIONS = ("flip", "affine", "crop", "strong")
# RandomResizedCrop's area range: torchvision's 0.08 lower bound suits 224-px ImageNet photos;
# our 128-px pictures are already tightly framed, and crops below a third of the area cut the
# object out.
CROP_SCALE = (0.35, 1.0)


def _augmentation(image_size: int, augment: str, hflip_prob: float) -> list:
    flip = v2.RandomHorizontalFlip(p=hflip_prob)
    if augment == "flip":
        return [flip]
    if augment == "affine":
        # Slight: listing photos are roughly framed; a stronger warp would erase the object.
        return [flip, v2.RandomAffine(degrees=8, translate=(0.05, 0.05), scale=(0.9, 1.1),
                                      fill=PAD_COLOUR)]
    crop = v2.RandomResizedCrop(image_size, scale=CROP_SCALE, antialias=True)
    if augment == "crop":
        return [crop, flip]
    if augment == "strong":
        return [crop, flip, v2.TrivialAugmentWide(fill=PAD_COLOUR)]
    raise ValueError(f"augment must be one of {AUGMENTATIONS}, got {augment!r}")


class TrainPreset:
    """Training preprocessing: :func:`clean_image`, random augmentation, then as :class:`EvalPreset`.

    Args:
        image_size: side of the output tensor.
        hflip_prob: probability of the horizontal flip.
        augment: one of :data:`AUGMENTATIONS` (default ``affine``, the original recipe's).
    """

    def __init__(self, image_size: int = IMAGE_SIZE, hflip_prob: float = 0.5,
                 augment: str = "affine") -> None:
        self.image_size = image_size
        self.augment = augment
        self.transforms = v2.Compose([
            *_augmentation(image_size, augment, hflip_prob),
            *_to_normalized_tensor(),
        ])

    def __call__(self, img: Image.Image) -> torch.Tensor:
        return self.transforms(clean_image(img, self.image_size))  # (3, S, S)
