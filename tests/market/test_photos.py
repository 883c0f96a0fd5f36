"""market.photos: metadata stripped, upright, stored by content hash, orphans swept."""

import io
import os
import time

import pytest
from PIL import Image

from aicore.presets import ImageDecodeError
from market.photos import PhotoStore, clean_photo, photo_name


def photo(orientation: int | None = None, size=(40, 20)) -> bytes:
    img = Image.new("RGB", size, (10, 200, 10))
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    exif[0x8825] = {1: "N", 2: (51.0, 30.0, 0.0)}
    if orientation is not None:
        exif[0x0112] = orientation
    out = io.BytesIO()
    img.save(out, "JPEG", exif=exif, comment=b"secret comment")
    return out.getvalue()


def test_clean_photo_drops_exif_gps_and_comments():
    cleaned = clean_photo(photo())

    img = Image.open(io.BytesIO(cleaned))
    assert img.format == "JPEG" and len(img.getexif()) == 0
    assert b"PhoneMaker" not in cleaned and b"secret comment" not in cleaned
    assert "comment" not in img.info and "exif" not in img.info


def test_clean_photo_keeps_the_orientation_in_the_pixels():
    img = Image.open(io.BytesIO(clean_photo(photo(orientation=6))))  # 6: rotate 90 degrees

    assert img.size == (20, 40)


def test_clean_photo_refuses_what_is_not_an_image():
    with pytest.raises(ImageDecodeError):
        clean_photo(b"GIF89a nonsense")


def test_write_is_content_addressed(tmp_path):
    store = PhotoStore(tmp_path)
    data = clean_photo(photo())

    name = store.write(data)
    assert name == photo_name(data) == store.write(data)
    assert store.path(name).read_bytes() == data
    assert [p.name for p in tmp_path.glob("*/*")] == [name]  # no temporary left


def test_path_refuses_names_that_are_not_hashes(tmp_path):
    with pytest.raises(ValueError):
        PhotoStore(tmp_path).path("../../etc/passwd")


def test_sweep_removes_old_orphans_only(tmp_path):
    store = PhotoStore(tmp_path)
    kept, orphan, young = (store.write(clean_photo(photo(size=(30 + i, 20)))) for i in range(3))
    old = time.time() - 600
    for name in (kept, orphan):
        os.utime(store.path(name), (old, old))

    assert store.sweep({kept}, grace_s=60) == 1
    assert store.path(kept).exists() and not store.path(orphan).exists()
    assert store.path(young).exists()  # may be a listing another process is committing
