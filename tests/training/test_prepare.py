"""training.prepare: an export or a folder tree into a cleaned dataset, every drop counted, bad
input named."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path
import numpy as np
import pandas as pd
import pytest

from tests.support import REPO_ROOT

from tests.support.export import SIZE
from PIL import Image
from common.cli import UserError
from training import prepare
from common.dataset_format import MANIFEST_COLUMNS
from training.export import IMAGE_COLUMNS
from training.prepare import get_args_parser, main



REPO = REPO_ROOT


EXPECTED_PRODUCTS = {"total": 8, "kept": 2, "dropped": {
    "duplicate product id": 1, "malformed CSV line": 1, "missing category": 1, "no image row": 1,
    "no usable image": 1, "unparseable price": 1}}


EXPECTED_IMAGES = {"total": 10, "kept": 3, "dropped": {
    "product row dropped": 2, "duplicate image id": 1, "image without a product": 1,
    "invalid image id": 1, "missing image file": 1, "unreadable image file": 1}}


def _export_args(raw: Path, out: Path, *extra: str):
    return get_args_parser().parse_args([
        "--products", str(raw / "Products.csv"), "--images", str(raw / "Images.csv"),
        "--image-dir", str(raw / "images"), "--out", str(out), "--size", str(SIZE),
        "--workers", "1", *extra])


def test_prepare_export_counts_every_drop_reason(tiny_export, tmp_path, capsys):
    report = main(_export_args(tiny_export, tmp_path / "clean"))

    assert report["products"] == EXPECTED_PRODUCTS
    assert report["images"] == EXPECTED_IMAGES
    assert report["categories"] == {"Appliances": 2, "Home & Garden": 1}
    assert [u["image_id"] for u in report["unreadable"]] == ["i4"]
    assert "truncated" in report["unreadable"][0]["error"]
    printed = capsys.readouterr().out
    assert printed == (tmp_path / "clean" / "report.txt").read_text(encoding="utf-8")
    assert "       1  missing image file" in printed and "i4.jpg: " in printed
    assert json.loads((tmp_path / "clean" / "report.json").read_text()) == report


def test_prepare_export_writes_the_cleaned_dataset(tiny_export, tmp_path):
    out = tmp_path / "clean"
    main(_export_args(tiny_export, out))
    manifest = pd.read_csv(out / "manifest.csv")
    products = pd.read_csv(out / "products.csv")

    assert tuple(manifest.columns) == MANIFEST_COLUMNS
    assert manifest.values.tolist() == [
        ["i1", "p1", "Appliances", "images/i1.png"], ["i2", "p1", "Appliances", "images/i2.png"],
        ["i3", "p2", "Home & Garden", "images/i3.png"]]
    assert json.loads((out / "dataset.json").read_text()) == {
        "image_size": SIZE, "source": "export", "num_images": 3,
        "categories": ["Appliances", "Home & Garden"]}
    assert products["id"].tolist() == ["p1", "p2"]
    assert products["price"].dtype == np.float64 and products["price"].tolist() == [1234.5, 5.0]
    assert products["root_category"].tolist() == ["Appliances", "Home & Garden"]
    for path in manifest["path"]:
        with Image.open(out / path) as img:
            assert (img.format, img.mode, img.size) == ("PNG", "RGB", (SIZE, SIZE))
    with Image.open(out / "images" / "i2.png") as img:  # 40 x 90 RGBA: white padding either side
        assert img.getpixel((1, SIZE // 2)) == (255, 255, 255)
        assert img.getpixel((SIZE // 2, SIZE // 2)) == (0, 0, 255)
    assert not list(out.rglob("*.tmp"))


def test_prepare_rerun_reuses_done_images(tiny_export, tmp_path):
    out = tmp_path / "clean"
    main(_export_args(tiny_export, out))
    manifest = (out / "manifest.csv").read_bytes()
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "images").iterdir()}

    report = main(_export_args(tiny_export, out))

    assert (report["cleaned_now"], report["already_clean"]) == (0, 3)
    assert (out / "manifest.csv").read_bytes() == manifest
    assert {p.name: p.stat().st_mtime_ns for p in (out / "images").iterdir()} == stamps


def test_prepare_demo_export_keeps_exactly_the_usable_images(demo_export, tmp_path):
    raw = demo_export.out
    args = get_args_parser().parse_args([
        "--products", str(raw / "Products.csv"), "--images", str(raw / "Images.csv"),
        "--image-dir", str(raw / "images"), "--out", str(tmp_path / "clean"),
        "--size", "32", "--workers", "2"])  # two workers: the process pool path

    report = main(args)
    manifest = pd.read_csv(tmp_path / "clean" / "manifest.csv")

    assert dict(zip(manifest["image_id"], manifest["category"], strict=True)) == demo_export.usable
    assert report["images"]["dropped"] == demo_export.dropped_images
    products_dropped = report["products"]["dropped"]
    assert {k: products_dropped[k] for k in demo_export.dropped_products} == \
        demo_export.dropped_products
    assert len(report["categories"]) == 13


@pytest.fixture
def image_folder(tmp_path, image_bytes) -> Path:
    root = tmp_path / "folder"
    for relative, data in {
        "Appliances/kettle.jpg": image_bytes(80, 40),
        "Appliances/fridge.PNG": image_bytes(30, 60, fmt="PNG"),
        "Home & Garden/sheds/shed.webp": image_bytes(50, 50, fmt="WEBP"),
        "Home & Garden/notes.txt": b"not a picture",
        "Home & Garden/broken.gif": b"GIF89a broken",
        "loose.jpg": image_bytes(),
    }.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
    return root


def test_prepare_folder_mode_uses_folder_names(image_folder, tmp_path):
    out = tmp_path / "clean"
    report = main(get_args_parser().parse_args([
        "--image-folder", str(image_folder), "--out", str(out), "--size", str(SIZE),
        "--workers", "1"]))
    manifest = pd.read_csv(out / "manifest.csv")

    assert manifest["image_id"].tolist() == [
        "Appliances/fridge.PNG", "Appliances/kettle.jpg", "Home & Garden/sheds/shed.webp"]
    assert (manifest["product_id"] == manifest["image_id"]).all()
    assert manifest["path"].tolist()[2] == "images/Home & Garden/sheds/shed.webp.png"
    assert report["images"] == {"total": 6, "kept": 3, "dropped": {
        "not an image extension": 1, "outside a category folder": 1, "unreadable image file": 1}}
    assert report["categories"] == {"Appliances": 2, "Home & Garden": 1}
    assert json.loads((out / "dataset.json").read_text())["source"] == "folder"
    assert not (out / "products.csv").exists()


def test_prepare_folder_mode_refuses_empty_category_folder(image_folder, tmp_path):
    (image_folder / "Empty").mkdir()
    (image_folder / "Empty" / "notes.txt").write_text("no pictures here")
    out = tmp_path / "clean"

    with pytest.raises(UserError, match=r"category folder .*Empty holds no image files"):
        main(get_args_parser().parse_args(["--image-folder", str(image_folder), "--out", str(out)]))
    assert not (out / "manifest.csv").exists()


def test_prepare_unexpected_decoder_error_skips_only_that_file(image_folder, tmp_path,
                                                              monkeypatch):
    real_load_image = prepare.load_image

    def flaky_load_image(data, size, max_pixels):
        if data.startswith(b"\x89PNG"):  # fridge.PNG
            raise ZeroDivisionError("division by zero in a plugin")
        return real_load_image(data, size, max_pixels)

    monkeypatch.setattr(prepare, "load_image", flaky_load_image)
    report = main(get_args_parser().parse_args([
        "--image-folder", str(image_folder), "--out", str(tmp_path / "clean"),
        "--size", str(SIZE), "--workers", "1"]))

    assert report["images"]["kept"] == 2
    assert [u["image_id"] for u in report["unreadable"]] == [
        "Appliances/fridge.PNG", "Home & Garden/broken.gif"]
    assert report["unreadable"][0]["error"] == "ZeroDivisionError: division by zero in a plugin"


def test_prepare_nothing_usable_raises_and_keeps_earlier_output(image_folder, tmp_path,
                                                                image_bytes):
    out = tmp_path / "clean"
    main(get_args_parser().parse_args(["--image-folder", str(image_folder), "--out", str(out),
                                       "--size", str(SIZE), "--workers", "1"]))
    before = {name: (out / name).read_bytes() for name in ("manifest.csv", "dataset.json")}
    broken = tmp_path / "broken"
    (broken / "Appliances").mkdir(parents=True)
    (broken / "Appliances" / "a.jpg").write_bytes(b"\xff\xd8 not really a jpeg")

    with pytest.raises(UserError, match=r"no usable images: 1 image entries read, all dropped "
                                       r"\(unreadable image file: 1\)"):
        main(get_args_parser().parse_args(["--image-folder", str(broken), "--out", str(out),
                                           "--size", str(SIZE), "--workers", "1"]))

    assert {name: (out / name).read_bytes() for name in before} == before


def test_prepare_different_size_refuses_to_mix(tiny_export, tmp_path):
    out = tmp_path / "clean"
    main(_export_args(tiny_export, out))

    with pytest.raises(UserError, match=f"already holds images cleaned at {SIZE} px; --size 64"):
        main(_export_args(tiny_export, out, "--size", "64"))
    (out / "dataset.json").unlink()  # as if an earlier run was interrupted before the end
    with pytest.raises(UserError, match=f"cleaned at {SIZE} px"):
        main(_export_args(tiny_export, out, "--size", "64"))


def test_prepare_missing_column_names_it(tiny_export, tmp_path):
    table = pd.read_csv(tiny_export / "Images.csv", dtype=str)
    table.drop(columns=["product_id"]).to_csv(tiny_export / "Images.csv", index=False)

    with pytest.raises(UserError, match=r"Images.csv has no column 'product_id': expected columns "
                                       r"id, product_id, bucket_link"):
        main(_export_args(tiny_export, tmp_path / "clean"))


@pytest.mark.parametrize(("remove", "message"), [
    ("Products.csv", r"Products.csv not found: expected the export's Products.csv with columns"),
    ("images", r"--image-dir .*images is not a directory"),
])
def test_prepare_missing_input_names_it(tiny_export, tmp_path, remove, message):
    target = tiny_export / remove
    if target.is_dir():
        for child in target.iterdir():
            child.unlink()
        target.rmdir()
    else:
        target.unlink()

    with pytest.raises(UserError, match=message):
        main(_export_args(tiny_export, tmp_path / "clean"))


def test_prepare_products_with_images_but_no_image_dir_is_an_error(tmp_path):
    # --products alone is a text-only dataset (tests/training/test_text_train.py); half an export
    # is a mistake
    args = get_args_parser().parse_args(["--products", "P.csv", "--images", "I.csv", "--out",
                                         str(tmp_path)])

    with pytest.raises(UserError, match="--products needs both --images"):
        main(args)


def test_prepare_cli_reports_error_with_exit_code_2(tiny_export, tmp_path):
    (tiny_export / "Products.csv").write_text(",id,category\n0,p1,Appliances\n", encoding="utf-8")

    result = subprocess.run(
        [sys.executable, "-m", "training.prepare", "--products", str(tiny_export / "Products.csv"),
         "--images", str(tiny_export / "Images.csv"), "--image-dir", str(tiny_export / "images"),
         "--out", str(tmp_path / "clean"), "--workers", "1"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)})

    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "no column 'price'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "clean").exists()


def _noise_png(seed: int, **save_kw) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(40, 56, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG", **save_kw)
    return buffer.getvalue()


@pytest.fixture
def folder_with_copies(tmp_path: Path) -> Path:
    """Toys/b is Toys/a re-encoded (other bytes, same pixels); Signs/s is filed under Transport
    and Flags too, so Flags has no picture of its own."""
    files = {"Toys/a.png": _noise_png(1), "Toys/b.png": _noise_png(1, compress_level=0),
             "Toys/c.png": _noise_png(4), "Signs/s.png": _noise_png(2), "Signs/s2.png": _noise_png(5),
             "Transport/t.png": _noise_png(2), "Transport/u.png": _noise_png(3),
             "Flags/f.png": _noise_png(2)}
    root = tmp_path / "raw"
    for relative, data in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
    assert files["Toys/a.png"] != files["Toys/b.png"]
    return root


def test_prepare_keeps_one_copy_and_drops_pictures_under_several_categories(
        folder_with_copies, tmp_path, capsys):
    out = tmp_path / "clean"
    args = get_args_parser().parse_args(["--image-folder", str(folder_with_copies), "--out",
                                         str(out), "--size", str(SIZE), "--workers", "1"])
    report = main(args)

    assert pd.read_csv(out / "manifest.csv")["image_id"].tolist() == [
        "Signs/s2.png", "Toys/a.png", "Toys/c.png", "Transport/u.png"]
    assert report["images"] == {"total": 8, "kept": 4, "dropped": {
        "the same picture under several categories": 3, "the same picture as a kept image": 1}}
    assert report["duplicates"] == {
        "dropped": True, "copies": [["Toys/a.png", "Toys/b.png"]],
        "conflicts": [{"categories": ["Flags", "Signs", "Transport"],
                       "images": ["Flags/f.png", "Signs/s.png", "Transport/t.png"]}]}
    assert report["warnings"] == ["category folder 'Flags': every image file is unreadable or "
                                  "the same picture as another category's; the category is left out"]
    printed = capsys.readouterr().out
    assert ("the same picture under several categories, every copy dropped (1):\n"
            "  Flags/f.png = Signs/s.png = Transport/t.png\n") in printed
    # a rerun reads the digests back from the cleaned PNGs and decides the same
    manifest = (out / "manifest.csv").read_bytes()
    again = main(args)
    assert (again["cleaned_now"], again["already_clean"]) == (0, 8)
    assert again["images"] == report["images"] and again["duplicates"] == report["duplicates"]
    assert (out / "manifest.csv").read_bytes() == manifest


def test_prepare_export_keeps_listings_that_share_a_photo_and_lists_them(tmp_path, capsys):
    """Two listings with one photo are still two listings: search must find both."""
    raw = tmp_path / "raw"
    (raw / "images").mkdir(parents=True)
    (raw / "Products.csv").write_text(
        ",id,product_name,category,product_description,price,location\n"
        + "".join(f"{n},{pid},Item {pid},{cat} / Things,Nice,£5,Leeds\n" for n, (pid, cat) in
                  enumerate([("a1", "Appliances"), ("a2", "Appliances"), ("a3", "Appliances"),
                             ("h1", "Home & Garden")])), encoding="utf-8")
    photos = {"a1i": ("a1", 1), "a2i": ("a2", 1), "a3i": ("a3", 2), "h1i": ("h1", 2)}
    lines = ["," + ",".join(IMAGE_COLUMNS)]
    for n, (image_id, (product_id, seed)) in enumerate(photos.items()):
        lines.append(f"{n},{image_id},{product_id},https://b/{image_id}.jpg,r{n},2022-03-01")
        (raw / "images" / f"{image_id}.jpg").write_bytes(_noise_png(seed))
    (raw / "Images.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")

    report = main(_export_args(raw, tmp_path / "clean"))

    assert report["images"] == {"total": 4, "kept": 4, "dropped": {}}
    assert report["products"]["kept"] == 4
    assert report["duplicates"] == {
        "dropped": False, "copies": [["a1i", "a2i"]],
        "conflicts": [{"categories": ["Appliances", "Home & Garden"], "images": ["a3i", "h1i"]}]}
    printed = capsys.readouterr().out
    assert ("photos shared by listings of one category, kept: 1 (report.json: duplicates)\n"
            "the same picture under several categories, kept (1):\n  a3i = h1i\n") in printed
