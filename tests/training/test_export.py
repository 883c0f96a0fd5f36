"""The export's tables: prices, category paths and the CSV quirks."""

import pytest
from common.cli import UserError
from training.export import parse_category, parse_price, read_export_csv



@pytest.mark.parametrize(("text", "expected"), [
    ("£1,234.50", 1234.5), ("£5", 5.0), ("£12.00", 12.0), (" £ 7.5 ", 7.5), ("1000", 1000.0),
    ("£1,000,000", 1_000_000.0), ("free", None), ("", None), ("£", None), ("£1,23", None),
    ("nan", None), ("-5", None), ("£1.2.3", None), ("£5 ono", None), (None, None), (3.0, None),
])
def test_parse_price_table(text, expected):
    assert parse_price(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("Home & Garden / Garden & Patio / Sheds", "Home & Garden"), ("  Appliances  ", "Appliances"),
    ("Clothes, Footwear & Accessories / Jewellery", "Clothes, Footwear & Accessories"),
    ("", None), ("   ", None), (" / Sheds", None), ("/ Sheds", None), (None, None),
    (float("nan"), None),
])
def test_parse_category_table(text, expected):
    assert parse_category(text) == expected


def test_read_export_csv_handles_the_exports_quirks(tiny_export):
    table, bad_lines = read_export_csv(tiny_export / "Products.csv", ("id",), ("id", "price"))

    assert bad_lines == 1
    assert "Unnamed: 0" not in table.columns and len(table) == 7
    assert table.loc[0, "product_description"] == "Nice\nkettle"  # a bare \r kept the row whole
    assert table.loc[1, "id"] == "p2" and table.loc[1, "category"] == "Home & Garden / Sofas"


@pytest.mark.parametrize(("content", "message"), [
    ("", "is empty: expected a header line with columns id, category"),
    (',id,category,price\n0,p1,"Appliances,£5\n1,p2,Appliances,£6\n',
     "is not a readable CSV file: .*EOF inside string starting at row 1"),
])
def test_read_export_csv_unreadable_file_is_clierror(tmp_path, content, message):
    path = tmp_path / "Products.csv"
    path.write_text(content, encoding="utf-8")

    with pytest.raises(UserError, match=message):
        read_export_csv(path, ("id", "category", "price"), ("id", "price"))
