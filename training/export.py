"""Reading and cleaning the marketplace export's two tables (``Products.csv``, ``Images.csv``).

The real export is messy; each quirk is handled here once:

- an extra unnamed index column (pandas' ``to_csv`` default) -> dropped;
- bare carriage returns inside unquoted descriptions -> read with ``lineterminator="\\n"`` (a default
  reader would split the row there), then normalised to ``"\\n"``;
- stray whitespace around ids, categories and column names -> stripped;
- duplicated ids -> the first row is kept;
- a line with the wrong number of fields -> skipped and counted, never fatal;
- prices such as ``"£1,234.50"``, ``"£5"`` -> float; anything else ("free", "") drops the row;
- category paths -> their root (:func:`aicore.categories.root_category`).

Every dropped row is counted by reason so ``training.prepare`` can report it.
"""

import re
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from aicore.categories import CATEGORY_SEPARATOR, root_category
from common.cli import UserError
from common.prices import parse_price

PRODUCT_COLUMNS = ("id", "product_name", "category", "product_description", "price", "location")
IMAGE_COLUMNS = ("id", "product_id", "bucket_link", "image_ref", "create_time")
# Only the columns prepare uses are required; the others are carried along when present.
REQUIRED_PRODUCT_COLUMNS = ("id", "category", "price")
REQUIRED_IMAGE_COLUMNS = ("id", "product_id")
# Image ids become file names: refuse anything that could leave the output folder.
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def parse_category(text: object) -> str | None:
    """The root category of a category path, or ``None`` when it is missing or has an empty root.

    A path that starts with the separator (``" / Sheds"``, or ``"/ Sheds"`` once stripped) has an
    empty root too.
    """
    if isinstance(text, str) and text.strip().startswith(CATEGORY_SEPARATOR.strip()):
        return None
    try:
        return root_category(text)
    except ValueError:
        return None


def read_export_csv(path: Path, expected: tuple[str, ...],
                    required: tuple[str, ...]) -> tuple[pd.DataFrame, int]:
    """Read one export table as text, tolerant of its quirks.

    Args:
        path: the CSV file.
        expected: the columns the export normally has (named in error messages).
        required: the columns that must be present.

    Returns:
        The table (every value a stripped string, ``""`` when empty) and the number of lines that
        were skipped because they had too many fields.

    Raises:
        UserError: if the file is missing, empty, unreadable as CSV or lacks a required column.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} not found: expected the export's {path.name} with columns "
                       f"{', '.join(expected)}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", pd.errors.ParserWarning)
        try:
            table = pd.read_csv(path, dtype=str, keep_default_na=False, lineterminator="\n",
                                on_bad_lines="warn", encoding="utf-8", encoding_errors="replace")
        except pd.errors.EmptyDataError:
            raise UserError(f"{path} is empty: expected a header line with columns "
                           f"{', '.join(expected)}") from None
        except pd.errors.ParserError as exc:
            raise UserError(f"{path} is not a readable CSV file: {exc}") from None
    bad_lines = sum(str(w.message).count("Skipping line") for w in caught)
    table = _tidy(table)
    missing = [column for column in required if column not in table.columns]
    if missing:
        raise UserError(f"{path} has no column {missing[0]!r}: expected columns "
                       f"{', '.join(expected)}; found {', '.join(table.columns) or 'none'}")
    return table, bad_lines


def _tidy(table: pd.DataFrame) -> pd.DataFrame:
    """Strip column names and values, drop unnamed index columns, normalise line breaks."""
    table.columns = [str(c).strip().lstrip("\ufeff").strip() for c in table.columns]
    keep = [c for c in table.columns if c and not c.startswith("Unnamed:")]
    table = table.loc[:, keep].fillna("")
    for column in table.columns:
        table[column] = (table[column].astype(str).str.replace("\r\n", "\n", regex=False)
                         .str.replace("\r", "\n", regex=False).str.strip())
    return table.reset_index(drop=True)


def _drop(table: pd.DataFrame, bad: pd.Series, reason: str,
          dropped: Counter) -> pd.DataFrame:
    """Remove the rows where ``bad`` is True and count them under ``reason``."""
    count = int(bad.sum())
    if count:
        dropped[reason] += count
    return table.loc[~bad]


def clean_products(table: pd.DataFrame) -> tuple[pd.DataFrame, Counter]:
    """Drop unusable product rows; add ``price`` as float64 and ``root_category``.

    Each dropped row is counted under its first failing reason.

    Returns:
        The cleaned products (columns of :data:`PRODUCT_COLUMNS` present, plus ``root_category``
        after ``category``) and the drop counts by reason.
    """
    dropped: Counter = Counter()
    table = _drop(table, table["id"] == "", "missing product id", dropped)
    table = _drop(table, table["id"].duplicated(keep="first"), "duplicate product id", dropped)
    prices = table["price"].map(parse_price)
    table = _drop(table, prices.isna(), "unparseable price", dropped)
    roots = table["category"].map(parse_category)
    table = _drop(table, roots.isna(), "missing category", dropped)
    table = table.assign(price=prices.loc[table.index].astype(np.float64),
                         root_category=roots.loc[table.index].astype(str))
    columns = [c for c in PRODUCT_COLUMNS if c in table.columns]
    columns.insert(columns.index("category") + 1, "root_category")
    extra = [c for c in table.columns if c not in columns]
    return table[columns + extra].reset_index(drop=True), dropped


def clean_image_rows(table: pd.DataFrame, all_product_ids: set[str],
                     products: pd.DataFrame) -> tuple[pd.DataFrame, Counter]:
    """Join image rows to the cleaned products; drop and count the rows that cannot be used.

    Args:
        table: ``Images.csv`` as read by :func:`read_export_csv`.
        all_product_ids: every product id in ``Products.csv`` (before cleaning), to tell an image
            without a product from an image whose product row was dropped.
        products: the output of :func:`clean_products`.

    Returns:
        Columns ``image_id, product_id, category`` (category = the product's root category) and
        the drop counts by reason.
    """
    dropped: Counter = Counter()
    table = _drop(table, table["id"] == "", "missing image id", dropped)
    table = _drop(table, ~table["id"].map(lambda i: bool(_SAFE_ID.fullmatch(i))),
                  "invalid image id", dropped)
    table = _drop(table, table["id"].duplicated(keep="first"), "duplicate image id", dropped)
    table = _drop(table, ~table["product_id"].isin(all_product_ids), "image without a product",
                  dropped)
    category = dict(zip(products["id"], products["root_category"], strict=True))
    table = _drop(table, ~table["product_id"].isin(category), "product row dropped", dropped)
    joined = pd.DataFrame({"image_id": table["id"], "product_id": table["product_id"],
                           "category": table["product_id"].map(category)})
    return joined.reset_index(drop=True), dropped
