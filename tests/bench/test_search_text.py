"""bench.search_text's pure parts: the synthetic listings make a text-only dataset search can
index, and the derived TorchServe config serves the text model alone with the repository's
settings for it."""

import numpy as np

from bench import search_text
from common.properties import read_properties, served_models
from search.listings import read_listings
from serving.stack import REPO_ROOT


def test_synthetic_listings_are_a_text_only_dataset(tmp_path):
    products = search_text.synthetic_products(40, np.random.default_rng(0))

    data = search_text.write_dataset(tmp_path / "data", products)

    listings, dataset = read_listings(data)
    assert len(listings) == 40 and all(not x.image_paths for x in listings)
    assert {x.id for x in listings} == {p["id"] for p in products}
    first = next(x for x in listings if x.id == products[0]["id"])
    assert first.title == products[0]["product_name"] and first.price is not None
    assert set(dataset.class_names) <= set(search_text.ROOT_CATEGORIES)


def test_queries_name_an_item_of_the_listings(tmp_path):
    rng = np.random.default_rng(1)
    products = search_text.synthetic_products(20, rng)
    nouns = {noun for group in search_text.NOUNS for noun in group}

    texts = search_text.queries(products, 50, rng)

    assert len(texts) == 50 and all(any(noun in text for noun in nouns) for text in texts)


def test_text_only_config_serves_the_text_model_with_its_settings(tmp_path):
    config = search_text.text_only_config(tmp_path / "config.properties")

    models = served_models(config)
    assert list(models) == ["text"]
    assert models["text"] == served_models(REPO_ROOT / "config.properties")["text"]
    ours, repo = read_properties(config), read_properties(REPO_ROOT / "config.properties")
    assert {k: v for k, v in ours.items() if k != "model_snapshot"} == \
        {k: v for k, v in repo.items() if k != "model_snapshot"}


def test_query_only_config_serves_the_query_encoder_with_its_settings(tmp_path):
    config = search_text.text_only_config(tmp_path / "config.properties", "query")

    models = served_models(config)
    assert list(models) == ["query"]
    assert models["query"] == served_models(REPO_ROOT / "config.properties")["query"]
