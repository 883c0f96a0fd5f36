"""search.places: near= matches towns and regions by name, and a typo is refused with suggestions."""

import numpy as np
import pytest

from search.errors import BadRequest
from search.places import Places, place_key, split_location

LOCATIONS = ["Leeds, West Yorkshire", "Hackney, London", "Camden, London", "Bristol, Bristol",
             "Nowhere"]


def places() -> Places:
    towns, regions = zip(*(split_location(x) for x in LOCATIONS), strict=True)
    return Places(np.array([place_key(t) for t in towns]), np.array([place_key(r) for r in regions]))


@pytest.mark.parametrize(("name", "key"), [("West  Yorkshire", "west yorkshire"),
                                           ("Zürich", "zurich"), ("St. Albans", "st albans")])
def test_place_key_folds_case_accents_and_punctuation(name, key):
    assert place_key(name) == key


def test_split_location_takes_the_region_after_the_last_comma():
    assert split_location("Hackney, London") == ("Hackney", "London")
    assert split_location(" Leeds ") == ("Leeds", "")


@pytest.mark.parametrize(("near", "expected"), [
    ("Leeds", [True, False, False, False, False]),
    ("london", [False, True, True, False, False]),  # a region: all its towns
    ("Camden, London", [False, False, True, False, False]),
    ("Bristol", [False, False, False, True, False]),  # both a town and a region
])
def test_near_matches_towns_and_regions(near, expected):
    assert places().near(near).tolist() == expected


def test_unknown_place_is_refused_with_the_closest_names():
    with pytest.raises(BadRequest, match=r"unknown place near='Londn'.*did you mean 'london'"):
        places().near("Londn")


def test_a_town_in_another_region_is_unknown():
    with pytest.raises(BadRequest, match="unknown place"):
        places().near("Leeds, London")
