"""Makefile: a prepared dataset given as DATA= is used as it is, never re-cleaned from the demo."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")


def _make(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), *args],
                          capture_output=True, text=True, timeout=60)


def test_text_index_of_a_prepared_dataset_does_not_clean_the_demo_export_into_it(tmp_path):
    data = tmp_path / "clean"
    data.mkdir()
    manifest = data / "manifest.csv"
    manifest.write_text("image_id,label\n")
    os.utime(manifest, (1, 1))  # prepared long ago: older than any demo export

    done = _make("-n", "text-index", f"DATA={data}", f"TEXT_INDEX={tmp_path / 'index'}")

    assert done.returncode == 0, done.stderr
    assert "training.prepare" not in done.stdout and "datagen.demo_data" not in done.stdout
    assert f"search.build --data {data} --out {tmp_path / 'index'}" in done.stdout


def test_text_index_of_a_missing_dataset_says_how_to_make_one(tmp_path):
    done = _make("-W", "data/demo/raw/Products.csv", "-n", "text-index", f"DATA={tmp_path / 'none'}",
                 f"TEXT_INDEX={tmp_path / 'index'}")

    assert "training.prepare --products" not in done.stdout  # -n: what make would run
    assert f"{tmp_path / 'none'}/manifest.csv is missing" in done.stdout
    assert "make relevanceset" in done.stdout and "exit 2" in done.stdout


def test_the_demo_dataset_is_still_cleaned_from_the_demo_export():
    done = _make("-n", "-W", "data/demo/raw/Products.csv", "text-index", "TEXT_INDEX=/nonexistent/index")

    assert done.returncode == 0, done.stderr
    assert "training.prepare --products data/demo/raw/Products.csv" in done.stdout
    assert "--out data/demo/clean" in done.stdout
