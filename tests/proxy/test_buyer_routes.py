"""Buyers' routes and the session path of /search and /listings, against a real index (the
pretrained text encoder's) and a real sessions database; TorchServe is the one fake."""

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from proxy.app import create_app
from proxy.deps import get_torchserve
from proxy.sessions import COOKIE, HEADER
from proxy.settings import Settings
from search import layout
from search.encoder import index_embedder
from tests.support.torchserve import FakeTorchServe, embedding_answer


@pytest.fixture(scope="module")
def fake(encoder_search_index) -> FakeTorchServe:
    meta = layout.read_meta(layout.current_generation(encoder_search_index["index"]))
    return FakeTorchServe(embedding_answer(index_embedder(meta)),
                          f"20261201-{meta['model_sha256'][:8]}-eager")


@pytest.fixture
def app(encoder_search_index, tmp_path: Path, fake):
    shutil.copytree(encoder_search_index["index"], tmp_path / "index")
    app = create_app(Settings(key_file=tmp_path / "key_file.json",
                              search_index=tmp_path / "index", state_dir=tmp_path / "state"))
    app.dependency_overrides[get_torchserve] = lambda: fake
    return app


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


def category(client: TestClient, listing: str) -> str:
    return client.get(f"/listings/{listing}").json()["category"]


def test_opening_a_listing_starts_a_session_in_an_httponly_cookie(client):
    response = client.get("/listings/prod-01-000")

    assert response.status_code == 200
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie
    assert "samesite=lax" in cookie.lower() and "Secure" not in cookie
    assert client.get("/me/history").json()["views"] == ["prod-01-000"]


def test_a_new_client_gets_a_cold_feed_and_no_cookie(client):
    response = client.get("/feed", params={"k": 5})

    assert response.status_code == 200
    body = response.json()
    assert body["personalised"] is False and len(body["results"]) == 5
    assert {hit["reason"] for hit in body["results"]} <= {"new", "popular"}
    assert "set-cookie" not in response.headers


def test_views_move_the_feed_to_their_kind(client):
    for listing in ("prod-02-000", "prod-02-001"):
        client.get(f"/listings/{listing}")
    response = client.get("/feed", params={"k": 4})

    assert response.status_code == 200
    body = response.json()
    assert body["personalised"] is True and body["ranker"] == "feed-mmr"
    hits = body["results"]
    assert not {"prod-02-000", "prod-02-001"} & {hit["id"] for hit in hits}
    assert sum(hit["category"] == category(client, "prod-02-000") for hit in hits) >= 3
    assert hits[0]["reason"].startswith("like ") and hits[0]["url"] == f"/listings/{hits[0]['id']}"
    assert set(hits[0]) >= {"id", "title", "price", "location", "category", "score", "image_url"}


def test_clearing_the_history_resets_the_feed(client):
    client.get("/listings/prod-02-000")
    erased = client.delete("/me/history")

    assert erased.status_code == 200 and erased.json() == {"erased": 1}
    assert client.get("/feed").json()["personalised"] is False
    assert client.get("/me/history").json() == {"views": [], "events": []}


def test_two_clients_do_not_share_history(app):
    with TestClient(app) as one, TestClient(app) as two:
        one.get("/listings/prod-00-000")

        assert two.get("/me/history").json()["views"] == []
        assert two.get("/feed").json()["personalised"] is False
        assert one.get("/feed").json()["personalised"] is True


def test_search_without_viewed_uses_the_session_s_views(client):
    plain = client.get("/search", params={"q": "for sale", "k": 18}).json()
    client.get("/listings/prod-01-003")
    personal = client.get("/search", params={"q": "for sale", "k": 18}).json()

    explicit = client.get("/search", params={"q": "for sale", "k": 18, "viewed": "prod-01-003"},
                          headers={HEADER: "new"}).json()  # another session, no views of its own

    def ids(body):
        return [hit["id"] for hit in body["results"]]

    assert plain["personalised"] is False and personal["personalised"] is True
    assert ids(personal) == ids(explicit) != ids(plain)
    assert "prod-01-003" not in ids(personal)


def test_an_explicit_viewed_wins_over_the_session(client):
    client.get("/listings/prod-01-003")
    body = client.get("/search", params={"q": "for sale", "k": 18,
                                         "viewed": "prod-00-000"}).json()

    ids = [hit["id"] for hit in body["results"]]
    assert "prod-00-000" not in ids and "prod-01-003" in ids


def test_an_api_client_uses_the_header(client):
    started = client.get("/listings/prod-00-001", headers={HEADER: "new"})
    session = started.headers[HEADER]

    assert "set-cookie" not in started.headers
    history = client.get("/me/history", headers={HEADER: session}).json()
    assert history["views"] == ["prod-00-001"]
    assert client.get("/me/history").json()["views"] == []  # the cookie jar holds nothing


def test_an_unknown_session_id_is_replaced_not_adopted(client):
    forged = "A" * 32
    response = client.get("/listings/prod-00-001", headers={HEADER: forged})

    assert response.status_code == 200
    assert response.headers[HEADER] != forged
    assert client.get("/me/history", headers={HEADER: forged}).json()["views"] == []


def test_events_are_stored_in_order(client):
    shown = {"type": "impression", "listings": ["prod-00-000", "prod-01-000"], "query": "kettle",
             "source": "search", "ranker": "fused"}
    click = {"type": "click", "listing": "prod-01-000", "rank": 2, "query": "kettle"}

    assert client.post("/events", json=shown).status_code == 202
    response = client.post("/events", json=click)

    assert response.status_code == 202 and response.json() == {"recorded": "click"}
    events = client.get("/me/history").json()["events"]
    assert [e["type"] for e in events] == ["impression", "click"]
    assert events[0]["listings"] == shown["listings"] and events[1]["source"] == "search"
    assert "ip" not in events[0] and "address" not in events[0]


@pytest.mark.parametrize("event, field", [
    ({"type": "click", "listing": "prod-00-000", "rank": 0}, "rank"),
    ({"type": "click", "listing": "prod-00-000", "rank": 101}, "rank"),
    ({"type": "click", "listing": "prod-00-000"}, "rank"),
    ({"type": "impression", "listings": [], "source": "feed"}, "listings"),
    ({"type": "impression", "listings": ["prod-00-000"], "source": "mail"}, "source"),
    ({"type": "purchase", "listing": "prod-00-000"}, "type"),
    ({"type": "click", "listing": "prod-00-000", "rank": 1, "ip": "1.2.3.4"}, "ip"),
])
def test_a_malformed_event_is_a_422_naming_the_field(client, event, field):
    response = client.post("/events", json=event)

    assert response.status_code == 422
    assert any(field in map(str, error["loc"]) or f"'{field}'" in error["msg"]
               for error in response.json()["detail"])


def test_an_event_with_an_unknown_listing_is_a_422_naming_it(client):
    response = client.post("/events", json={"type": "impression", "source": "feed",
                                             "listings": ["prod-00-000", "gone"]})

    assert response.status_code == 422
    error, = response.json()["detail"]
    assert error["loc"] == ["body", "listings", 1] and error["input"] == "gone"
    assert error["msg"].startswith("listings[1]: no listing 'gone'")
    assert client.get("/me/history").json()["events"] == []


def test_feed_k_out_of_range_is_a_422(client):
    response = client.get("/feed", params={"k": 0})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "k"]


def test_an_unwritable_state_dir_is_a_503_for_events_not_for_listings(encoder_search_index,
                                                                       tmp_path, fake):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    shutil.copytree(encoder_search_index["index"], tmp_path / "index")
    app = create_app(Settings(key_file=tmp_path / "key_file.json",
                              search_index=tmp_path / "index", state_dir=blocker / "state"))
    with TestClient(app) as client:
        events = client.post("/events", json={"type": "click", "listing": "prod-00-000",
                                              "rank": 1})
        listing = client.get("/listings/prod-00-000")

    assert events.status_code == 503 and "AICORE_STATE_DIR" in events.json()["detail"]
    assert listing.status_code == 200
