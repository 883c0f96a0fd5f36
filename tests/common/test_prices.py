"""common.prices: the export's price format, the one a seller types too."""

import pytest

from common.prices import parse_price


@pytest.mark.parametrize("text, expected", [
    ("£1,234.50", 1234.5), ("£5", 5.0), ("12.00", 12.0), (" £ 80 ", 80.0), ("1234", 1234.0)])
def test_prices_the_export_writes(text, expected):
    assert parse_price(text) == expected


@pytest.mark.parametrize("text", ["free", "", "£1,23", "POA", "-5", "£", "1e3", None, 12])
def test_anything_else_is_not_a_price(text):
    assert parse_price(text) is None
