"""The search routes against a real built index (session fixture ``search_index``) and a fake
TorchServe that embeds in-process with the index's own run."""

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from proxy.app import create_app
from proxy.deps import get_torchserve
from proxy.settings import Settings
from search import layout
from search.embedders import ImageEmbedder, load_embedder
from search.encoder import index_embedder, text_encoder_embedder
from search.engine import SearchEngine
from common.codec import ModelRequest
from common.server_timing import parse_timing
from tests.support.e2e import free_ports
from tests.support.torchserve import FakeTorchServe, describe, embedding_answer, embedding_answers


@pytest.fixture
def index_dir(search_index, tmp_path: Path) -> Path:
    shutil.copytree(search_index["index"], tmp_path / "index")
    return tmp_path / "index"


@pytest.fixture(scope="module")
def fake(search_index) -> FakeTorchServe:
    meta = layout.read_meta(layout.current_generation(search_index["index"]))
    return FakeTorchServe(embedding_answer(ImageEmbedder(search_index["run"])),
                          f"20261201-{meta['model_sha256'][:8]}-eager")


@pytest.fixture
def client(index_dir: Path, tmp_path: Path, fake) -> Iterator[TestClient]:
    settings = Settings(key_file=tmp_path / "key_file.json", search_index=index_dir)
    app = create_app(settings)
    app.dependency_overrides[get_torchserve] = lambda: fake
    with TestClient(app) as test_client:
        yield test_client


def photo(search_index, image_id: str) -> bytes:
    return (search_index["data"] / "images" / f"{image_id}.png").read_bytes()


def test_get_search_ranks_by_text_and_says_why(client):
    response = client.get("/search", params={"q": "kettle", "k": 3})

    assert response.status_code == 200
    body = response.json()
    assert body["retriever"] == "lexical" and body["embedded_by"] is None
    assert [hit["category"] for hit in body["results"]] == ["Appliances"] * 3
    hit = body["results"][0]
    assert hit["matched"] == ["lexical"] and hit["url"] == f"/listings/{hit['id']}"
    assert set(hit) >= {"id", "title", "price", "location", "category", "score", "image_url"}


def test_post_search_with_photo_embeds_it_through_torchserve(client, fake, search_index):
    response = client.post("/search", params={"k": 3},
                           files={"image": ("q.png", photo(search_index, "img-01-002-0"))})

    assert response.status_code == 200
    body = response.json()
    assert body["retriever"] == "dense" and body["embedded_by"] == "cnn"
    assert body["results"][0]["category"] == "Baby & Kids Stuff"
    assert fake.calls[-1][0] == "cnn" and fake.calls[-1][1].embedding


def test_post_search_with_photo_and_text_fuses(client, search_index):
    response = client.post("/search", params={"k": 5}, data={"q": "pram"},
                           files={"image": ("q.png", photo(search_index, "img-01-002-0"))})

    assert response.status_code == 200
    body = response.json()
    assert body["retriever"] == "fused"
    assert body["results"][0]["matched"] == ["dense", "lexical"]


def test_search_filters_and_personalisation_reach_the_engine(client):
    response = client.get("/search", params={"q": "vintage", "k": 3, "near": "London",
                                             "viewed": "prod-02-003,prod-02-004"})

    assert response.status_code == 200
    body = response.json()
    assert body["personalised"] is True
    assert all(hit["location"].endswith("London") for hit in body["results"])


@pytest.mark.parametrize(("params", "status", "message"), [
    ({}, 400, "empty query"),
    ({"q": "kettle", "k": 0}, 400, "k=0 is out of range"),
    ({"q": "kettle", "k": 500}, 400, "k=500 is out of range"),
    ({"q": "kettle", "min_price": 9, "max_price": 1}, 400, "above max_price"),
    ({"q": "kettle", "near": "Atlantis"}, 400, "unknown place"),
    ({"q": "kettle", "category": "Boats"}, 400, "unknown category"),
    ({"q": "kettle", "viewed": "ghost"}, 400, "viewed listing"),
    ({"q": "kettle", "k": "ten"}, 422, "int"),
])
def test_get_search_bad_input_is_a_clear_4xx(client, params, status, message):
    response = client.get("/search", params=params)

    assert response.status_code == status
    assert message in str(response.json()["detail"])


def test_post_search_corrupt_photo_is_400(client):
    response = client.post("/search", files={"image": ("q.png", b"not an image at all")})

    assert response.status_code == 400
    assert "image" in response.json()["detail"]


def test_post_search_nothing_is_400(client):
    response = client.post("/search")

    assert response.status_code == 400
    assert "empty query" in response.json()["detail"]


def test_post_search_refuses_a_served_model_of_other_weights(client, fake, search_index):
    fake.version, real = "20261201-deadbeef-eager", fake.version
    try:
        response = client.post("/search", files={"image": ("q.png", photo(search_index, "img-01-002-0"))})
    finally:
        fake.version = real

    assert response.status_code == 503
    assert "deadbeef" in response.json()["detail"] and "make index" in response.json()["detail"]


def test_listing_record_image_and_similar(client, search_index):
    record = client.get("/listings/prod-01-002")
    image = client.get("/listings/prod-01-002/image", params={"n": 1})
    similar = client.get("/listings/prod-01-002/similar", params={"k": 4})

    assert record.status_code == 200
    assert record.json()["title"] == "Pram - brand new"
    assert record.json()["image_urls"] == ["/listings/prod-01-002/image?n=0",
                                           "/listings/prod-01-002/image?n=1"]
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.content == photo(search_index, "img-01-002-1")
    assert similar.status_code == 200
    ids = [hit["id"] for hit in similar.json()["results"]]
    assert len(ids) == 4 and "prod-01-002" not in ids


@pytest.mark.parametrize("path", ["/listings/ghost", "/listings/ghost/image",
                                  "/listings/ghost/similar"])
def test_unknown_listing_is_404(client, path):
    response = client.get(path)

    assert response.status_code == 404
    assert "no listing 'ghost'" in response.json()["detail"]


def test_missing_index_is_503_with_what_to_run(tmp_path, fake):
    settings = Settings(key_file=tmp_path / "k.json", search_index=tmp_path / "nothing")
    app = create_app(settings)
    app.dependency_overrides[get_torchserve] = lambda: fake
    with TestClient(app) as client:
        response = client.get("/search", params={"q": "kettle"})

    assert response.status_code == 503
    assert "make index" in response.json()["detail"]


def test_index_being_built_is_503_with_retry_after(tmp_path, fake):
    settings = Settings(key_file=tmp_path / "k.json", search_index=tmp_path / "index")
    with layout.build_lock(tmp_path / "index"), TestClient(create_app(settings)) as client:
        response = client.get("/listings/x")

    assert response.status_code == 503
    assert "being built" in response.json()["detail"] and response.headers["Retry-After"]


def test_rebuilt_index_is_picked_up_without_restart(client, index_dir):
    before = client.get("/search", params={"q": "kettle"}).json()["index"]
    old = layout.current_generation(index_dir)
    new = index_dir / "gen-29990101T000000-abcdef"
    shutil.copytree(old, new)
    layout.publish(index_dir, new)

    response = client.get("/search", params={"q": "kettle"})

    assert response.status_code == 200
    assert before == old.name and response.json()["index"] == new.name


# --- a text index: the query text is embedded by TorchServe's text model --------------------------

@pytest.fixture
def text_fake(text_search_index) -> FakeTorchServe:
    meta = layout.read_meta(layout.current_generation(text_search_index["index"]))
    return FakeTorchServe(embedding_answer(load_embedder(text_search_index["run"])),
                          f"20261201-{meta['model_sha256'][:8]}-eager")


def text_app(text_search_index, tmp_path: Path, **settings: object):
    shutil.copytree(text_search_index["index"], tmp_path / "index")
    return create_app(Settings(key_file=tmp_path / "key_file.json",
                               search_index=tmp_path / "index", **settings))


@pytest.fixture
def text_client(text_search_index, text_fake, tmp_path: Path) -> Iterator[TestClient]:
    app = text_app(text_search_index, tmp_path)
    app.dependency_overrides[get_torchserve] = lambda: text_fake
    with TestClient(app) as test_client:
        yield test_client


def test_get_search_on_a_text_index_embeds_the_query_and_fuses(text_client, text_fake,
                                                               text_search_index):
    response = text_client.get("/search", params={"q": "pram", "k": 5})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["retriever"] == "fused" and body["embedded_by"] == "text"
    assert text_fake.calls[-1] == ("text", ModelRequest(title="pram", embedding=True))
    timing = parse_timing(response.headers["Server-Timing"])  # where the time went, per step
    assert {"embed", "search", "search-dense", "search-lexical", "search-fuse",
            "search-hydrate", "thread-hop", "route"} <= set(timing)
    assert timing["search"] == pytest.approx(body["took_ms"], abs=1e-3)
    assert timing["route"] >= timing["embed"] + timing["search-dense"]
    assert any("dense" in hit["matched"] for hit in body["results"])
    # the dense score is the cosine of the query's embedding and the listing's stored vector
    engine = SearchEngine.open(text_search_index["index"])
    query = load_embedder(text_search_index["run"]).embed_query(text="pram")
    hit = next(hit for hit in body["results"] if hit["dense_score"] is not None)
    stored = engine.vectors.vectors[engine.position(hit["id"])]
    assert hit["dense_score"] == pytest.approx(float(stored @ query), abs=1e-5)


def test_get_search_ranks_with_the_index_s_stored_ranking(text_search_index, text_fake, tmp_path):
    from search import tune
    from search.ranking import Ranking

    app = text_app(text_search_index, tmp_path)
    tune.store(tmp_path / "index", SearchEngine.open(tmp_path / "index"),
               Ranking(dense_weight=0.25, rrf_k=5), {"queries": "q", "qrels": "r", "steps": []})
    app.dependency_overrides[get_torchserve] = lambda: text_fake
    with TestClient(app) as client:
        response = client.get("/search", params={"q": "pram", "k": 5})

    assert response.status_code == 200, response.text
    both = [h for h in response.json()["results"] if h["dense_rank"] and h["lexical_rank"]]
    assert both
    for hit in both:
        assert hit["score"] == pytest.approx(0.25 / (5 + hit["dense_rank"]) + 1 / (5 + hit["lexical_rank"]))


@pytest.mark.parametrize(("retriever", "matched"), [("dense", {"dense"}),
                                                     ("lexical", {"lexical"})])
def test_get_search_on_a_text_index_keeps_each_retriever(text_client, text_fake, retriever,
                                                         matched):
    before = len(text_fake.calls)
    response = text_client.get("/search", params={"q": "pram", "retriever": retriever})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["retriever"] == retriever
    assert all(set(hit["matched"]) == matched for hit in body["results"])
    # lexical alone needs no embedding, so no TorchServe call
    assert len(text_fake.calls) - before == (0 if retriever == "lexical" else 1)


def test_get_search_on_a_text_index_without_words_is_400_before_torchserve(text_client,
                                                                          text_fake):
    response = text_client.get("/search", params={"q": "?!"})

    assert response.status_code == 400
    assert "no words" in response.json()["detail"]
    assert text_fake.calls == []


def test_post_photo_to_a_text_index_says_to_search_with_text(text_client, search_index):
    response = text_client.post("/search", files={"image": ("q.png", photo(search_index,
                                                                           "img-01-002-0"))})

    assert response.status_code == 400
    assert "does not embed photos" in response.json()["detail"]


def test_get_search_on_a_text_index_refuses_other_served_weights(text_client, text_fake):
    text_fake.version = "20261201-deadbeef-eager"

    response = text_client.get("/search", params={"q": "pram"})

    assert response.status_code == 503
    assert "deadbeef" in response.json()["detail"] and "make index" in response.json()["detail"]


def test_get_search_on_a_text_index_with_torchserve_down_is_503(text_search_index, tmp_path):
    [port] = free_ports(1)  # nothing listens there
    url = f"http://127.0.0.1:{port}"
    app = text_app(text_search_index, tmp_path, inference_url=url, management_url=url)
    with TestClient(app) as client:
        down = client.get("/search", params={"q": "pram"})
        lexical = client.get("/search", params={"q": "pram", "retriever": "lexical"})

    assert down.status_code == 503
    assert "not reachable" in down.json()["detail"] and "make serve" in down.json()["detail"]
    assert lexical.status_code == 200


# --- an index of the pretrained text encoder: the query embedded by TorchServe's query model ----

@pytest.fixture
def encoder_client(encoder_search_index, tmp_path: Path) -> Iterator[tuple[TestClient, FakeTorchServe]]:
    meta = layout.read_meta(layout.current_generation(encoder_search_index["index"]))
    fake = FakeTorchServe(embedding_answer(load_embedder(Path(meta["run"]))),
                          f"20261201-{meta['model_sha256'][:8]}-onnx-int8")
    app = text_app(encoder_search_index, tmp_path)
    app.dependency_overrides[get_torchserve] = lambda: fake
    with TestClient(app) as test_client:
        yield test_client, fake


def test_get_search_on_an_encoder_index_embeds_with_the_query_model(encoder_client,
                                                                    encoder_search_index):
    client, fake = encoder_client

    response = client.get("/search", params={"q": "pram", "k": 5})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["embedded_by"] == "query" and body["retriever"] == "fused"
    assert fake.calls[-1] == ("query", ModelRequest(title="pram", embedding=True))
    engine = SearchEngine.open(encoder_search_index["index"])
    query = index_embedder(engine.meta).embed_query(text="pram")
    hit = next(hit for hit in body["results"] if hit["dense_score"] is not None)
    stored = engine.vectors.vectors[engine.position(hit["id"])]
    assert hit["dense_score"] == pytest.approx(float(stored @ query), abs=1e-5)


def test_get_search_on_an_encoder_index_refuses_other_served_weights(encoder_client):
    client, fake = encoder_client
    fake.version = "20261201-deadbeef-onnx-int8"

    response = client.get("/search", params={"q": "pram"})

    assert response.status_code == 503
    assert "deadbeef" in response.json()["detail"] and "'query'" in response.json()["detail"]


# --- an image + text index: photo and text embedded together by TorchServe's listing model ------

@pytest.fixture(scope="module")
def listing_index(search_index, tmp_path_factory) -> Path:
    from search import build
    from tests.support.listing_models import write_model_dir

    root = tmp_path_factory.mktemp("listing_index")
    run = write_model_dir(root / "run", "multimodal", ["Appliances", "Baby & Kids Stuff",
                                                       "Clothes, Footwear & Accessories"],
                          image_size=32, image_arch="cnn")
    build.main(build.get_args_parser().parse_args(
        ["--data", str(search_index["data"]), "--run", str(run), "--out", str(root / "index"),
         "--no-progress", "--no-text-encoder"]))
    return root / "index"


@pytest.fixture
def listing_client(listing_index, tmp_path: Path) -> Iterator[tuple[TestClient, FakeTorchServe]]:
    meta = layout.read_meta(layout.current_generation(listing_index))
    fake = FakeTorchServe(embedding_answer(load_embedder(Path(meta["run"]))),
                          f"20261201-{meta['model_sha256'][:8]}-eager")
    app = create_app(Settings(key_file=tmp_path / "key_file.json", search_index=listing_index))
    app.dependency_overrides[get_torchserve] = lambda: fake
    with TestClient(app) as test_client:
        yield test_client, fake


def test_post_photo_and_text_on_a_multimodal_index_embeds_both_together(listing_client,
                                                                       search_index):
    client, fake = listing_client
    picture = photo(search_index, "img-01-002-0")

    response = client.post("/search", params={"k": 5}, data={"q": "pram"},
                           files={"image": ("q.png", picture)})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["embedded_by"] == "listing" and body["retriever"] == "fused"
    assert fake.calls[-1] == ("listing", ModelRequest(image=picture, title="pram", embedding=True))


def test_get_text_on_a_multimodal_index_embeds_the_text_alone(listing_client):
    client, fake = listing_client

    response = client.get("/search", params={"q": "pram", "retriever": "dense"})

    assert response.status_code == 200, response.text
    assert response.json()["embedded_by"] == "listing"
    assert fake.calls[-1] == ("listing", ModelRequest(title="pram", embedding=True))


# Cheap checks first: a query over a limit is refused before TorchServe embeds anything.
@pytest.mark.parametrize(("params", "message"), [
    ({"q": "pram " * 200}, "the limit is 500"),
    ({"q": "pram", "k": 1000}, "k=1000 is out of range"),
    ({"q": "pram", "min_price": 9, "max_price": 1}, "is above max_price"),
    ({"q": "pram", "viewed": ",".join(f"id-{i}" for i in range(60))}, "send the latest 50"),
])
def test_search_over_a_limit_is_refused_before_the_query_is_embedded(text_client, text_fake,
                                                                     params, message):
    before = len(text_fake.calls)
    response = text_client.get("/search", params=params)
    posted = text_client.post("/search", params={k: v for k, v in params.items() if k != "q"},
                              data={"q": params["q"]})

    assert response.status_code == 400 and posted.status_code == 400
    assert message in response.json()["detail"] and message in posted.json()["detail"]
    assert len(text_fake.calls) == before


def test_search_index_database_error_is_503_with_a_reason(client, monkeypatch):
    import sqlite3

    def damaged(self, request):
        raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(SearchEngine, "search", damaged)
    response = client.get("/search", params={"q": "kettle"})

    assert response.status_code == 503
    assert "database cannot be read" in response.json()["detail"]
    assert "malformed" in response.json()["detail"]


# --- an image index with text vectors: q by TorchServe's query model, the photo by the index's ---

def multimodal_fake(index: Path, serve_query: bool = True) -> FakeTorchServe:
    """TorchServe serving the index's CNN and (``serve_query``) the query encoder, each at the
    version that names its weights, embedding in-process as the real handlers do."""
    meta = layout.read_meta(layout.current_generation(index))
    embedders = {"cnn": ImageEmbedder(Path(meta["run"]))}
    if serve_query:
        embedders["query"] = text_encoder_embedder(meta)
    fake = FakeTorchServe(embedding_answers(embedders))
    fake.descriptions["cnn"] = describe("cnn", ["READY"], f"20261201-{meta['model_sha256'][:8]}-eager")
    query_version = f"20261201-{meta['text_encoder']['sha256'][:8]}-onnx-int8"
    fake.descriptions["query"] = describe("query", ["READY"], query_version)
    if not serve_query:
        del fake.descriptions["query"]
    return fake


@pytest.fixture
def multimodal_client(multimodal_search_index, tmp_path: Path
                      ) -> Iterator[tuple[TestClient, FakeTorchServe]]:
    fake = multimodal_fake(multimodal_search_index["index"])
    app = text_app(multimodal_search_index, tmp_path)
    app.dependency_overrides[get_torchserve] = lambda: fake
    with TestClient(app) as test_client:
        yield test_client, fake


def test_get_search_on_a_multimodal_index_embeds_q_with_the_query_model_alone(
        multimodal_client, multimodal_search_index):
    client, fake = multimodal_client

    response = client.get("/search", params={"q": "pram", "k": 5})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["embedded_by"] == "query" and body["retriever"] == "fused"
    assert fake.calls == [("query", ModelRequest(title="pram", embedding=True))]  # one call
    engine = SearchEngine.open(multimodal_search_index["index"])
    query = text_encoder_embedder(engine.meta).embed_query(text="pram")
    hit = body["results"][0]
    assert hit["category"] == "Baby & Kids Stuff" and "text_dense" in hit["matched"]
    stored = engine.text_vectors.vectors[engine.position(hit["id"])]
    assert hit["text_dense_score"] == pytest.approx(float(stored @ query), abs=1e-5)


def test_post_search_photo_and_text_on_a_multimodal_index_asks_both_models(
        multimodal_client, multimodal_search_index):
    client, fake = multimodal_client

    response = client.post("/search", params={"k": 5}, data={"q": "pram"},
                           files={"image": ("q.png", photo(multimodal_search_index, "img-01-002-0"))})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["embedded_by"] == "cnn+query" and body["retriever"] == "fused"
    assert [model for model, _ in fake.calls] == ["cnn", "query"]
    assert fake.calls[0][1].image is not None and fake.calls[0][1].title == ""  # the CNN: photo
    assert fake.calls[1][1] == ModelRequest(title="pram", embedding=True)
    assert body["results"][0]["matched"] == ["dense", "lexical", "text_dense"]


def test_lexical_or_photo_alone_asks_only_what_it_uses(multimodal_client, multimodal_search_index):
    client, fake = multimodal_client

    lexical = client.get("/search", params={"q": "pram", "retriever": "lexical"})
    photo_only = client.post("/search", files={"image": ("q.png", photo(multimodal_search_index,
                                                                        "img-01-002-0"))})

    assert lexical.status_code == 200 and lexical.json()["embedded_by"] is None
    assert photo_only.status_code == 200 and photo_only.json()["embedded_by"] == "cnn"
    assert [model for model, _ in fake.calls] == ["cnn"]


def test_multimodal_index_without_the_query_model_is_503_naming_what_to_start(
        multimodal_search_index, tmp_path):
    fake = multimodal_fake(multimodal_search_index["index"], serve_query=False)
    app = text_app(multimodal_search_index, tmp_path)
    app.dependency_overrides[get_torchserve] = lambda: fake
    with TestClient(app) as client:
        response = client.get("/search", params={"q": "pram"})
        lexical = client.get("/search", params={"q": "pram", "retriever": "lexical"})

    assert response.status_code == 503
    detail = response.json()["detail"]
    assert "'query'" in detail and "make archive" in detail and "make serve" in detail
    assert lexical.status_code == 200  # BM25 needs no TorchServe


def test_multimodal_index_refuses_a_query_model_of_other_weights(multimodal_client):
    client, fake = multimodal_client
    fake.descriptions["query"] = describe("query", ["READY"], "20261201-deadbeef-onnx-int8")

    response = client.get("/search", params={"q": "pram"})

    assert response.status_code == 503
    detail = response.json()["detail"]
    assert "'query' version 20261201-deadbeef-onnx-int8" in detail and "all-MiniLM-L6-v2" in detail
    assert fake.calls == []  # refused before any embedding
