"""Fixtures shared by the training tests."""

from pathlib import Path
import pytest

from tests.support.export import IMAGE_ROWS, PRODUCTS_CSV, _file_bytes
from training.export import IMAGE_COLUMNS



@pytest.fixture
def tiny_export(tmp_path, image_bytes) -> Path:
    """A hand-made export with one row for each quirk and drop reason (see EXPECTED_*)."""
    raw = tmp_path / "raw"
    (raw / "images").mkdir(parents=True)
    (raw / "Products.csv").write_bytes(PRODUCTS_CSV.encode("utf-8"))
    lines = ["," + ",".join(IMAGE_COLUMNS)]
    for n, (image_id, product_id, kind) in enumerate(IMAGE_ROWS):
        lines.append(f"{n},{image_id},{product_id},https://bucket/{image_id}.jpg,ref{n},2022-03-01")
        if kind is not None:
            (raw / "images" / f"{image_id}.jpg").write_bytes(_file_bytes(kind, image_bytes))
    (raw / "Images.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return raw
