"""The synthetic export: deterministic, in the real export's format, quirks included, learnable."""

import io
import json
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image, UnidentifiedImageError

from aicore.categories import ROOT_CATEGORIES
from aicore.presets import load_image
from common.cli import UserError
from datagen.demo_data import (ORPHAN_IMAGES, SAMPLES, SPECIAL_KINDS, UNPHOTOGRAPHED_PRODUCTS,
                                build_export, generate, get_args_parser, main)
from training.export import IMAGE_COLUMNS, PRODUCT_COLUMNS


def _read(path, **kwargs) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False, lineterminator="\n", **kwargs)


def _products(export) -> pd.DataFrame:
    return _read(export.out / "Products.csv", on_bad_lines="skip")


def _images(export) -> pd.DataFrame:
    return _read(export.out / "Images.csv")


def test_generate_same_seed_writes_identical_bytes(tmp_path):
    first = generate(tmp_path / "a", seed=7, per_category=2)
    second = generate(tmp_path / "b", seed=7, per_category=2)
    files = sorted(p.relative_to(first.out) for p in first.out.rglob("*") if p.is_file())

    assert files == sorted(p.relative_to(second.out) for p in second.out.rglob("*") if p.is_file())
    assert len(files) > 40
    for name in files:
        assert (first.out / name).read_bytes() == (second.out / name).read_bytes(), name
    assert build_export(8, per_category=2).products != first.products


def test_main_prints_summary_and_refuses_too_few_images(tmp_path, capsys):
    export = main(get_args_parser().parse_args(["--out", str(tmp_path / "d"),
                                                "--images-per-category", "2"]))

    assert f"{export.files_written} image files" in capsys.readouterr().out
    with pytest.raises(UserError, match="--images-per-category must be at least 2, got 1"):
        main(get_args_parser().parse_args(["--out", str(tmp_path / "e"),
                                           "--images-per-category", "1"]))


def test_products_csv_has_the_real_columns_and_categories(demo_export):
    products = _products(demo_export)
    roots = {c.split(" / ")[0].strip() for c in products["category"] if c.strip()}

    assert list(products.columns) == ["Unnamed: 0", *PRODUCT_COLUMNS]  # the unnamed index quirk
    assert roots - {""} == set(ROOT_CATEGORIES)
    assert products["category"].str.contains(" / .+ / ", regex=True).any(), "no sub-sub-category"


def test_products_csv_prices_are_pounds_with_malformed_rows(demo_export):
    prices = _products(demo_export)["price"]
    well_formed = prices.str.fullmatch(r"£\d{1,3}(,\d{3})*(\.\d{2})?")

    assert well_formed.mean() > 0.75  # a tiny export: the ~10 malformed rows weigh a lot
    assert prices.str.contains(",").any() and prices.str.endswith(".00").any()
    assert prices.str.fullmatch(r"£\d+").any(), "no whole-pound price like £5"
    assert {"free", ""} <= set(prices[~well_formed])


def test_products_csv_has_the_real_exports_quirks(demo_export):
    data = (demo_export.out / "Products.csv").read_bytes()
    products = _products(demo_export)

    assert re.search(rb"[^\n]\r[^\n]", data), "no bare carriage return inside a row"
    assert products["category"].str.strip().eq("").sum() >= 2, "no rows without a category"
    assert (products["id"] != products["id"].str.strip()).any(), "no stray whitespace in ids"
    assert products["id"].str.strip().duplicated().sum() == 2
    with pytest.warns(pd.errors.ParserWarning, match="Skipping line"):
        _read(demo_export.out / "Products.csv", on_bad_lines="warn")  # the extra-field line


def test_images_csv_links_products_with_gaps(demo_export):
    images, products = _images(demo_export), _products(demo_export)
    product_ids = set(products["id"].str.strip())
    per_product = images.groupby("product_id").size()
    on_disk = {p.stem for p in (demo_export.out / "images").iterdir()}

    assert list(images.columns) == ["Unnamed: 0", *IMAGE_COLUMNS]
    assert (~images["product_id"].isin(product_ids)).sum() == ORPHAN_IMAGES
    assert len(product_ids - set(images["product_id"])) >= UNPHOTOGRAPHED_PRODUCTS
    assert per_product.max() <= 4 and per_product.min() >= 1
    assert len(set(images["id"]) - on_disk) == 2, "image rows whose file is missing"
    assert all(p.suffix == ".jpg" for p in (demo_export.out / "images").iterdir())


def _sniff(data: bytes) -> str:
    """'FORMAT/MODE' of a file, 'EXIF6' for a rotated JPEG, or why it cannot be decoded."""
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        return "not an image"
    if img.getexif().get(0x0112) == 6:
        return "EXIF6"
    try:
        img.load()
    except OSError:
        return "truncated"
    transparent = "+transparency" if "transparency" in img.info else ""
    return f"{img.format}/{img.mode}{transparent}"


def test_image_files_cover_every_special_kind(demo_export):
    kinds = pd.Series([_sniff(p.read_bytes()) for p in (demo_export.out / "images").iterdir()])
    counts = kinds.value_counts()

    assert counts["JPEG/RGB"] > len(kinds) / 2
    assert counts["PNG/RGBA"] == SPECIAL_KINDS["rgba_png"]
    assert counts["PNG/P"] == SPECIAL_KINDS["p_png"]
    assert counts["GIF/P"] == SPECIAL_KINDS["p_gif"]
    assert counts["GIF/P+transparency"] == SPECIAL_KINDS["p_gif_transparent"]
    assert counts["JPEG/L"] == SPECIAL_KINDS["grey_jpeg"]
    assert counts["JPEG/CMYK"] == SPECIAL_KINDS["cmyk_jpeg"]
    assert counts["EXIF6"] == 1 and counts["truncated"] == 1 and counts["not an image"] == 1


def test_image_files_have_mixed_sizes(demo_export):
    sizes = [Image.open(p).size for p in (demo_export.out / "images").iterdir()
             if _sniff(p.read_bytes()) not in ("truncated", "not an image")]
    longest = [max(s) for s in sizes]

    assert min(longest) < 200 and max(longest) > 500
    assert min(min(s) for s in sizes) >= 54  # 90 px long side x 0.6 aspect
    assert sum(w != h for w, h in sizes) > len(sizes) * 0.8


def test_samples_are_realistic_photos_of_known_categories(demo_export):
    listing = json.loads((demo_export.out / "samples" / "samples.json").read_text())
    formats = set()
    for name, category in listing.items():
        img = Image.open(demo_export.out / "samples" / name)
        formats.add(img.format)
        assert category in ROOT_CATEGORIES
        assert 640 <= img.width <= 1600 and 480 <= img.height <= 1200

    assert len(listing) == len(SAMPLES)
    assert formats == {"JPEG", "PNG"}


def _dominant_hue_bin(img: Image.Image) -> int | None:
    """The most common of 13 hue bins among saturated pixels (the objects, not the background)."""
    hue, saturation, value = (np.asarray(c, dtype=int) for c in img.convert("HSV").split())
    selected = (saturation > 100) & (value > 60)
    if selected.sum() < 20:
        return None  # a greyscale file
    bins = (hue[selected] * 13 / 256 + 0.5).astype(int) % 13
    return int(np.bincount(bins, minlength=13).argmax())


def test_usable_images_carry_their_categorys_hue(demo_export):
    """Learnability sanity check: each category's dominant hue (bin i of 13) mostly shows.

    Chance is 1/13; the generator makes ~15 % of objects off-colour and adds distractors, so
    this is clearly above chance but not perfect. The training tests check a CNN learns it.
    """
    hits = total = 0
    for image_id, category in demo_export.usable.items():
        data = (demo_export.out / "images" / f"{image_id}.jpg").read_bytes()
        found = _dominant_hue_bin(load_image(data, 64))
        if found is not None:
            hits += found == ROOT_CATEGORIES.index(category)
            total += 1

    assert total >= 25
    assert 0.5 <= hits / total < 1.0
