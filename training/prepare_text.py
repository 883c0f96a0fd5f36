"""``training.prepare --products Products.csv`` alone: a text-only dataset, one row per product.

The export's products table is cleaned as always (:func:`training.export.clean_products`: bad
prices, missing categories, duplicates and malformed lines dropped and counted), and every kept
product becomes one manifest row with ``image_id == product_id`` and an empty ``path`` (no photo).
``products.csv`` holds the text the text model reads (``product_name``, ``product_description``).
"""

import json
from collections import Counter
from pathlib import Path

from common.cli import UserError
from common.dataset_format import PRODUCTS_FILE, REPORT_JSON, REPORT_TXT, write_clean_dir
from training.export import PRODUCT_COLUMNS, REQUIRED_PRODUCT_COLUMNS, clean_products, read_export_csv

SOURCE = "products"


def prepare_products(products_csv: Path, out: Path, image_size: int) -> dict:
    """Clean ``products_csv`` into a text-only dataset in ``out``; return (and print) the report.

    Raises:
        UserError: if the table is missing or unreadable, or no product is usable.
    """
    table, bad_lines = read_export_csv(products_csv, PRODUCT_COLUMNS, REQUIRED_PRODUCT_COLUMNS)
    for column in ("product_name", "product_description"):
        if column not in table.columns:
            raise UserError(f"{products_csv} has no column {column!r}: a text-only dataset needs "
                            "the listings' product_name and product_description")
    products, drops = clean_products(table)
    if bad_lines:
        drops["malformed CSV line"] += bad_lines
    total = len(table) + bad_lines
    if products.empty:
        reasons = ", ".join(f"{r}: {n}" for r, n in drops.items())
        raise UserError(f"no usable products: {total} rows read, all dropped ({reasons})")
    categories = Counter(products["root_category"])
    report = {"source": SOURCE, "out": str(out), "image_size": image_size,
              "inputs": {"products": str(products_csv)},
              "products": {"total": total, "kept": len(products),
                           "dropped": dict(sorted(drops.items(), key=lambda kv: (-kv[1], kv[0])))},
              "categories": dict(sorted(categories.items()))}
    info = {"image_size": image_size, "source": SOURCE, "num_images": 0,
            "num_products": len(products), "categories": sorted(categories)}
    text = format_products_report(report)
    out.mkdir(parents=True, exist_ok=True)
    rows = [(pid, pid, category, "") for pid, category in
            zip(products["id"], products["root_category"], strict=True)]
    write_clean_dir(out, rows, info, {
        PRODUCTS_FILE: products.to_csv(index=False, lineterminator="\n"),
        REPORT_JSON: json.dumps(report, indent=2, ensure_ascii=False) + "\n", REPORT_TXT: text})
    print(text, end="")
    return report


def format_products_report(report: dict) -> str:
    section = report["products"]
    lines = [f"prepared {section['kept']} products (text only, no images) in "
             f"{len(report['categories'])} categories into {report['out']}",
             f"products: {section['total']} product rows, {section['kept']} kept, "
             f"{section['total'] - section['kept']} dropped"]
    lines += [f"  {n:6d}  {reason}" for reason, n in section["dropped"].items()]
    lines.append("kept products per category:")
    lines += [f"  {n:6d}  {name}" for name, n in report["categories"].items()]
    return "\n".join(lines) + "\n"
