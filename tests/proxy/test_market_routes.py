"""The sellers' routes against a real built index, a real market.db and a fake TorchServe that
embeds in-process with the index's own run (so the stored vector can be checked against the
index build's embedder)."""

import io
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from market.photos import clean_photo
from market.store import MarketStore
from proxy.app import create_app
from proxy.deps import get_torchserve
from proxy.settings import Settings
from search import layout
from search.embedders import ImageEmbedder
from search.listings import Listing
from tests.support.torchserve import FakeTorchServe, embedding_answer


@pytest.fixture
def index_dir(search_index, tmp_path: Path) -> Path:
    shutil.copytree(search_index["index"], tmp_path / "index")
    return tmp_path / "index"


@pytest.fixture(scope="module")
def embedder(search_index) -> ImageEmbedder:
    return ImageEmbedder(search_index["run"])


@pytest.fixture
def fake(search_index, embedder) -> FakeTorchServe:
    meta = layout.read_meta(layout.current_generation(search_index["index"]))
    return FakeTorchServe(embedding_answer(embedder), f"20261201-{meta['model_sha256'][:8]}-eager")


def make_client(index_dir: Path, state: Path, fake: FakeTorchServe, **settings) -> TestClient:
    app = create_app(Settings(key_file=state / "key_file.json", search_index=index_dir,
                              state_dir=state, **settings))
    app.dependency_overrides[get_torchserve] = lambda: fake
    return TestClient(app)


@pytest.fixture
def client(index_dir: Path, tmp_path: Path, fake) -> Iterator[TestClient]:
    with make_client(index_dir, tmp_path / "state", fake) as test_client:
        yield test_client


def register(client: TestClient, name: str = "Ada") -> dict[str, str]:
    response = client.post("/sellers", json={"name": name})
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def jpeg_with_gps(size=(64, 48), colour=(30, 160, 60)) -> bytes:
    img = Image.new("RGB", size, colour)
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x8825] = {1: "N", 2: (51.0, 30.0, 0.0), 3: "W", 4: (0.0, 7.0, 0.0)}  # GPS IFD
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", exif=exif)
    return buffer.getvalue()


def publish(client: TestClient, auth: dict, photos: list[bytes] = (), headers=None, **fields):
    form = {"title": "Green kettle - unused", "description": "A kettle, collection only",
            "price": "£1,234.50", "location": "Leeds, West Yorkshire", **fields}
    files = [("photos", (f"p{i}.jpg", data, "image/jpeg")) for i, data in enumerate(photos)]
    return client.post("/listings", data=form, files=files or None,
                       headers={**auth, **(headers or {})})


def test_publish_answers_201_and_search_finds_it_at_once(client):
    auth = register(client)
    response = publish(client, auth, [jpeg_with_gps()], category="appliances")

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["category"] == "Appliances" and body["url"] == f"/listings/{body['id']}"
    assert body["suggested"] == {"Appliances": 1.0}
    hits = client.get("/search", params={"q": "kettle unused", "k": 20}).json()["results"]
    assert body["id"] in [hit["id"] for hit in hits]
    record = client.get(body["url"]).json()
    assert record["price"] == 1234.5 and record["location"] == "Leeds, West Yorkshire"


def test_publish_without_category_takes_the_suggestion(client):
    response = publish(client, register(client))

    assert response.status_code == 201, response.text
    assert response.json()["category"] == "Appliances"


def test_stored_vector_is_what_the_index_build_computes(client, embedder, tmp_path):
    photos = [jpeg_with_gps(), jpeg_with_gps(colour=(200, 20, 20))]
    listing_id = publish(client, register(client), photos).json()["id"]

    stored = MarketStore(tmp_path / "state" / "market.db").listing(listing_id)
    vector = np.frombuffer(stored.vector, np.float32)
    paths = tuple(tmp_path / "state" / "photos" / n[:2] / n for n in stored.photos)
    listing = Listing(listing_id, "t", "", 1.0, "", "Appliances", "Appliances",
                      tuple(stored.photos), paths)
    from search.embedders import EmbeddingCache

    built = embedder.embed_listings([listing], EmbeddingCache(None), progress=False)[0]
    np.testing.assert_allclose(vector, built, atol=1e-5)


def test_photo_is_served_without_its_metadata(client):
    listing_id = publish(client, register(client), [jpeg_with_gps()]).json()["id"]

    response = client.get(f"/listings/{listing_id}/image")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    served = Image.open(io.BytesIO(response.content))
    assert len(served.getexif()) == 0 and b"PhoneMaker" not in response.content
    assert served.size == (64, 48)


def test_photo_similar_and_filters_see_the_live_listing(client, search_index):
    photo = (search_index["data"] / "images").glob("*.png").__next__().read_bytes()
    listing_id = publish(client, register(client), [photo], price="5").json()["id"]

    similar = client.get(f"/listings/{listing_id}/similar", params={"k": 3})
    assert similar.status_code == 200 and len(similar.json()["results"]) == 3
    found = client.post("/search", files={"image": ("q.png", photo)}, params={"k": 5,
                                                                              "max_price": 6})
    assert found.status_code == 200
    assert [hit["id"] for hit in found.json()["results"]] == [listing_id]


def test_edit_changes_what_search_sees(client):
    auth = register(client)
    listing_id = publish(client, auth).json()["id"]

    response = client.patch(f"/listings/{listing_id}", json={"title": "Blue toaster",
                                                             "price": "£20"}, headers=auth)
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 2
    ids = [h["id"] for h in client.get("/search", params={"q": "toaster"}).json()["results"]]
    assert ids == [listing_id]
    assert client.get(f"/listings/{listing_id}").json()["price"] == 20.0


def test_sold_and_deleted_leave_search(client):
    auth = register(client)
    sold = publish(client, auth, title="Sold toaster").json()["id"]
    gone = publish(client, auth, title="Gone toaster").json()["id"]

    assert client.patch(f"/listings/{sold}", json={"status": "sold"}, headers=auth).status_code == 200
    assert client.delete(f"/listings/{gone}", headers=auth).status_code == 204
    assert client.get("/search", params={"q": "toaster"}).json()["results"] == []
    assert client.get(f"/listings/{gone}").status_code == 404
    mine = client.get("/sellers/me/listings", headers=auth).json()["listings"]
    assert [(x["id"], x["status"]) for x in mine] == [(sold, "sold")]


def test_writes_need_the_sellers_own_token(client):
    owner, other = register(client), register(client, "Eve")
    listing_id = publish(client, owner).json()["id"]

    assert publish(client, {}).status_code == 401
    assert publish(client, {"Authorization": "Bearer nope"}).status_code == 401
    response = client.patch(f"/listings/{listing_id}", json={"price": 1}, headers=other)
    assert response.status_code == 403 and "another seller" in response.json()["detail"]
    assert client.delete(f"/listings/{listing_id}", headers=other).status_code == 403


def test_rotated_token_replaces_the_old_one(client):
    auth = register(client)
    response = client.post("/sellers/me/token", headers=auth)

    assert response.status_code == 200
    assert publish(client, auth).status_code == 401
    new = {"Authorization": f"Bearer {response.json()['token']}"}
    assert publish(client, new).status_code == 201


def test_idempotency_key_returns_the_first_answer(client):
    auth = register(client)
    first = publish(client, auth, headers={"Idempotency-Key": "k1"})
    again = publish(client, auth, headers={"Idempotency-Key": "k1"}, title="Other")

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert len(client.get("/sellers/me/listings", headers=auth).json()["listings"]) == 1


@pytest.mark.parametrize("field, value, named", [
    ("price", "free", "price"), ("price", "£1,23", "price"), ("location", "Atlantis", "location"),
    ("category", "Spaceships", "category"), ("title", "   ", "title")])
def test_bad_field_is_a_422_naming_it(client, field, value, named):
    response = publish(client, register(client), **{field: value})

    assert response.status_code == 422
    assert response.json()["detail"].startswith(f"{named}:")


def test_empty_edit_is_a_422(client):
    auth = register(client)
    listing_id = publish(client, auth).json()["id"]

    response = client.patch(f"/listings/{listing_id}", json={}, headers=auth)
    assert response.status_code == 422 and response.json()["detail"].startswith("body:")
    unknown = client.patch(f"/listings/{listing_id}", json={"colour": "red"}, headers=auth)
    assert unknown.status_code == 422 and "colour" in unknown.text


def test_undecodable_photo_is_a_400_naming_it(client):
    response = publish(client, register(client), [b"not an image"])

    assert response.status_code == 400 and response.json()["detail"].startswith("photos[0]")


def test_torchserve_down_is_a_503_and_nothing_is_stored(client, fake):
    from proxy.errors import TorchServeUnreachable

    auth = register(client)
    fake.error = TorchServeUnreachable("TorchServe is not reachable")
    response = publish(client, auth)

    assert response.status_code == 503
    fake.error = None
    assert client.get("/sellers/me/listings", headers=auth).json()["listings"] == []


def test_registrations_are_rate_limited(index_dir, tmp_path, fake):
    with make_client(index_dir, tmp_path / "state", fake, registration_burst=2) as client:
        codes = [client.post("/sellers", json={"name": "x"}).status_code for _ in range(3)]
        response = client.post("/sellers", json={"name": "x"})

    assert codes == [201, 201, 429]
    assert response.status_code == 429 and int(response.headers["Retry-After"]) >= 1


def test_another_process_over_the_same_store_sees_the_listing(index_dir, tmp_path, fake):
    state = tmp_path / "state"
    with make_client(index_dir, state, fake) as writer, make_client(index_dir, state, fake) as reader:
        assert reader.get("/search", params={"q": "toaster"}).json()["results"] == []
        listing_id = publish(writer, register(writer), title="Red toaster").json()["id"]

        ids = [h["id"] for h in reader.get("/search", params={"q": "toaster"}).json()["results"]]
    assert ids == [listing_id]


def test_restart_rebuilds_the_overlay_from_the_store(index_dir, tmp_path, fake):
    state = tmp_path / "state"
    with make_client(index_dir, state, fake) as first:
        listing_id = publish(first, register(first), title="Red toaster").json()["id"]
    with make_client(index_dir, state, fake) as second:
        ids = [h["id"] for h in second.get("/search", params={"q": "toaster"}).json()["results"]]
    assert ids == [listing_id]
    assert clean_photo(jpeg_with_gps())  # the cleaner is deterministic enough to re-run


# --- a photo index with text vectors: the listing's text vector by the index's encoder ----------

def market_fake(index: Path, serve_query: bool = True) -> FakeTorchServe:
    """The index's CNN and (``serve_query``) the query encoder as ``multimodal_fake`` serves
    them, and the listing model suggesting categories (the canned answer)."""
    from tests.proxy.test_search_routes import multimodal_fake
    from tests.support.torchserve import canned

    fake = multimodal_fake(index, serve_query)
    embed = fake.answer
    fake.answer = lambda model, request: (canned(model, request) if model == "listing"
                                          else embed(model, request))
    return fake


@pytest.fixture
def multimodal_market(multimodal_search_index, tmp_path: Path):
    shutil.copytree(multimodal_search_index["index"], tmp_path / "index")
    fake = market_fake(multimodal_search_index["index"])
    with make_client(tmp_path / "index", tmp_path / "state", fake) as test_client:
        yield test_client, fake


def test_publish_on_an_index_with_text_vectors_stores_the_encoders_vector(multimodal_market,
                                                                          multimodal_search_index,
                                                                          tmp_path):
    from search import SearchEngine
    from search.encoder import text_encoder_embedder
    from search.embedders import EmbeddingCache

    client, fake = multimodal_market
    auth = register(client)
    listing_id = publish(client, auth, [jpeg_with_gps()], title="Zanzibar kettle",
                         description="barely used").json()["id"]

    stored = MarketStore(tmp_path / "state" / "market.db").listing(listing_id)
    engine = SearchEngine.open(multimodal_search_index["index"])
    encoder = text_encoder_embedder(engine.meta)
    assert stored.text_model == engine.info.text_encoder.sha256
    built = encoder.embed_listings([Listing(listing_id, "Zanzibar kettle", "barely used", 1.0, "",
                                            "Appliances", "Appliances", (), ())],
                                   EmbeddingCache(None), progress=False)[0]
    np.testing.assert_allclose(np.frombuffer(stored.text_vector, np.float32), built, atol=1e-5)

    # found by the text-dense retriever alone, as a built listing is
    found = client.get("/search", params={"q": "zanzibar kettle", "retriever": "text_dense", "k": 3})
    assert found.status_code == 200, found.text
    assert listing_id in [hit["id"] for hit in found.json()["results"]]

    # an edit of the text makes the text vector again, and only the encoder is asked
    fake.calls.clear()
    edited = client.patch(f"/listings/{listing_id}", json={"description": "boxed"}, headers=auth)
    assert edited.status_code == 200, edited.text
    assert [model for model, _ in fake.calls] == ["query"]
    again = MarketStore(tmp_path / "state" / "market.db").listing(listing_id)
    assert again.text_vector != stored.text_vector and again.vector == stored.vector


def test_publish_needs_the_text_encoder_the_index_names(multimodal_search_index, tmp_path):
    # the index's text search needs the encoder as much as its own model: without it a listing
    # is refused (503 naming it) rather than published unfindable by one of the three lists
    shutil.copytree(multimodal_search_index["index"], tmp_path / "index")
    fake = market_fake(multimodal_search_index["index"], serve_query=False)
    with make_client(tmp_path / "index", tmp_path / "state", fake) as client:
        auth = register(client)
        response = publish(client, auth, [jpeg_with_gps()], title="Zanzibar kettle")
        assert response.status_code == 503, response.text
        assert "'query'" in response.json()["detail"]
        assert client.get("/sellers/me/listings", headers=auth).json()["listings"] == []
