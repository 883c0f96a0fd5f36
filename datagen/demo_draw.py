"""Drawing the synthetic listing photos of the demo export (numpy + Pillow, no other dependency).

Every root category has a *style*: a dominant hue, an object shape and a fill texture. A photo shows
one large object in its category's style on a random background, with smaller distractor objects
in random styles, colour jitter, sensor noise and JPEG artefacts. Some photos are "off-colour" (the
object's hue is random), so the colour alone never decides the class: a small CNN learns the
signal well above chance (1/13) but not perfectly.
"""

import colorsys
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("ellipse", "rectangle", "triangle", "diamond")
TEXTURES = ("solid", "hstripes", "vstripes", "dots")
# The share of photos whose object takes a random hue: colour is a strong cue, never a certain one.
OFF_COLOUR_PROB = 0.15
HUE_JITTER = 0.025  # neighbouring category hues are 1/13 ~ 0.077 apart


@dataclass(frozen=True)
class Style:
    """How an object looks: hue in [0, 1), one of :data:`SHAPES`, one of :data:`TEXTURES`."""

    hue: float
    shape: str
    texture: str


def category_style(index: int, num_categories: int) -> Style:
    """The style of category ``index``: evenly spaced hues; each category a distinct (shape, texture).

    ``index % 4`` picks the shape and ``index // 4`` the texture, so 13 categories get 13 different
    pairs and hue neighbours never share a shape.
    """
    return Style(hue=index / num_categories, shape=SHAPES[index % len(SHAPES)],
                 texture=TEXTURES[(index // len(SHAPES)) % len(TEXTURES)])


def random_style(rng: np.random.Generator) -> Style:
    return Style(hue=float(rng.random()), shape=str(rng.choice(SHAPES)),
                 texture=str(rng.choice(TEXTURES)))


def _rgb(hue: float, saturation: float, value: float) -> np.ndarray:
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, saturation, value)
    return np.array([r, g, b]) * 255.0


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A light, low-saturation background with a gentle linear gradient: (H, W, 3) float32."""
    top = _rgb(rng.random(), rng.uniform(0.0, 0.3), rng.uniform(0.65, 1.0))
    bottom = np.clip(top + rng.normal(0, 25, 3), 0, 255)
    t = np.linspace(0.0, 1.0, height)[:, None, None]  # (H, 1, 1)
    column = (top * (1 - t) + bottom * t).astype(np.float32)  # (H, 1, 3)
    return np.repeat(column, width, axis=1)  # (H, W, 3)


def _shape_mask(shape: str, box: tuple[int, int, int, int], width: int, height: int,
                flip: bool) -> np.ndarray:
    """A boolean (H, W) mask of ``shape`` inside ``box`` = (x0, y0, x1, y1)."""
    mask = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(mask)
    x0, y0, x1, y1 = box
    xm, ym = (x0 + x1) / 2, (y0 + y1) / 2
    if shape == "ellipse":
        draw.ellipse(box, fill=255)
    elif shape == "rectangle":
        draw.rectangle(box, fill=255)
    elif shape == "triangle":
        apex, base = (y1, y0) if flip else (y0, y1)
        draw.polygon([(xm, apex), (x1, base), (x0, base)], fill=255)
    else:  # diamond
        draw.polygon([(xm, y0), (x1, ym), (xm, y1), (x0, ym)], fill=255)
    return np.asarray(mask) > 0


def _texture(texture: str, box: tuple[int, int, int, int], shape: tuple[int, int],
             rng: np.random.Generator) -> np.ndarray:
    """A boolean (h, w) pattern for the box: True where the second (darker) colour goes."""
    h, w = shape
    period = max(4.0, min(box[2] - box[0], box[3] - box[1]) / rng.uniform(3.5, 6.0))
    ys, xs = np.mgrid[0:h, 0:w]
    if texture == "hstripes":
        return (ys // (period / 2)) % 2 == 1
    if texture == "vstripes":
        return (xs // (period / 2)) % 2 == 1
    if texture == "dots":
        dy, dx = ys % period - period / 2, xs % period - period / 2
        return dy * dy + dx * dx < (period * 0.3) ** 2
    return np.zeros((h, w), dtype=bool)


def paint_object(canvas: np.ndarray, style: Style, box: tuple[int, int, int, int],
                 rng: np.random.Generator, hue_jitter: float = HUE_JITTER) -> np.ndarray:
    """Paint one object of ``style`` into ``canvas`` (H, W, 3) float in place; return its mask."""
    height, width = canvas.shape[:2]
    mask = _shape_mask(style.shape, box, width, height, flip=bool(rng.random() < 0.3))
    hue = style.hue + rng.uniform(-hue_jitter, hue_jitter)
    saturation, value = rng.uniform(0.55, 1.0), rng.uniform(0.55, 1.0)
    main, second = _rgb(hue, saturation, value), _rgb(hue, saturation * 0.7, value * 0.5)
    x0, y0 = max(box[0], 0), max(box[1], 0)
    x1, y1 = min(box[2], width), min(box[3], height)
    if x1 <= x0 or y1 <= y0:
        return mask
    region = canvas[y0:y1, x0:x1]  # a view: writing it paints the canvas
    inside = mask[y0:y1, x0:x1]
    pattern = _texture(style.texture, box, inside.shape, rng)
    region[inside & ~pattern] = main
    region[inside & pattern] = second
    return mask


def _random_box(rng: np.random.Generator, width: int, height: int,
                scale: tuple[float, float]) -> tuple[int, int, int, int]:
    side = min(width, height)
    bw = int(side * rng.uniform(*scale) * rng.uniform(0.8, 1.25))
    bh = int(side * rng.uniform(*scale) * rng.uniform(0.8, 1.25))
    x0 = int(rng.integers(-bw // 8, max(width - bw + bw // 8, 1 - bw // 8)))
    y0 = int(rng.integers(-bh // 8, max(height - bh + bh // 8, 1 - bh // 8)))
    return x0, y0, x0 + max(bw, 3), y0 + max(bh, 3)


def _centred_box(rng: np.random.Generator, width: int, height: int) -> tuple[int, int, int, int]:
    side = int(min(width, height) * rng.uniform(0.55, 0.7))
    x0 = (width - side) // 2 + int(rng.integers(-side // 8, side // 8 + 1))
    y0 = (height - side) // 2 + int(rng.integers(-side // 8, side // 8 + 1))
    return x0, y0, x0 + side, y0 + side


def draw_listing_photo(rng: np.random.Generator, style: Style, width: int, height: int, *,
                       easy: bool = False) -> tuple[Image.Image, np.ndarray]:
    """Draw one listing photo of an object in ``style``.

    Args:
        rng: the photo's own random generator (so each photo is reproducible on its own).
        style: the category's style (:func:`category_style`).
        width, height: the photo size in pixels.
        easy: a clear picture (big centred object, no off-colour, one distractor) for demo samples.

    Returns:
        The RGB photo and the boolean (H, W) mask of the main object (used for transparency).
    """
    canvas = _background(rng, width, height)  # (H, W, 3) float
    for _ in range(1 if easy else int(rng.integers(0, 5))):
        paint_object(canvas, random_style(rng), _random_box(rng, width, height, (0.1, 0.28)), rng,
                     hue_jitter=0.0)
    if not easy and rng.random() < OFF_COLOUR_PROB:
        style = Style(hue=float(rng.random()), shape=style.shape, texture=style.texture)
    box = _centred_box(rng, width, height) if easy else _random_box(rng, width, height, (0.35, 0.75))
    mask = paint_object(canvas, style, box, rng)
    noise = rng.standard_normal(canvas.shape, dtype=np.float32)  # sensor noise
    noise *= rng.uniform(0.0, 3.0 if easy else 10.0)
    noise += canvas
    pixels = np.clip(noise, 0, 255, out=noise).astype(np.uint8)
    return Image.fromarray(pixels, "RGB"), mask
