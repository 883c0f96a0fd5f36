"""datagen.textdevset on a tiny fake apt index: parsing, de-duplication, choice, the export."""

import glob
import json
from pathlib import Path

import lz4.frame
import pandas as pd
import pytest

from common.cli import UserError
from datagen import textdevset


def stanza(name: str, section: str, synopsis: str) -> str:
    return (f"Package: {name}\nVersion: 1.0\nDepends: libc6 (>= 2.34),\n libfoo\n"
            f"Description: {synopsis}\nDescription-md5: 0123\nSection: {section}\n"
            "Priority: optional\n")


def fake_index(folder: Path, per_class: int) -> str:
    """Two index files, one LZ4-compressed as apt keeps it, one plain; returns their glob."""
    stanzas = [stanza(f"{s}-tool{i}", s if i % 2 else f"contrib/{s}", f"{s} program number {i}")
               for s in textdevset.SECTIONS for i in range(per_class)]
    stanzas += [stanza("pydemo", "python", "Python 3 module for demos"),  # not a chosen section
                stanza("twin-a", "games", "Transitional dummy package"),  # shared synopsis:
                stanza("twin-b", "sound", "transitional DUMMY package")]  # both dropped
    folder.mkdir()
    half = len(stanzas) // 2
    (folder / "a_Packages.lz4").write_bytes(lz4.frame.compress("\n".join(stanzas[:half]).encode()))
    (folder / "b_Packages").write_text("\n".join(stanzas[half:]) + "\n")
    return str(folder / "*Packages*")


def test_read_packages_parses_both_formats_and_keeps_the_last_section_part(tmp_path):
    lists = fake_index(tmp_path / "lists", per_class=4)
    packages = textdevset.read_packages(sorted(glob.glob(lists)))
    assert len(packages) == 13 * 4 + 3
    row = packages.set_index("package").loc["games-tool0"]
    assert (row["section"], row["synopsis"]) == ("games", "games program number 0")


def test_main_writes_a_balanced_deduplicated_export_and_cleans_it(tmp_path):
    lists = fake_index(tmp_path / "lists", per_class=5)
    args = textdevset.get_args_parser().parse_args(
        ["--out", str(tmp_path / "td"), "--lists", lists, "--per-class", "4"])
    clean = textdevset.main(args)
    products = pd.read_csv(tmp_path / "td" / "raw" / "Products.csv", keep_default_na=False)
    assert list(products.columns) == ["id", "product_name", "category", "product_description",
                                      "price", "location"]
    assert products["category"].value_counts().to_dict() == {s: 4 for s in textdevset.SECTIONS}
    assert not {"pydemo", "twin-a", "twin-b"} & set(products["id"])
    report = json.loads((clean / "report.json").read_text())
    assert report["source"] == "products"
    assert (clean / "manifest.csv").is_file()
    candidates = textdevset.distinct_synopses(textdevset.read_packages(sorted(glob.glob(lists))))
    again = textdevset.choose(candidates, 4, seed=0)
    assert list(again["package"]) == list(products["id"])  # deterministic from the seed
    assert list(textdevset.choose(candidates, 4, seed=1)["package"]) != list(products["id"])


def test_a_section_too_small_is_refused(tmp_path):
    lists = fake_index(tmp_path / "lists", per_class=3)
    args = textdevset.get_args_parser().parse_args(
        ["--out", str(tmp_path / "td"), "--lists", lists, "--per-class", "4"])
    with pytest.raises(UserError, match="fewer than --per-class 4"):
        textdevset.main(args)


def test_no_index_is_a_clear_error(tmp_path):
    args = textdevset.get_args_parser().parse_args(
        ["--out", str(tmp_path / "td"), "--lists", str(tmp_path / "none*")])
    with pytest.raises(UserError, match="apt-get update"):
        textdevset.main(args)
