"""market.store: one transaction per write, the change feed, idempotency, tokens by hash only."""

import sqlite3
from pathlib import Path

import pytest

from market import tokens
from market.store import MarketStore, NewListing


@pytest.fixture
def store(tmp_path: Path) -> MarketStore:
    return MarketStore.open(tmp_path)


def new(title: str = "Sofa", **kw) -> NewListing:
    return NewListing(title, "grey", kw.pop("price", 10.0), "Leeds, West Yorkshire", "Home & Garden",
                      **kw)


def test_database_is_wal_with_full_sync(store):
    db = store._db()
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_token_is_stored_only_as_its_hash(store, tmp_path):
    seller, token = store.create_seller("Ada")

    assert store.seller_of_token(token) == seller
    assert store.seller_of_token(token + "x") is None
    dump = "\n".join(sqlite3.connect(tmp_path / "market.db").iterdump())
    assert token not in dump and tokens.digest(token) in dump


def test_rotation_invalidates_the_old_token(store):
    seller, old = store.create_seller("Ada")
    new_token = store.rotate_token(seller)

    assert store.seller_of_token(old) is None and store.seller_of_token(new_token) == seller


def test_feed_reports_creates_edits_and_deletes_after_a_sequence(store):
    seller, _ = store.create_seller("Ada")
    a, _ = store.create_listing(seller, new("A"), {})
    b, _ = store.create_listing(seller, new("B"), {})
    head = store.head()
    store.update_listing(a, {"price": 5.0})
    store.delete_listing(b)

    after, present, removed = store.changes(head)
    assert after == store.head() == head + 2
    assert [(x.id, x.price, x.version) for x in present] == [(a, 5.0, 2)]
    assert removed == [b]
    assert store.changes(after) == (after, [], [])


def test_idempotency_key_answers_the_first_listing(store):
    seller, _ = store.create_seller("Ada")
    first_id, first = store.create_listing(seller, new("A"), {"category": "x"}, "key")
    again_id, again = store.create_listing(seller, new("B"), {"category": "y"}, "key")

    assert (again_id, again) == (first_id, first)
    assert [x.title for x in store.listings_of(seller)] == ["A"]
    assert store.answer_of(seller, "key") == first
    other, _ = store.create_seller("Eve")
    assert store.answer_of(other, "key") is None  # keys are per seller


def test_failed_write_leaves_nothing(store):
    seller, _ = store.create_seller("Ada")
    listing_id, _ = store.create_listing(seller, new("A"), {})
    head = store.head()

    with pytest.raises(sqlite3.IntegrityError):
        store.update_listing(listing_id, {"status": "lost"})
    assert store.head() == head and store.listing(listing_id).status == "active"


def test_delete_returns_only_photos_no_other_listing_uses(store):
    seller, _ = store.create_seller("Ada")
    shared, own = "a" * 64 + ".jpg", "b" * 64 + ".jpg"
    first, _ = store.create_listing(seller, new("A", photos=[shared, own]), {})
    store.create_listing(seller, new("B", photos=[shared]), {})

    assert store.delete_listing(first) == [own]
    assert store.photos_in_use() == {shared}


def test_update_of_a_deleted_listing_changes_nothing(store):
    seller, _ = store.create_seller("Ada")
    listing_id, _ = store.create_listing(seller, new("A"), {})
    store.delete_listing(listing_id)
    head = store.head()

    assert store.update_listing(listing_id, {"price": 1.0}) is None
    assert store.head() == head


def test_text_vector_is_stored_with_its_encoder_and_replaced_on_edit(store):
    seller, _ = store.create_seller("Ada")
    listing_id, _ = store.create_listing(seller, new(vector=b"\x01" * 8, model="img",
                                                     text_vector=b"\x02" * 8, text_model="enc"), {})
    stored = store.listing(listing_id)
    assert (stored.vector, stored.model, stored.text_vector, stored.text_model) == (
        b"\x01" * 8, "img", b"\x02" * 8, "enc")
    store.update_listing(listing_id, {"price": 5.0})  # no new text: the vectors stay
    assert store.listing(listing_id).text_vector == b"\x02" * 8
    store.update_listing(listing_id, {"title": "Settee"}, b"\x03" * 8, "img", b"\x04" * 8, "enc2")
    edited = store.listing(listing_id)
    assert (edited.vector, edited.text_vector, edited.text_model) == (b"\x03" * 8, b"\x04" * 8, "enc2")


def test_set_vectors_re_embeds_the_version_it_read_and_announces_it(store):
    seller, _ = store.create_seller("Ada")
    listing_id, _ = store.create_listing(seller, new(vector=b"\x01" * 8, model="old"), {})
    before, head = store.listing(listing_id), store.head()

    assert store.set_vectors(listing_id, 1, vector=b"\x03" * 8, model="new",
                             text_vector=b"\x04" * 8, text_model="enc")
    after = store.listing(listing_id)
    assert (after.vector, after.model, after.text_vector, after.text_model) == (
        b"\x03" * 8, "new", b"\x04" * 8, "enc")
    assert (after.version, after.updated) == (before.version, before.updated)  # not an edit
    assert store.changes(head)[1] == [after]  # every overlay hears of it

    store.update_listing(listing_id, {"title": "Settee"})  # a seller's edit: version 2
    head = store.head()
    assert not store.set_vectors(listing_id, 1, text_vector=b"\x05" * 8, text_model="enc")
    assert store.listing(listing_id).text_vector == b"\x04" * 8 and store.head() == head
    assert not store.set_vectors(listing_id, 2)  # nothing to store
    store.delete_listing(listing_id)
    assert not store.set_vectors(listing_id, 2, vector=b"\x06" * 8, model="new")


def test_all_listings_reads_every_row_in_batches(store):
    seller, _ = store.create_seller("Ada")
    ids = sorted(store.create_listing(seller, new(f"L{i}"), {})[0] for i in range(7))

    assert [listing.id for listing in store.all_listings(batch=3)] == ids
    assert [listing.id for listing in store.all_listings(batch=7)] == ids
    assert list(MarketStore.open(store.path.parent / "empty").all_listings()) == []


RELEASE_1_LISTINGS = """
CREATE TABLE sellers (id TEXT PRIMARY KEY, name TEXT NOT NULL, token_sha256 TEXT NOT NULL UNIQUE,
                      created REAL NOT NULL);
CREATE TABLE listings (id TEXT PRIMARY KEY, seller_id TEXT NOT NULL REFERENCES sellers(id),
    title TEXT NOT NULL, description TEXT NOT NULL, price REAL NOT NULL, location TEXT NOT NULL,
    category TEXT NOT NULL, status TEXT NOT NULL CHECK (status IN ('active', 'sold')),
    photos TEXT NOT NULL, vector BLOB, model TEXT, created REAL NOT NULL, updated REAL NOT NULL,
    version INTEGER NOT NULL);
"""


def test_store_of_an_earlier_release_gains_the_text_vector_columns(tmp_path):
    db = sqlite3.connect(tmp_path / "market.db")  # listings as the release before wrote them
    db.executescript(RELEASE_1_LISTINGS)
    db.execute("INSERT INTO sellers VALUES ('s-1', 'Ada', 'x', 0)")
    db.execute("INSERT INTO listings VALUES ('live-1','s-1','Sofa','grey',10,'Leeds','Home','active',"
               "'[]',NULL,NULL,0,0,1)")  # the 14 columns it had
    db.commit()
    db.close()

    store = MarketStore.open(tmp_path)
    MarketStore.open(tmp_path)  # a second process opening it adds nothing twice
    assert store.listing("live-1").title == "Sofa" and store.listing("live-1").text_vector is None
    listing_id, _ = store.create_listing("s-1", new(text_vector=b"\x02" * 8, text_model="enc"), {})
    assert store.listing(listing_id).text_model == "enc"


def test_opening_a_current_store_takes_no_write_lock(tmp_path):
    MarketStore.open(tmp_path)
    writer = sqlite3.connect(tmp_path / "market.db", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another process in the middle of a write

    store = MarketStore.open(tmp_path)  # waited for the lock, then failed, before

    assert store.listing("live-none") is None
    writer.execute("ROLLBACK")
