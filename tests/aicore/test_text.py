"""aicore.text: cleaning, tokenisation, hashed features, and training/serving parity."""

import pandas as pd
import pytest
import torch

from aicore.text import (MAX_TOKENS, TextFeaturizer, clean_text, collate_ids, listing_tokens,
                         tokenize)
from handler.listing_handler import ListingClassifierHandler
from tests.support.handler import make_context
from tests.support.listing_models import SMALL_TEXT, write_model_dir
from training import prepare
from common.dataset_format import read_clean_dir
from training.listing_data import ListingTextDataset


@pytest.mark.parametrize(("raw", "clean"), [
    ("  Brand   NEW\tiPhone\n13 ", "brand new iphone 13"),
    ("ｉＰｈｏｎｅ ﬁne", "iphone fine"),  # NFKC: full-width letters, ligature
    ("Tom &amp; Jerry &pound;5 &#39;mint&#39;", "tom & jerry £5 'mint'"),
    ("<b>Sofa</b><br/>grey", "sofa grey"),
    ("&lt;p&gt;escaped tag&lt;/p&gt;", "escaped tag"),
    ("Café Straße", "café strasse"),  # accents kept, casefold
    ("", ""),
])
def test_clean_text_normalises(raw, clean):
    assert clean_text(raw) == clean


def test_tokenize_splits_on_punctuation_symbols_and_emoji():
    assert tokenize(clean_text("£1,234.50 ono!! 32GB 😊👍 well-used café")) == [
        "1", "234", "50", "ono", "32gb", "well", "used", "café"]


def test_listing_tokens_caps_length_title_first():
    tokens, n_title = listing_tokens("red sofa", "word " * 5000)
    assert len(tokens) == MAX_TOKENS
    assert tokens[:2] == ["red", "sofa"] and n_title == 2


def test_featurizer_is_deterministic_and_in_range():
    a = TextFeaturizer(buckets=1000).encode("Dyson hoover", "barely used")
    b = TextFeaturizer(buckets=1000).encode("Dyson hoover", "barely used")
    assert a == b
    assert all(0 <= i < 1000 for i in a)
    # words (4) + title words again (2) + bigrams (3) + char 3..5-grams of each word
    assert len(a) > 4 + 2 + 3


def test_featurizer_title_and_description_differ():
    f = TextFeaturizer(buckets=2**18)
    assert f.encode("sofa", "") != f.encode("", "sofa")


def test_featurizer_empty_listing_has_no_ids():
    assert TextFeaturizer().encode("", "  😊 <br> ") == []


def test_collate_ids_offsets():
    batch = collate_ids([[1, 2, 3], [], [4]])
    assert batch.ids.tolist() == [1, 2, 3, 4]
    assert batch.offsets.tolist() == [0, 3, 3]


@pytest.fixture(scope="module")
def text_handler(tmp_path_factory):
    model_dir = write_model_dir(tmp_path_factory.mktemp("text_model"), "text", ["a", "b"])
    threads = torch.get_num_threads()
    service = ListingClassifierHandler()
    service.initialize(make_context(model_dir))
    yield service
    torch.set_num_threads(threads)


def test_training_and_handler_give_the_same_tensor(demo_export, tmp_path, text_handler):
    """The raw export's title/description, as a caller would send them, against what training
    reads after prepare: same ids, same EmbeddingBag input."""
    out = tmp_path / "clean"
    prepare.main(prepare.get_args_parser().parse_args(
        ["--products", str(demo_export.out / "Products.csv"), "--out", str(out)]))
    data = read_clean_dir(out)
    dataset = ListingTextDataset(data, None, TextFeaturizer(**SMALL_TEXT))
    raw = pd.read_csv(demo_export.out / "Products.csv", dtype=str, keep_default_na=False,
                      lineterminator="\n", on_bad_lines="skip").set_index("id")
    raw.index = raw.index.str.strip()
    raw = raw[~raw.index.duplicated()]
    compared = 0
    for i, product_id in enumerate(data.manifest["product_id"]):
        title, description = raw.loc[product_id, ["product_name", "product_description"]]
        rows = [{"body": {"title": title, "description": description}}]
        [served] = text_handler.preprocess(rows)
        if isinstance(served, Exception):  # an empty listing: training keeps it as an empty bag
            assert dataset[i][0] == []
            continue
        assert served.ids == dataset[i][0]
        expected, got = collate_ids([dataset[i][0]]), text_handler.collate([served])
        assert torch.equal(expected.ids, got.ids) and torch.equal(expected.offsets, got.offsets)
        compared += 1
    assert compared >= 30  # 3 products per category in the demo fixture, nearly all with text
    # the raw text really is messy: carriage returns, entities or tags reach the handler
    assert raw["product_description"].str.contains("\r|&|<", regex=True).any()
