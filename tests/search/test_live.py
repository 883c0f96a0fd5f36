"""search.live: the overlay follows a change feed; the engine merges it into every retriever."""

from pathlib import Path

import numpy as np
import pytest

from search.engine import SearchEngine, SearchRequest
from search.errors import BadRequest
from search.holder import EngineHolder
from search.live import LiveListing, LiveOverlay, LiveQuery, merge


class MemoryFeed:
    """The one fake of :class:`search.live.LiveFeed`: changes appended in memory."""

    def __init__(self) -> None:
        self.log: list[tuple[str, LiveListing | None]] = []
        self.reads = 0

    def head(self) -> int:
        return len(self.log)

    def put(self, listing: LiveListing) -> None:
        self.log.append((listing.id, listing))

    def remove(self, listing_id: str) -> None:
        self.log.append((listing_id, None))

    def changes(self, after: int):
        self.reads += 1
        latest = dict(self.log[after:])
        present = [x for x in latest.values() if x is not None]
        return len(self.log), present, [i for i, x in latest.items() if x is None]


def listing(listing_id: str, title: str, vector=None, model="m", price=10.0,
            category="Appliances", location="Leeds, West Yorkshire") -> LiveListing:
    vector = None if vector is None else np.asarray(vector, np.float32)
    return LiveListing(listing_id, title, "", price, location, category, (), (), vector, model)


@pytest.fixture
def overlay() -> tuple[LiveOverlay, MemoryFeed]:
    feed = MemoryFeed()
    live = LiveOverlay(feed)
    live.bind("m", 2)
    return live, feed


def test_catch_up_applies_creates_edits_and_removals(overlay):
    live, feed = overlay
    feed.put(listing("a", "red sofa", [1, 0]))
    feed.put(listing("b", "blue lamp", [0, 1]))
    assert live.catch_up() == 2 and len(live) == 2
    feed.put(listing("a", "green sofa", [1, 0]))
    feed.remove("b")

    assert live.catch_up() == 2
    assert live.get("a")["title"] == "green sofa" and live.get("b") is None
    mask = live.mask(LiveQuery())
    assert [live.records[r]["id"] for r in live.lexical("sofa", 5, mask, (1, 1, 1, 1))[0]] == ["a"]
    assert live.lexical("red", 5, mask, (1, 1, 1, 1))[0].size == 0  # the edit replaced the text


def test_nothing_new_costs_only_the_head(overlay):
    live, feed = overlay
    feed.put(listing("a", "sofa", [1, 0]))
    live.catch_up()
    reads = feed.reads

    assert live.catch_up() == 0 and feed.reads == reads


def test_dense_uses_only_vectors_of_the_bound_model(overlay):
    live, feed = overlay
    feed.put(listing("a", "x", [1, 0]))
    feed.put(listing("b", "y", [0.6, 0.8], model="other"))
    live.catch_up()

    rows, scores = live.dense(np.array([1, 0], np.float32), 5, live.mask(LiveQuery()))
    assert [live.records[r]["id"] for r in rows] == ["a"] and scores[0] == pytest.approx(1.0)
    live.bind("other", 2)  # another model: start over from the feed
    live.catch_up()
    rows, _ = live.dense(np.array([1, 0], np.float32), 5, live.mask(LiveQuery()))
    assert [live.records[r]["id"] for r in rows] == ["b"]


def test_filters_price_category_place_and_exclusion(overlay):
    live, feed = overlay
    feed.put(listing("a", "x", [1, 0], price=5, location="Hackney, London"))
    feed.put(listing("b", "x", [1, 0], price=50, category="Home & Garden"))
    live.catch_up()

    def ids(**query) -> list[str]:
        return sorted(live.records[r]["id"] for r in np.flatnonzero(live.mask(LiveQuery(**query))))

    assert ids(max_price=10) == ["a"] and ids(category="Home & Garden") == ["b"]
    assert ids(near="London") == ["a"] and ids(near="Leeds, West Yorkshire") == ["b"]
    assert ids(exclude=["a"]) == ["b"]


def test_compaction_keeps_the_live_listings(overlay):
    live, feed = overlay
    for i in range(3000):
        feed.put(listing(f"x{i}", "chair", [1, 0]))
        if i % 3:
            feed.remove(f"x{i}")
    live.catch_up()

    assert len(live) == 1000 and len(live.records) < 3000
    assert live.get("x2999") is None and live.get("x2997")["title"] == "chair"


def test_merge_ranks_both_lists_by_score_with_live_positions_offset():
    base = (np.array([3, 7]), np.array([0.9, 0.5], np.float32))
    live = (np.array([0]), np.array([0.7], np.float32))

    positions, scores = merge(base, live, offset=100, depth=2)
    assert positions.tolist() == [3, 100] and scores.tolist() == pytest.approx([0.9, 0.7])
    assert merge(None, live, 100, 2) is None


@pytest.fixture
def engine(search_index) -> tuple[SearchEngine, MemoryFeed]:
    feed = MemoryFeed()
    holder = EngineHolder(Path(search_index["index"]), LiveOverlay(feed))
    return holder, feed


def test_engine_finds_live_listings_by_text_vector_filter_and_id(engine):
    holder, feed = engine
    base = holder.get()
    vector = np.asarray(base.vectors.vectors[0])
    feed.put(listing("live-1", "kettle zanzibar", vector, model=base.info.model_sha256, price=1.0,
                     category=base.categories[0]))
    engine_ = holder.get()  # catches up

    assert [h.id for h in engine_.search(SearchRequest(text="zanzibar")).hits] == ["live-1"]
    dense = engine_.search(SearchRequest(vector=vector, k=2, max_price=2)).hits
    assert [h.id for h in dense] == ["live-1"]
    assert engine_.get("live-1")["live"] is True
    similar = engine_.similar("live-1", k=3)
    assert "live-1" not in [h.id for h in similar.hits] and len(similar.hits) == 3
    personal = engine_.search(SearchRequest(text="kettle", viewed=["live-1"]))
    assert personal.personalised and "live-1" not in [h.id for h in personal.hits]


def test_engine_forgets_a_removed_live_listing(engine):
    holder, feed = engine
    base = holder.get()
    feed.put(listing("live-1", "zanzibar", None, category=base.categories[0]))
    assert [h.id for h in holder.get().search(SearchRequest(text="zanzibar")).hits] == ["live-1"]
    feed.remove("live-1")

    assert holder.get().search(SearchRequest(text="zanzibar")).hits == []
    with pytest.raises(BadRequest):
        holder.get().search(SearchRequest(text="x", viewed=["live-1"]))


# --- an index with text vectors: live listings' text vectors by the bound encoder ---------------

def test_text_dense_uses_only_text_vectors_of_the_bound_encoder():
    feed = MemoryFeed()
    live = LiveOverlay(feed)
    live.bind("m", 2, "enc", 3)
    feed.put(LiveListing("a", "x", "", 1.0, "Leeds, West Yorkshire", "Appliances", (), (), None,
                         None, np.array([1, 0, 0], np.float32), "enc"))
    feed.put(LiveListing("b", "y", "", 1.0, "Leeds, West Yorkshire", "Appliances", (), (), None,
                         None, np.array([1, 0, 0], np.float32), "other-encoder"))
    feed.put(LiveListing("c", "z", "", 1.0, "Leeds, West Yorkshire", "Appliances", (), (), None,
                         None, np.array([1, 0], np.float32), "enc"))  # wrong size: not used
    live.catch_up()

    rows, scores = live.text_dense(np.array([1, 0, 0], np.float32), 5, live.mask(LiveQuery()))
    assert [live.records[r]["id"] for r in rows] == ["a"] and scores[0] == pytest.approx(1.0)
    assert live.text_vector("a") is not None and live.text_vector("b") is None
    assert live.dense(np.array([1, 0], np.float32), 5, live.mask(LiveQuery()))[0].size == 0
    for i in range(2100):  # compaction keeps the text vectors
        feed.put(LiveListing(f"x{i}", "t", "", 1.0, "Leeds, West Yorkshire", "Appliances", (), (),
                             None, None))
        feed.remove(f"x{i}")
    live.catch_up()
    assert len(live.records) < 100
    assert live.text_vector("a").tolist() == [1, 0, 0] and live.text_vector("b") is None


@pytest.fixture
def multimodal_engine(multimodal_search_index) -> tuple[EngineHolder, MemoryFeed]:
    feed = MemoryFeed()
    return EngineHolder(Path(multimodal_search_index["index"]), LiveOverlay(feed)), feed


def test_engine_finds_a_live_listing_by_its_text_vector(multimodal_engine):
    # A new listing on a photo index with text vectors competes on all three lists: its text
    # vector (made at publish by the encoder the index names) is searched like the built ones'.
    holder, feed = multimodal_engine
    base = holder.get()
    encoder = base.info.text_encoder
    built = np.asarray(base.text_vectors.vectors[0])  # take a built listing's text vector
    feed.put(LiveListing("live-1", "zanzibar", "", 1.0, "Leeds, West Yorkshire",
                         base.categories[0], (), (), None, None, built, encoder.sha256))
    engine = holder.get()

    found = engine.search(SearchRequest(text_vector=built, text="anything", k=3,
                                        retriever="text_dense")).hits
    assert "live-1" in [h.id for h in found[:2]]  # ties the built listing it copies
    fused = engine.search(SearchRequest(text="zanzibar", text_vector=built, k=3)).hits
    assert fused[0].id == "live-1" and fused[0].matched == ["lexical", "text_dense"]
    personal = engine.user_vector(["live-1"], vector_set="text_dense")
    assert personal == pytest.approx(built / np.linalg.norm(built), abs=1e-6)
