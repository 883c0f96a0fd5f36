"""Category names: parsing marketplace category paths and the label file shared with serving."""

import json
from collections.abc import Iterable
from pathlib import Path

# The 13 root categories of the marketplace. Training never relies on this list (the classes come
# from the data); it seeds the demo data and documents what a full export contains.
ROOT_CATEGORIES = (
    "Appliances",
    "Baby & Kids Stuff",
    "Clothes, Footwear & Accessories",
    "Computers & Software",
    "DIY Tools & Materials",
    "Health & Beauty",
    "Home & Garden",
    "Music, Films, Books & Games",
    "Office Furniture & Equipment",
    "Other Goods",
    "Phones, Mobile Phones & Telecoms",
    "Sports, Leisure & Travel",
    "Video Games & Consoles",
)

CATEGORY_SEPARATOR = " / "
INDEX_TO_NAME_FILE = "index_to_name.json"


def root_category(path: object) -> str:
    """Return the root of a category path: the text before the first ``" / "``, stripped.

    ``"Home & Garden / Dining / Chairs"`` -> ``"Home & Garden"``.

    Raises:
        ValueError: if ``path`` is not a string or its root is empty.
    """
    if not isinstance(path, str):
        raise ValueError(f"category must be text, got {path!r}")
    root = path.split(CATEGORY_SEPARATOR, 1)[0].strip()
    if not root:
        raise ValueError(f"category {path!r} has an empty root")
    return root


def index_to_name(names: Iterable[str]) -> dict[str, str]:
    """Map class index -> name, with names sorted alphabetically so the order is stable anywhere.

    Returns TorchServe's format: ``{"0": "Appliances", "1": ...}``.
    """
    unique = sorted(set(names))
    if not unique:
        raise ValueError("no category names given")
    return {str(i): name for i, name in enumerate(unique)}


def index_to_name_text(mapping: dict[str, str]) -> str:
    """The text of ``index_to_name.json`` (TorchServe's label-file format) for ``mapping``."""
    return json.dumps(mapping, indent=2, ensure_ascii=False) + "\n"


def read_index_to_name(path: Path) -> list[str]:
    """Read ``index_to_name.json`` and return the names in index order.

    Raises:
        ValueError: if the file is not a ``{"0": name, ..., "N-1": name}`` mapping.
    """
    path = Path(path)
    try:
        mapping = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read label file {path}: {exc}") from exc
    if not isinstance(mapping, dict) or not mapping:
        raise ValueError(f"label file {path} must be a non-empty JSON object")
    expected = {str(i) for i in range(len(mapping))}
    if set(mapping) != expected:
        raise ValueError(f"label file {path} must have keys 0..{len(mapping) - 1}, got {sorted(mapping)}")
    return [str(mapping[str(i)]) for i in range(len(mapping))]
