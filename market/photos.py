"""Listing photos: cleaned, stripped of metadata, stored by content hash, durable before use.

A seller's photo is decoded with the limits every upload has (:func:`aicore.presets.decode_image`:
size, pixel and memory budgets), turned upright (EXIF orientation), copied pixel by pixel into a
new image -- so no EXIF, GPS position, XMP, ICC profile or comment can travel along -- and
re-encoded as a JPEG. Its name is the SHA-256 of those bytes (the same photo twice is one file).

:meth:`PhotoStore.write` writes a temporary file, fsyncs it, renames it into place and fsyncs the
directory: when it returns, the photo survives a crash. The listing row that names a photo is
committed only after that, so a row never names a missing file. A crash between the two leaves a
file no row names: :meth:`PhotoStore.sweep` deletes such files at start.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import time
from pathlib import Path

from PIL import Image, ImageOps

from aicore.presets import ImageDecodeError, decode_image
from common.atomic import atomic_write, fsync_dir

logger = logging.getLogger(__name__)

MAX_SIDE = 2048  # px: a stored photo is at most this on its longer side (phone photos are 4000+)
JPEG_QUALITY = 90
SUFFIX = ".jpg"
MEDIA_TYPE = "image/jpeg"


def clean_photo(data: bytes) -> bytes:
    """The photo's pixels alone, upright, as a JPEG.

    Raises:
        ImageDecodeError: ``data`` is not a usable image (names the problem).
    """
    img = decode_image(data)
    try:
        img = ImageOps.exif_transpose(img)  # the orientation is kept in the pixels, not the tag
    except (OSError, ValueError, SyntaxError) as exc:  # a malformed EXIF block
        raise ImageDecodeError(f"unreadable photo metadata: {exc}") from None
    img = img.convert("RGB")
    img.thumbnail((MAX_SIDE, MAX_SIDE))
    bare = Image.frombytes("RGB", img.size, img.tobytes())  # a new image: no info, no metadata
    out = io.BytesIO()
    bare.save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def photo_name(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest() + SUFFIX


class PhotoStore:
    """``state/photos/<first 2 hex>/<sha256>.jpg``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, name: str) -> Path:
        if not _valid_name(name):
            raise ValueError(f"not a photo name: {name!r}")
        return self.root / name[:2] / name

    def write(self, data: bytes) -> str:
        """Store cleaned photo bytes durably; returns their name."""
        name = photo_name(data)
        target = self.path(name)
        if target.is_file():  # content-addressed: the same bytes are there already
            os.utime(target)  # young again: a sweep's grace period protects it until the commit
            return name
        target.parent.mkdir(exist_ok=True)
        atomic_write(target, lambda f: f.write(data))  # tmp, fsync, rename, fsync the folder
        fsync_dir(self.root)
        return name

    def remove(self, names: list[str]) -> None:
        for name in names:
            self.path(name).unlink(missing_ok=True)

    def sweep(self, in_use: set[str], grace_s: float) -> int:
        """Delete photo files (and temporaries) no listing names that are older than ``grace_s``
        (a younger one may belong to a listing another process is committing); returns how many."""
        removed = 0
        cutoff = time.time() - grace_s
        for path in self.root.glob("*/*"):
            if path.name in in_use or not path.is_file():
                continue
            try:
                if path.stat().st_mtime <= cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        if removed:
            logger.info("removed %d photo file(s) that no listing names", removed)
        return removed


def _valid_name(name: str) -> bool:
    stem = name.removesuffix(SUFFIX)
    return name.endswith(SUFFIX) and len(stem) == 64 and all(c in "0123456789abcdef" for c in stem)
