"""The session store: sessions, events, bounds, retention, erasure, popularity."""

import sqlite3

import pytest

from buyers.store import SESSION_ID, Event, SessionStore


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path, clock) -> SessionStore:
    store = SessionStore(tmp_path / "state" / "sessions.db", max_events=5, retention_s=100.0,
                         clock=clock)
    yield store
    store.close()


def view(listing: str) -> Event:
    return Event(type="view", source="listing", listing=listing)


def test_new_session_is_random_and_well_formed(store):
    first, second = store.new_session(), store.new_session()

    assert first != second
    assert SESSION_ID.fullmatch(first) and SESSION_ID.fullmatch(second)
    assert store.exists(first)


@pytest.mark.parametrize("given", [None, "", "x" * 32, "short", "a" * 31 + "!"])
def test_exists_refuses_unknown_or_malformed_ids(store, given):
    assert not store.exists(given)


def test_views_are_most_recent_first_and_distinct(store):
    session = store.new_session()
    store.record(session, [view("a"), view("b")])
    store.record(session, [view("a"), view("c")])

    assert store.views(session, 10) == ["c", "a", "b"]
    assert store.views(session, 2) == ["c", "a"]


def test_sessions_do_not_see_each_other(store):
    one, two = store.new_session(), store.new_session()
    store.record(one, [view("a")])

    assert store.views(two, 10) == []
    assert store.history(two) == []


def test_a_session_keeps_only_its_latest_events(store):
    session = store.new_session()
    store.record(session, [view(str(i)) for i in range(8)])

    assert [e.listing for e in store.history(session)] == ["3", "4", "5", "6", "7"]


def test_impressions_and_clicks_round_trip(store):
    session = store.new_session()
    store.record(session, [Event(type="impression", source="search", query="sofa", ranker="fused",
                                 shown=["a", "b", "c"]),
                           Event(type="click", source="search", query="sofa", listing="b", rank=2)])

    shown, click = store.history(session)
    assert (shown.type, shown.shown, shown.query, shown.ranker) == ("impression", ["a", "b", "c"],
                                                                   "sofa", "fused")
    assert (click.type, click.listing, click.rank, click.session) == ("click", "b", 2, session)


def test_erase_deletes_the_session_s_events_only(store):
    one, two = store.new_session(), store.new_session()
    store.record(one, [view("a"), view("b")])
    store.record(two, [view("c")])

    assert store.erase(one) == 2
    assert store.views(one, 10) == [] and store.history(one) == []
    assert store.views(two, 10) == ["c"]
    assert store.exists(one)  # the id stays valid: the buyer keeps browsing


def test_erasure_survives_reopening(tmp_path, clock):
    path = tmp_path / "sessions.db"
    store = SessionStore(path, clock=clock)
    session = store.new_session()
    store.record(session, [view("a")])
    store.erase(session)
    store.close()

    rows = sqlite3.connect(path).execute("SELECT COUNT(*) FROM events").fetchone()
    assert rows == (0,)


def test_sweep_deletes_sessions_past_retention(store, clock):
    old, fresh = store.new_session(), store.new_session()
    store.record(old, [view("a")])
    clock.now += 60
    store.record(fresh, [view("b")])
    clock.now += 50  # old: last seen 110 s ago; fresh: 50 s ago

    assert not store.exists(old) and store.exists(fresh)
    assert store.sweep() == 1
    assert store.history(old) == [] and store.views(fresh, 10) == ["b"]


def test_popular_counts_distinct_sessions(store, clock):
    for listings in (["a", "a", "a"], ["a", "b"], ["b", "c"], ["b"]):
        store.record(store.new_session(), [view(x) for x in listings])

    assert store.popular(2) == [("b", 3), ("a", 2)]


def test_events_carry_no_address(store):
    columns = {row[1] for row in store._db.execute("PRAGMA table_info(events)")}
    columns |= {row[1] for row in store._db.execute("PRAGMA table_info(sessions)")}

    assert not columns & {"ip", "address", "host", "user_agent"}
