"""Reading a cleaned dataset directory: classes in order, and a clear error for every broken file."""

import json
import os
from pathlib import Path
import pytest
from common.cli import UserError
from common.dataset_format import read_clean_dir



def test_read_clean_dir_sorts_classes_alphabetically(clean_dir: Path) -> None:
    data = read_clean_dir(clean_dir)
    assert data.class_names == sorted(data.class_names)
    assert data.class_names == sorted(data.manifest["category"].unique())
    assert data.class_to_idx == {n: i for i, n in enumerate(data.class_names)}
    assert data.image_size == 48
    assert len(data.manifest) == 36


def test_read_clean_dir_refuses_a_dir_without_manifest(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a cleaned dataset directory: manifest.csv is missing"):
        read_clean_dir(tmp_path)


def test_read_clean_dir_refuses_an_empty_manifest(tmp_path: Path) -> None:
    (tmp_path / "manifest.csv").write_text("image_id,product_id,category,path\n")
    (tmp_path / "dataset.json").write_text(json.dumps({"image_size": 128, "categories": ["A"]}))
    with pytest.raises(UserError, match="no rows: the dataset is empty"):
        read_clean_dir(tmp_path)


def test_read_clean_dir_refuses_missing_columns(tmp_path: Path) -> None:
    (tmp_path / "manifest.csv").write_text("image_id,category\n1,A\n")
    (tmp_path / "dataset.json").write_text(json.dumps({"image_size": 128, "categories": ["A"]}))
    with pytest.raises(UserError, match=r"lacks column\(s\) \['product_id', 'path'\]"):
        read_clean_dir(tmp_path)


def test_read_clean_dir_refuses_missing_image_files(clean_dir: Path, tmp_path: Path) -> None:
    for name in ("manifest.csv", "dataset.json"):
        (tmp_path / name).write_bytes((clean_dir / name).read_bytes())
    with pytest.raises(UserError, match="36 image.* are missing"):
        read_clean_dir(tmp_path)


def test_read_clean_dir_refuses_unlisted_categories(clean_dir: Path, tmp_path: Path) -> None:
    for name in ("manifest.csv", "images"):
        os.symlink(clean_dir / name, tmp_path / name)
    (tmp_path / "dataset.json").write_text(json.dumps({"image_size": 48, "categories": ["Other"]}))
    with pytest.raises(UserError, match="that dataset.json does not list"):
        read_clean_dir(tmp_path)
