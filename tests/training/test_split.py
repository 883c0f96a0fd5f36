"""The 70/15/15 split: grouped by product, stratified by category, seeded, saved and reloaded."""

import json
import os
import subprocess
import sys
from pathlib import Path
import numpy as np
import pandas as pd
import pytest

from tests.support import REPO_ROOT
from common.cli import UserError
from training.split import limit_ids, load_split, save_split, split_dataset



ROOT = REPO_ROOT


def synthetic_manifest(categories: int = 4, products: int = 40, seed: int = 0) -> pd.DataFrame:
    """A manifest without images: 1-4 images per product, as in real listings."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(categories):
        for p in range(products):
            for i in range(int(rng.integers(1, 5))):
                rows.append({"image_id": f"i{c}-{p}-{i}", "product_id": f"p{c}-{p}",
                             "category": f"cat {c}", "path": f"images/i{c}-{p}-{i}.png"})
    return pd.DataFrame(rows)


def test_split_keeps_each_product_in_one_split() -> None:
    manifest = synthetic_manifest()
    split = split_dataset(manifest, seed=0)
    product = manifest.set_index("image_id")["product_id"]
    products = {name: set(product.loc[ids]) for name, ids in split.items()}
    assert not products["train"] & products["val"]
    assert not products["train"] & products["test"]
    assert not products["val"] & products["test"]
    assert sorted(sum(split.values(), [])) == sorted(manifest["image_id"])


def test_split_is_stratified_roughly_70_15_15() -> None:
    manifest = synthetic_manifest(categories=4, products=60)
    split = split_dataset(manifest, seed=0)
    category = manifest.set_index("image_id")["category"]
    for name in sorted(manifest["category"].unique()):
        total = (manifest["category"] == name).sum()
        share = {s: (category.loc[ids] == name).sum() / total for s, ids in split.items()}
        assert 0.60 <= share["train"] <= 0.80, (name, share)
        assert 0.08 <= share["val"] <= 0.22, (name, share)
        assert 0.08 <= share["test"] <= 0.22, (name, share)


def test_split_is_deterministic_for_a_seed_and_row_order() -> None:
    manifest = synthetic_manifest()
    shuffled = manifest.sample(frac=1.0, random_state=3).reset_index(drop=True)
    assert split_dataset(manifest, seed=5) == split_dataset(shuffled, seed=5)


def test_split_differs_for_another_seed() -> None:
    manifest = synthetic_manifest()
    assert split_dataset(manifest, seed=0)["test"] != split_dataset(manifest, seed=1)["test"]


def test_split_ignores_python_hash_randomisation(tmp_path: Path) -> None:
    manifest = synthetic_manifest(products=12)
    manifest.to_csv(tmp_path / "m.csv", index=False)
    code = ("import json, sys, pandas as pd; from training.split import split_dataset; "
            "m = pd.read_csv(sys.argv[1], dtype=str); print(json.dumps(split_dataset(m, 7)))")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "m.csv")], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True, timeout=120)
    assert json.loads(out.stdout) == split_dataset(manifest, seed=7)


def test_split_puts_one_product_per_split_in_a_three_product_category() -> None:
    manifest = synthetic_manifest(categories=2, products=3)
    split = split_dataset(manifest, seed=0)
    product = manifest.set_index("image_id")["product_id"]
    for name, ids in split.items():
        assert product.loc[ids].nunique() == 2, name  # one product of each of the 2 categories


def test_split_refuses_a_category_with_too_few_products() -> None:
    manifest = pd.concat([synthetic_manifest(categories=1, products=10),
                          synthetic_manifest(categories=1, products=2)
                          .assign(category="tiny", product_id=lambda m: "t" + m["product_id"],
                                  image_id=lambda m: "t" + m["image_id"])])
    with pytest.raises(UserError, match=r"fewer than 3 products.*'tiny' \(2\)"):
        split_dataset(manifest, seed=0)


def test_split_refuses_a_listed_category_without_images() -> None:
    with pytest.raises(UserError, match=r"'absent' \(0\)"):
        split_dataset(synthetic_manifest(categories=1), seed=0, categories=["absent", "cat 0"])


def test_split_refuses_a_product_in_two_categories() -> None:
    manifest = synthetic_manifest()
    counts = manifest["product_id"].value_counts()
    row = manifest.index[manifest["product_id"] == counts.index[counts > 1][0]][0]
    manifest.loc[row, "category"] = "cat 3" if manifest.loc[row, "category"] != "cat 3" else "cat 0"
    with pytest.raises(UserError, match="has images in several categories"):
        split_dataset(manifest, seed=0)


def test_save_split_round_trips(tmp_path: Path) -> None:
    split = split_dataset(synthetic_manifest(), seed=2)
    save_split(split, 2, tmp_path / "split.json")
    assert load_split(tmp_path / "split.json") == split
    assert json.loads((tmp_path / "split.json").read_text())["seed"] == 2


def test_load_split_refuses_a_malformed_file(tmp_path: Path) -> None:
    (tmp_path / "split.json").write_text('{"train": []}')
    with pytest.raises(UserError, match="'train', 'val' and 'test'"):
        load_split(tmp_path / "split.json")


def test_limit_ids_draws_a_seeded_subset() -> None:
    ids = [f"i{n}" for n in range(50)]
    subset = limit_ids(ids, 10, seed=0)
    assert len(subset) == 10 and set(subset) <= set(ids)
    assert subset == limit_ids(ids, 10, seed=0)
    assert subset != limit_ids(ids, 10, seed=1)
    assert limit_ids(ids, None, seed=0) == ids
