"""The listings of a cleaned dataset: export text and prices, image-folder titles, text-only rows."""

import pytest

from common.cli import UserError
from search.listings import _price, read_listings
from tests.support.export import PRODUCTS_CSV
from tests.support.search_data import make_listings_dataset
from training.prepare_text import prepare_products


@pytest.fixture
def export_dir(tmp_path):
    return make_listings_dataset(tmp_path / "data", num_classes=2, products_per_class=3,
                                 images_per_product=2, size=16)


def test_read_listings_groups_photos_under_their_product(export_dir):
    listings, data = read_listings(export_dir)

    expected = [f"prod-{c:02d}-{p:03d}" for c in range(2) for p in range(3)]
    assert [listing.id for listing in listings] == expected
    first = listings[0]
    assert first.image_ids == ("img-00-000-0", "img-00-000-1")
    assert first.image_paths == (data.root / "images" / "img-00-000-0.png",
                                 data.root / "images" / "img-00-000-1.png")
    assert all(path.is_absolute() for path in first.image_paths)


def test_read_listings_takes_text_price_and_place_from_products(export_dir):
    listings, data = read_listings(export_dir)
    first, last = listings[0], listings[2]  # product 0 costs 10, the category's last has no price

    assert (first.title, first.price) == ("Kettle - barely used", 10.0)
    assert first.location == "Leeds, West Yorkshire"
    assert first.category == data.class_names[0]
    assert first.category_path == f"{data.class_names[0]} / Things"
    assert first.text == "Kettle - barely used\nA kettle for sale. Collection from Leeds."
    assert last.price is None


def test_read_listings_of_an_image_folder_titles_by_file_name(export_dir):
    (export_dir / "products.csv").unlink()

    listings, data = read_listings(export_dir)

    first = listings[0]
    assert (first.title, first.description, first.price, first.location) == ("prod 00 000", "", None, "")
    assert first.category_path == first.category == data.class_names[0]
    assert first.text == "prod 00 000"


def test_read_listings_of_a_text_only_dataset_has_no_photos(tmp_path, capsys):
    products = tmp_path / "Products.csv"
    products.write_text(PRODUCTS_CSV, encoding="utf-8")
    prepare_products(products, tmp_path / "clean", 64)

    listings, _ = read_listings(tmp_path / "clean")

    assert [(listing.id, listing.image_ids, listing.image_paths) for listing in listings] == [
        ("p1", ("p1",), ()), ("p2", ("p2",), ()), ("p5", ("p5",), ()), ("p7", ("p7",), ())]
    assert listings[0].price == 1234.5 and listings[1].category_path == "Home & Garden / Sofas"


def test_read_listings_names_a_products_table_without_ids(export_dir):
    (export_dir / "products.csv").write_text("name,price\nsofa,5\n", encoding="utf-8")

    with pytest.raises(UserError, match=f"cannot read {export_dir.resolve() / 'products.csv'}"):
        read_listings(export_dir)


@pytest.mark.parametrize("text, price", [("12.5", 12.5), ("0", 0.0), ("", None), ("free", None),
                                         ("nan", None), ("inf", None)])
def test_price_keeps_only_finite_numbers(text, price):
    assert _price(text) == price
