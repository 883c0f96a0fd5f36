"""Prices as the marketplace writes them: ``"£1,234.50"``, ``"£5"``, ``"12.00"``.

One parser for the export (``training.export``) and for what a seller types (the proxy's
``POST /listings``), so a price the index accepts is a price a seller may enter, and the reverse.
"""

import re

# An optional pound sign, digits with optional thousands commas in the right places, optional
# decimals. "£1,23" is refused: the comma could be a decimal separator.
_PRICE = re.compile(r"£?(?P<units>\d{1,3}(?:,\d{3})+|\d+)(?P<decimals>\.\d+)?")


def parse_price(text: object) -> float | None:
    """``"£1,234.50"`` -> ``1234.5``; ``None`` for anything that is not a price (``"free"``, ``""``)."""
    if not isinstance(text, str):
        return None
    match = _PRICE.fullmatch(re.sub(r"\s+", "", text))
    if match is None:
        return None
    return float(match["units"].replace(",", "") + (match["decimals"] or ""))
