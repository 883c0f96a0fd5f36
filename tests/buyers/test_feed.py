"""MMR and the feed over a real index (the pretrained text encoder's, ``encoder_search_index``:
3 categories x 6 listings whose text names their kind)."""

import numpy as np
import pytest

from buyers.events import Click, EventUnknown, Impression, check_listings, to_event
from buyers.feed import cold, feed, mmr
from search import SearchEngine


@pytest.fixture(scope="module")
def engine(encoder_search_index) -> SearchEngine:
    return SearchEngine.open(encoder_search_index["index"])


def kind(engine: SearchEngine, listing: str) -> str:
    return engine.get(listing)["category"]


def test_mmr_with_lambda_one_is_the_relevance_order():
    relevance = np.array([0.2, 0.9, 0.5, 0.7], np.float32)
    vectors = np.eye(4, dtype=np.float32)

    assert mmr(relevance, vectors, 3, lam=1.0) == [1, 3, 2]


def test_mmr_skips_a_near_duplicate_of_a_picked_one():
    # candidates 0 and 1 are the same direction; 2 is orthogonal and a little less relevant
    vectors = np.array([[1, 0], [1, 0], [0, 1]], np.float32)
    relevance = np.array([0.9, 0.89, 0.8], np.float32)

    assert mmr(relevance, vectors, 2, lam=0.7) == [0, 2]
    assert mmr(relevance, vectors, 2, lam=1.0) == [0, 1]


def test_mmr_returns_at_most_the_candidates():
    assert mmr(np.ones(2, np.float32), np.eye(2, dtype=np.float32), 5, 0.5) == [0, 1]


def test_feed_after_views_of_one_kind_is_mostly_that_kind(engine):
    views = ["prod-01-000", "prod-01-001"]
    items = feed(engine, views, popular=[], k=6, lam=0.9)

    assert len(items) == 6
    assert not {item.id for item in items} & set(views)
    same = sum(item.category == kind(engine, views[0]) for item in items)
    assert same >= 4
    assert all(item.reason.startswith("like ") for item in items)
    titles = {engine.get(v)["title"] for v in views}
    assert all(item.reason[len("like "):] in titles for item in items)


def test_a_lower_lambda_diversifies_more(engine):
    views = ["prod-02-000", "prod-02-001", "prod-02-002"]
    focused = feed(engine, views, [], k=6, lam=1.0)
    diverse = feed(engine, views, [], k=6, lam=0.0)

    def share(items):
        return sum(item.category == kind(engine, views[0]) for item in items)

    assert share(diverse) < share(focused)


def test_the_latest_views_weigh_most(engine):
    old, new = ["prod-00-000"], ["prod-02-003"]  # weights 0.7 and 1 (the untuned decay)
    items = feed(engine, new + old, [], k=1, lam=1.0)

    assert items[0].category == kind(engine, new[0])


def test_a_cold_feed_is_popular_then_new(engine):
    items = cold(engine, ["prod-01-002", "gone-listing"], k=4, lam=0.7)

    assert len(items) == 4
    assert items[0].id == "prod-01-002" and items[0].reason == "popular"
    assert [item.reason for item in items[1:]] == ["new"] * 3
    assert "gone-listing" not in {item.id for item in items}


def test_a_short_personal_feed_is_filled_without_repeats(engine):
    items = feed(engine, ["prod-00-000"], popular=["prod-00-000", "prod-02-004"], k=len(engine))

    ids = [item.id for item in items]
    assert len(ids) == len(set(ids)) == len(engine) - 1
    assert "prod-00-000" not in ids


def test_events_name_the_unknown_listing(engine):
    with pytest.raises(EventUnknown, match=r"listings\[1\]: no listing 'nope'"):
        check_listings(engine, Impression(type="impression", listings=["prod-00-000", "nope"],
                                          source="search"))
    with pytest.raises(EventUnknown, match="^listing: no listing 'x'"):
        check_listings(engine, Click(type="click", listing="x", rank=1))


def test_a_click_without_query_comes_from_the_feed():
    assert to_event(Click(type="click", listing="a", rank=3)).source == "feed"
    assert to_event(Click(type="click", listing="a", rank=3, query="q")).source == "search"
