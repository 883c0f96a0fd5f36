"""Listing datasets: the text each row reads, photo/text dropping in training, and refusals by name."""

import pytest
import torch

from aicore.text import TextFeaturizer
from common.cli import UserError
from common.dataset_format import read_clean_dir
from tests.support.data import make_clean_dataset
from tests.support.export import PRODUCTS_CSV
from training import listing_data
from training.listing_data import (ListingDataset, ListingTextDataset, build_dataset, has_images,
                                   read_listing_text)
from training.prepare_text import prepare_products

SIZE = 16


@pytest.fixture
def data(tmp_path):
    root = make_clean_dataset(tmp_path / "data", num_classes=2, products_per_class=3,
                              images_per_product=2, size=SIZE)
    return read_clean_dir(root)


@pytest.fixture
def text_only(tmp_path, capsys):
    products = tmp_path / "Products.csv"
    products.write_text(PRODUCTS_CSV, encoding="utf-8")
    prepare_products(products, tmp_path / "clean", SIZE)
    return read_clean_dir(tmp_path / "clean")


def test_has_images_tells_a_text_only_dataset(data, text_only):
    assert has_images(data) is True
    assert has_images(text_only) is False


def test_read_listing_text_maps_products_to_title_and_description(data):
    text = read_listing_text(data)

    name = data.class_names[0].split(" ")[0].strip(",").lower()
    assert text["prod-00-000"] == (f"{name} item 0 | in Leeds | Gumtree", f"A {name} thing, barely used.")
    assert text["prod-00-002"][1] == ""  # every third description is empty
    assert len(text) == 6


def test_read_listing_text_names_a_missing_table_and_column(data):
    (data.root / "products.csv").write_text("id,product_name\np,x\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"lacks column\(s\) \['product_description'\]"):
        read_listing_text(data)
    (data.root / "products.csv").unlink()
    with pytest.raises(UserError, match="has no listing text .*prepared from an image folder"):
        read_listing_text(data)


def test_text_dataset_featurises_each_row_with_the_models_featuriser(data):
    featurizer = TextFeaturizer(buckets=64)
    ids = ["img-01-001-1", "img-00-000-0"]

    dataset = ListingTextDataset(data, ids, featurizer)

    text = read_listing_text(data)
    assert len(dataset) == 2
    assert dataset[0] == (featurizer.encode(*text["prod-01-001"]), 1)
    assert dataset[1] == (featurizer.encode(*text["prod-00-000"]), 0)
    batch, labels = ListingTextDataset.collate([dataset[0], dataset[1]])
    assert labels.tolist() == [1, 0]
    assert batch.offsets.tolist() == [0, len(dataset[0][0])]


def test_text_dataset_names_an_unknown_row_and_a_product_without_text(data):
    with pytest.raises(UserError, match="1 id\\(s\\) are not in .*manifest.csv, e.g. 'img-x'"):
        ListingTextDataset(data, ["img-00-000-0", "img-x"], TextFeaturizer(buckets=64))
    (data.root / "products.csv").write_text(
        "id,product_name,product_description\nprod-00-000,a,b\n", encoding="utf-8")
    with pytest.raises(UserError, match="product\\(s\\) of .* are not in products.csv, e.g. 'prod-00-001'"):
        ListingTextDataset(data, ["img-00-000-0", "img-00-001-0"], TextFeaturizer(buckets=64))


def test_listing_dataset_for_evaluation_keeps_photo_and_text(data):
    featurizer = TextFeaturizer(buckets=64)
    dataset = ListingDataset(data, ["img-00-001-0"], featurizer, SIZE, augment=None)

    image, has_image, ids, label = dataset[0]

    assert image.shape == (3, SIZE, SIZE) and image.abs().sum() > 0 and has_image == 1.0
    assert ids == featurizer.encode(*read_listing_text(data)["prod-00-001"]) and label == 0


@pytest.mark.parametrize("draw, photo, text", [(0.1, False, True), (0.2, True, False), (0.5, True, True)])
def test_listing_dataset_for_training_hides_the_photo_or_the_text(data, monkeypatch, draw, photo, text):
    dataset = ListingDataset(data, ["img-00-000-0"], TextFeaturizer(buckets=64), SIZE, augment="flip")
    monkeypatch.setattr(listing_data.torch, "rand", lambda *shape: torch.tensor([draw]))

    image, has_image, ids, _ = dataset[0]

    assert has_image == (1.0 if photo else 0.0) and bool(image.abs().sum()) is photo
    assert bool(ids) is text


def test_listing_dataset_of_a_text_only_row_has_a_zero_photo(text_only):
    dataset = ListingDataset(text_only, None, TextFeaturizer(buckets=64), SIZE, augment=None)

    image, has_image, ids, _ = dataset[0]
    batch, labels = ListingDataset.collate([dataset[0], dataset[1]])

    assert has_image == 0.0 and torch.count_nonzero(image) == 0 and ids
    assert batch.has_image.tolist() == [0.0, 0.0] and batch.images.shape == (2, 3, SIZE, SIZE)
    assert len(labels) == 2


def test_build_dataset_refuses_an_image_model_on_text_only_data(text_only):
    with pytest.raises(UserError, match="is a text-only dataset .*--model cnn needs images; train --model "):
        build_dataset(text_only, None, torch.nn.Identity(), {"arch": "cnn", "image_size": SIZE}, None)
