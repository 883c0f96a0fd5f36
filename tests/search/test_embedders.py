"""Text and image + text embedders: the index build and the in-process query embed exactly as the
listing handler (TorchServe's text.mar / listing.mar) does, and text-only datasets index."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from common.cli import UserError
from handler.listing_handler import ListingClassifierHandler
from search import build, evaluate
from search.embedders import ListingEmbedder, TextEmbedder, load_embedder
from search.engine import SearchEngine, SearchRequest
from search.listings import read_listings
from search.vectors import normalise
from tests.support.data import make_clean_dataset
from tests.support.handler import make_context
from tests.support.listing_models import write_model_dir

CATEGORIES = ["Appliances", "Baby & Kids", "Clothes, Footwear & Accessories"]


def run_build(data, run, out):
    return build.main(build.get_args_parser().parse_args(
        ["--data", str(data), "--run", str(run), "--out", str(out), "--no-progress"]))


def served_embedding(model_dir: Path, row: dict) -> np.ndarray:
    """The embedding the listing handler answers for one request ``row`` (as TorchServe hands it)."""
    service = ListingClassifierHandler()
    service.initialize(make_context(model_dir))
    context = make_context(model_dir)
    [body] = service.handle([{**row, "embedding": b"true"}], context)
    assert context.get_response_status(0)[0] == 200, body
    return np.asarray(json.loads(body)["embedding"], dtype=np.float32)


@pytest.fixture(scope="module")
def listing_run(tmp_path_factory) -> Path:
    return write_model_dir(tmp_path_factory.mktemp("listing"), "multimodal", CATEGORIES,
                           image_size=32, image_arch="cnn")


def test_text_query_embedding_equals_the_handlers(text_search_index):
    embedder = load_embedder(text_search_index["run"])

    vector = embedder.embed_query(text="Kettle - barely used, Leeds")

    assert isinstance(embedder, TextEmbedder) and vector.shape == (embedder.dim,)
    served = served_embedding(text_search_index["run"],
                              {"body": {"title": "Kettle - barely used, Leeds"}})
    np.testing.assert_allclose(vector, served, atol=1e-6)


def test_text_query_without_words_embeds_nothing(text_search_index):
    assert load_embedder(text_search_index["run"]).embed_query(text=" !? ") is None


def test_text_index_stores_each_listings_title_and_description_embedding(text_search_index):
    engine = SearchEngine.open(text_search_index["index"])
    listing = next(x for x in read_listings(text_search_index["data"])[0] if x.id == "prod-02-004")

    stored = np.asarray(engine.vectors.vectors[engine.position(listing.id)])

    assert engine.meta["arch"] == "text" and engine.meta["modalities"] == ["text"]
    assert engine.meta["served_model"] == "text" and engine.meta["has_photos"] is True
    served = served_embedding(text_search_index["run"], {
        "body": {"title": listing.title, "description": listing.description}})
    np.testing.assert_allclose(stored, served, atol=1e-6)


def test_text_index_searches_dense_lexical_and_fused(text_search_index):
    engine = SearchEngine.open(text_search_index["index"])
    vector = load_embedder(text_search_index["run"]).embed_query(text="pram")

    results = {retriever: engine.search(SearchRequest(text="pram", vector=vector, k=5,
                                                      retriever=retriever))
               for retriever in ("dense", "lexical", "fused")}

    assert {name: result.retriever for name, result in results.items()} == {
        "dense": "dense", "lexical": "lexical", "fused": "fused"}
    assert results["dense"].hits[0].dense_score == pytest.approx(
        float(engine.vectors.vectors[engine.position(results["dense"].hits[0].id)] @ vector),
        abs=1e-5)
    assert all("lexical" in hit.matched for hit in results["lexical"].hits)


def test_text_index_rebuild_reuses_cached_text_embeddings(text_search_index, tmp_path):
    first = run_build(text_search_index["data"], text_search_index["run"], tmp_path / "index")
    again = run_build(text_search_index["data"], text_search_index["run"], tmp_path / "index")

    assert json.loads((first / "meta.json").read_text())["embedded"] == 18
    meta = json.loads((again / "meta.json").read_text())
    assert meta["embedded"] == 0 and meta["cached"] == 18


def test_evaluate_text_index_scores_title_queries_with_every_retriever(text_search_index, tmp_path):
    index = tmp_path / "index"
    run_build(text_search_index["data"], text_search_index["run"], index)

    report = evaluate.main(evaluate.get_args_parser().parse_args(["--index", str(index)]))

    assert [(r["query"], r["retriever"]) for r in report["results"]] == [
        ("text", "dense"), ("text", "lexical"), ("text", "fused")]
    assert all(0 <= r["precision@10"] <= 1 and r["latency_ms"]["n"] == report["queries"]
               for r in report["results"])


def test_listing_embedder_matches_the_handler_for_photo_and_text(search_index, listing_run,
                                                                 tmp_path):
    listings, _ = read_listings(search_index["data"])
    listing = next(x for x in listings if x.id == "prod-01-003")
    embedder = load_embedder(listing_run)
    photos = [path.read_bytes() for path in listing.image_paths]

    generation = run_build(search_index["data"], listing_run, tmp_path / "index")

    assert isinstance(embedder, ListingEmbedder)
    served = [served_embedding(listing_run, {"title": listing.title.encode(),
                                             "description": listing.description.encode(),
                                             "image": photo}) for photo in photos]
    engine = SearchEngine(generation)
    assert engine.meta["modalities"] == ["image", "text"] and engine.meta["served_model"] == "listing"
    np.testing.assert_allclose(engine.vectors.vectors[engine.position(listing.id)],
                               normalise(np.mean(served, axis=0, keepdims=True))[0], atol=1e-5)
    query = embedder.embed_query(text="sofa", image=photos[0])
    np.testing.assert_allclose(query, served_embedding(listing_run, {"title": b"sofa",
                                                                     "image": photos[0]}),
                               atol=1e-5)
    np.testing.assert_allclose(embedder.embed_query(image=photos[0]),
                               served_embedding(listing_run, {"image": photos[0]}), atol=1e-5)


def text_only(root: Path) -> Path:
    """A dataset as ``prepare --products`` alone writes it: one manifest row per product, no path."""
    data = make_clean_dataset(root, num_classes=3, products_per_class=2, images_per_product=1,
                              size=48)
    with open(data / "manifest.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    with open(data / "manifest.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({**row, "image_id": row["product_id"], "path": ""} for row in rows)
    return data


def test_text_only_dataset_indexes_with_a_text_run(text_search_index, search_index, tmp_path):
    data = text_only(tmp_path / "clean")

    generation = run_build(data, text_search_index["run"], tmp_path / "index")

    engine = SearchEngine(generation)
    assert len(engine) == 6 and engine.meta["has_photos"] is False
    assert engine.get("prod-01-001")["image_paths"] == []
    with pytest.raises(UserError, match="has no photo.*text run"):
        run_build(data, search_index["run"], tmp_path / "index-cnn")
