"""Demo listing text: deterministic from the seed, one vocabulary per root category, and noise at
the documented rates (informative titles name their category's item, a quarter say nothing)."""

import numpy as np
import pytest

from aicore.categories import ROOT_CATEGORIES
from datagen import demo_text
from datagen.demo_text import GENERIC_TITLES, P_EMPTY_DESCRIPTION, P_GENERIC, VOCABULARY, listing_text

DRAWS = 2000


def _texts(seed: int, category: str = "Appliances", n: int = DRAWS) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    return [listing_text(rng, category, "Barely used", "Leeds, West Yorkshire", "£25", "\r")
            for _ in range(n)]


def test_vocabulary_covers_exactly_the_root_categories():
    assert set(VOCABULARY) == set(ROOT_CATEGORIES)
    assert all(items and brands and details for items, brands, details in VOCABULARY.values())


def test_listing_text_is_deterministic_from_the_generator():
    assert _texts(3, n=50) == _texts(3, n=50)
    assert _texts(3, n=50) != _texts(4, n=50)


def test_titles_end_with_the_place_and_site():
    titles = [title for title, _ in _texts(0, n=200)]

    assert all(title.endswith(" | in Leeds, West Yorkshire | Gumtree") for title in titles)


def test_generic_titles_and_empty_descriptions_come_at_their_rates():
    texts = _texts(1)
    names = [title.split(" | ")[0] for title, _ in texts]

    generic = sum(name in GENERIC_TITLES for name in names) / DRAWS
    empty = sum(description == "" for _, description in texts) / DRAWS
    assert generic == pytest.approx(P_GENERIC, abs=0.03)
    assert empty == pytest.approx(P_EMPTY_DESCRIPTION, abs=0.02)


@pytest.mark.parametrize("category", ["Appliances", "Baby & Kids Stuff"])
def test_informative_titles_name_an_item_of_their_category(category):
    items = VOCABULARY[category][0]
    names = [title.split(" | ")[0].lower() for title, _ in _texts(2, category)]
    informative = [name for name in names if name not in {t.lower() for t in GENERIC_TITLES}]

    named = sum(any(item in name for item in items) for name in informative) / len(informative)
    assert 0.8 < named < 1.0  # misspellings hide a few, never most


def test_non_empty_descriptions_say_where_to_collect_and_use_the_line_break():
    descriptions = [d for _, d in _texts(5, n=300) if d]

    assert all("Collection from Leeds." in d for d in descriptions)
    assert all("\r" in d for d in descriptions)


def test_misspell_changes_each_long_alphabetic_word_by_one_letter(monkeypatch):
    monkeypatch.setattr(demo_text, "P_MISSPELL", 1.0)
    words = ["the", "washing", "machine", "7kg", "works"]

    changed = demo_text._misspell(np.random.default_rng(0), " ".join(words)).split(" ")

    assert changed[0] == "the" and changed[3] == "7kg"  # short or not alphabetic: untouched
    for before, after in zip(words, changed, strict=True):
        if len(before) >= 4 and before.isalpha():
            assert after != before  # no doubled letters here, so a swap changes the word too
            assert abs(len(after) - len(before)) <= 1 and after[0] == before[0]
