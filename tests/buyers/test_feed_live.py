"""The feed and the events with live listings (search.live, through the engine): a new live
listing is "new" in a cold feed and a candidate of a personal one, a sold one drops out of both
and out of the session's views; events may name live listings."""

from pathlib import Path

import numpy as np
import pytest

from buyers.events import Click, EventUnknown, check_listings
from buyers.feed import feed, held
from search.holder import EngineHolder
from search.live import LiveOverlay
from tests.search.test_live import MemoryFeed, listing

VIEWED = "prod-02-001"


@pytest.fixture
def live(encoder_search_index):
    changes = MemoryFeed()
    holder = EngineHolder(Path(encoder_search_index["index"]), LiveOverlay(changes))
    base = holder.get()
    # a live listing whose embedding is the viewed prod-02-001's: the nearest of all to a session
    # that viewed it (a copy of another listing's vector would only tie with that listing, and
    # which of a tie comes first is not the feed's promise)
    vector = np.asarray(base.vectors.vectors[base.position(VIEWED)])
    changes.put(listing("live-1", "A new one", vector, model=base.info.model_sha256,
                        category=base.get(VIEWED)["category"]))
    return holder, changes


def test_a_live_listing_is_new_and_near_its_kind(live):
    holder, _ = live
    engine = holder.get()

    cold = feed(engine, [], [], k=3)
    assert cold[0].id == "live-1" and cold[0].reason == "new"
    personal = feed(engine, [VIEWED], [], k=3, lam=1.0)
    assert personal[0].id == "live-1"
    assert held(engine, ["live-1", "prod-02-001", "gone"]) == ["live-1", "prod-02-001"]
    check_listings(engine, Click(type="click", listing="live-1", rank=1))


def test_a_sold_live_listing_leaves_feed_views_and_events(live):
    holder, changes = live
    changes.remove("live-1")
    engine = holder.get()

    assert "live-1" not in [item.id for item in feed(engine, ["prod-02-001"], ["live-1"], k=17)]
    assert held(engine, ["live-1", "prod-02-001"]) == ["prod-02-001"]
    with pytest.raises(EventUnknown):
        check_listings(engine, Click(type="click", listing="live-1", rank=1))
