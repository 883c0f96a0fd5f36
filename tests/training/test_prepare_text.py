"""`training.prepare --products` alone: a text-only dataset with every drop counted."""

import json

import pandas as pd
import pytest

from common.cli import UserError
from common.dataset_format import read_clean_dir
from tests.support.export import PRODUCTS_CSV
from training.prepare_text import format_products_report, prepare_products

# PRODUCTS_CSV: 7 rows + 1 malformed line; p3's price is "free", p4 has no category, p1 twice.
EXPECTED = {"total": 8, "kept": 4, "dropped": {"duplicate product id": 1, "malformed CSV line": 1,
                                              "missing category": 1, "unparseable price": 1}}
CATEGORIES = {"Appliances": 2, "Home & Garden": 1, "Office Furniture & Equipment": 1}


@pytest.fixture
def products_csv(tmp_path):
    path = tmp_path / "Products.csv"
    path.write_text(PRODUCTS_CSV, encoding="utf-8")
    return path


def test_prepare_products_counts_every_drop(products_csv, tmp_path, capsys):
    report = prepare_products(products_csv, tmp_path / "clean", 64)

    assert report["products"] == EXPECTED
    assert report["categories"] == CATEGORIES
    assert capsys.readouterr().out == format_products_report(report)


def test_prepare_products_writes_one_photo_less_row_per_product(products_csv, tmp_path):
    out = tmp_path / "clean"

    prepare_products(products_csv, out, 64)

    manifest = read_clean_dir(out).manifest.sort_values("image_id")
    assert list(manifest["image_id"]) == list(manifest["product_id"]) == ["p1", "p2", "p5", "p7"]
    assert manifest["path"].fillna("").tolist() == ["", "", "", ""]
    products = pd.read_csv(out / "products.csv")
    assert sorted(products["id"]) == ["p1", "p2", "p5", "p7"]
    assert json.loads((out / "report.json").read_text())["products"] == EXPECTED


def test_prepare_products_names_a_missing_text_column(tmp_path):
    path = tmp_path / "Products.csv"
    path.write_text(",id,product_name,category,price,location\n0,p1,Kettle,Appliances,£1,Leeds\n")

    with pytest.raises(UserError, match="has no column 'product_description': a text-only dataset needs"):
        prepare_products(path, tmp_path / "clean", 64)
    assert not (tmp_path / "clean").exists()


def test_prepare_products_with_nothing_usable_says_why(tmp_path):
    path = tmp_path / "Products.csv"
    path.write_text(",id,product_name,category,product_description,price,location\n"
                    "0,p1,Kettle,Appliances,Nice,free,Leeds\n")

    with pytest.raises(UserError, match=r"no usable products: 1 rows read, all dropped "
                                        r"\(unparseable price: 1\)"):
        prepare_products(path, tmp_path / "clean", 64)


def test_format_products_report_lists_drops_and_categories():
    report = {"out": "clean", "categories": {"Home": 3},
              "products": {"total": 5, "kept": 3, "dropped": {"missing category": 2}}}

    assert format_products_report(report) == (
        "prepared 3 products (text only, no images) in 1 categories into clean\n"
        "products: 5 product rows, 3 kept, 2 dropped\n"
        "       2  missing category\n"
        "kept products per category:\n"
        "       3  Home\n")
