"""datagen.devset without apt: choosing pictures from an unpacked package tree, and cleaning it."""

import json
from pathlib import Path

import pytest
from PIL import Image

from datagen import devset
from common.cli import UserError


def fake_package(root: Path, per_class: int) -> Path:
    """An unpacked openclipart-png tree: every class folder, half the files in a sub-folder."""
    tree = root / devset.PACKAGE_ROOT
    for c, name in enumerate(devset.CLASSES):
        for i in range(per_class):
            folder = tree / name / ("sub" if i % 2 else "")
            folder.mkdir(parents=True, exist_ok=True)
            Image.new("RGBA", (20 + i, 30), (c * 18, 40, 200, 255)).save(folder / f"p{i}.png")
    (tree / "special").mkdir()
    Image.new("RGB", (8, 8)).save(tree / "special" / "x.png")
    return tree


def test_choose_takes_a_seeded_capped_subset_of_each_class(tmp_path: Path) -> None:
    tree = fake_package(tmp_path / "pkg", per_class=6)
    counts = devset.choose(tree, tmp_path / "raw", per_class=4, seed=0)
    assert counts == {name: 4 for name in devset.CLASSES}
    first = sorted(p.name for p in (tmp_path / "raw" / "animals").iterdir())
    assert any(name.startswith("sub__") for name in sorted(
        p.name for c in devset.CLASSES for p in (tmp_path / "raw" / c).iterdir()))
    assert not (tmp_path / "raw" / "special").exists()
    devset.choose(tree, tmp_path / "raw", per_class=4, seed=0)
    assert sorted(p.name for p in (tmp_path / "raw" / "animals").iterdir()) == first
    devset.choose(tree, tmp_path / "raw", per_class=2, seed=0)  # rebuilt, never mixed
    assert len(list((tmp_path / "raw" / "animals").iterdir())) == 2


def test_choose_refuses_a_tree_without_the_class_folders(tmp_path: Path) -> None:
    (tmp_path / "pkg" / "animals").mkdir(parents=True)
    with pytest.raises(UserError, match="lacks the class folder"):
        devset.choose(tmp_path / "pkg", tmp_path / "raw", per_class=4, seed=0)


def test_devset_main_cleans_the_chosen_pictures(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    fake_package(tmp_path / "out" / "pkg", per_class=3)
    deb = tmp_path / "openclipart-png_0_all.deb"
    deb.write_bytes(b"already unpacked, never read")
    args = devset.get_args_parser().parse_args(["--out", str(tmp_path / "out"), "--deb", str(deb),
                                                "--size", "32"])
    clean = devset.main(args)
    info = json.loads((clean / "dataset.json").read_text())
    assert info["categories"] == sorted(devset.CLASSES)
    assert info["num_images"] == 3 * len(devset.CLASSES) and info["image_size"] == 32


def test_devset_refuses_a_missing_deb(tmp_path: Path) -> None:
    args = devset.get_args_parser().parse_args(["--out", str(tmp_path), "--deb",
                                                str(tmp_path / "none.deb")])
    with pytest.raises(UserError, match="does not exist"):
        devset.main(args)


def test_choose_never_picks_a_copy(tmp_path: Path) -> None:
    tree = fake_package(tmp_path / "pkg", per_class=4)
    animals, food = tree / "animals", tree / "food"
    # one drawing filed under two classes, and a copy within a class under another name
    (food / "p0.png").write_bytes((animals / "p0.png").read_bytes())
    (animals / "sub" / "p1_copy.png").write_bytes((animals / "sub" / "p1.png").read_bytes())

    files = devset.distinct_files(tree)

    assert [p.relative_to(animals).as_posix() for p in files["animals"]] == [
        "p2.png", "sub/p1.png", "sub/p3.png"]
    assert [p.name for p in files["food"]] == ["p2.png", "p1.png", "p3.png"]
    counts = devset.choose(tree, tmp_path / "raw", per_class=4, seed=0)
    assert counts["animals"] == counts["food"] == 3 and counts["tools"] == 4
    assert sorted(p.name for p in (tmp_path / "raw" / "animals").iterdir()) == [
        "p2.png", "sub__p1.png", "sub__p3.png"]
