"""Listing records: the SQLite round trip, BM25 with column weights, filters and the FTS query."""

import math
from pathlib import Path

import numpy as np
import pytest

from search.listings import Listing
from search.records import Records, common_words, fts_query, write_records


def _listing(pid: str, title: str, description: str = "", price: float | None = 10.0,
             location: str = "Leeds, West Yorkshire", category: str = "Home", root: Path = Path("/d")
             ) -> Listing:
    photos = (root / "images" / f"{pid}-a.png", root / "images" / f"{pid}-b.png")
    return Listing(pid, title, description, price, location, category, f"{category} / Misc",
                   (f"{pid}-a", f"{pid}-b"), photos)


@pytest.fixture
def records(tmp_path) -> Records:
    root = tmp_path / "data"
    listings = [
        _listing("p0", "Red sofa", "comfy, collection only", 120.0, "Hackney, London", "Home", root),
        _listing("p1", "Kettle", "a red kettle, collection only", None, "Café Town, Nord", "Appliances",
                 root),
        _listing("p2", "Desk", "oak desk with a sofa cushion, collection only", 45.5, "Leeds, West Yorkshire",
                 "Home", root),
    ]
    path = tmp_path / "listings.sqlite"
    write_records(path, listings, root)
    return Records(path)


def test_records_round_trip_fields_with_relative_image_paths(records):
    [record] = records.fetch([1])

    assert records.count == 3
    assert record["id"] == "p1" and record["title"] == "Kettle" and record["price"] is None
    assert record["image_ids"] == ["p1-a", "p1-b"]
    assert record["image_paths"] == ["images/p1-a.png", "images/p1-b.png"]
    assert (record["town"], record["region"]) == ("cafe town", "nord")


def test_fetch_keeps_the_asked_order(records):
    assert [r["id"] for r in records.fetch(np.array([2, 0, 1]))] == ["p2", "p0", "p1"]
    assert records.fetch([]) == []


def test_position_of_names_only_existing_ids(records):
    assert records.position_of(["p2", "ghost", "p0"]) == {"p2": 2, "p0": 0}


def test_attributes_are_arrays_by_position(records):
    attributes = records.attributes()

    assert attributes["price"][0] == 120.0 and math.isnan(attributes["price"][1])
    assert list(attributes["category"]) == ["Home", "Appliances", "Home"]
    assert list(attributes["region"]) == ["london", "nord", "west yorkshire"]


def test_common_words_are_those_in_more_than_half_the_listings(records):
    # "collection", "only" and "misc" are in all three; "red", "sofa", "a" and "home" in two of three
    assert records.common == frozenset({"collection", "only", "misc", "red", "sofa", "a", "home"})


def test_lexical_ranks_a_title_match_above_a_description_match(records):
    positions, scores = records.lexical("sofas", depth=10)

    assert list(positions) == [0, 2]  # porter stemming: "sofas" finds "sofa"
    assert scores[0] > scores[1]


def test_lexical_weights_change_the_order(records):
    positions, _ = records.lexical("sofa", depth=10, weights=(0.0, 10.0, 1.0, 1.0))

    assert list(positions) == [2, 0]  # description counts, title does not


def test_lexical_mask_drops_listings_and_still_fills_depth(records):
    allowed = np.array([False, True, True])

    # the best match (p0, title) is filtered out: a LIMIT 1 before the filter would return nothing
    positions, _ = records.lexical("sofa", depth=1, allowed=allowed)

    assert positions.tolist() == [2]
    assert records.lexical("sofa", depth=10, allowed=np.array([False, False, False]))[0].size == 0


def test_lexical_without_words_returns_nothing(records):
    positions, scores = records.lexical("  ,;  ", depth=5)

    assert positions.dtype == np.int64 and positions.size == 0 and scores.size == 0


def test_fts_query_quotes_words_and_drops_duplicates():
    assert fts_query('red "sofa" red OR') == '"red" OR "sofa" OR "OR"'
    assert fts_query("?!") is None


def test_fts_query_skips_common_words_unless_nothing_is_left():
    assert fts_query("Collection sofa", skip=frozenset({"collection"})) == '"sofa"'
    assert fts_query("Collection", skip=frozenset({"collection"})) == '"Collection"'


def test_common_words_fold_case_and_accents():
    listings = [_listing("a", "Café sofa"), _listing("b", "CAFE chair"), _listing("c", "desk")]

    words = common_words(listings)

    assert "cafe" in words and "sofa" not in words and "desk" not in words
