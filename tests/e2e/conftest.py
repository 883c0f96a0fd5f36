"""Fixtures shared by the end-to-end tests: a listing-search index built from the serving CNN."""

from pathlib import Path

import pytest

from search import build
from tests.support.search_data import make_listings_dataset


@pytest.fixture(scope="session")
def search_index(serving_runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The serving CNN's own dataset (same ids, so its split applies) with listing text, indexed
    by the serving CNN run: 13 categories x 3 listings."""
    root = tmp_path_factory.mktemp("search_e2e")
    data = make_listings_dataset(root / "clean", num_classes=13, products_per_class=3,
                                 images_per_product=1, size=128)
    build.main(build.get_args_parser().parse_args(
        ["--data", str(data), "--run", str(serving_runs["cnn"]), "--out", str(root / "index"),
         "--no-progress", "--no-text-encoder"]))  # a photo index alone (q: lexical)
    return root / "index"
