"""python -m search.build: one entry per listing, atomic publication, cached embeddings."""

import json
import shutil

import numpy as np
import pytest

from common.cli import UserError
from search import build, layout
from search.embedders import ImageEmbedder
from search.engine import SearchEngine
from search.listings import read_listings
from search.vectors import normalise
from tests.support.data import make_clean_dataset


def run_build(data, run, out, *extra):
    return build.main(build.get_args_parser().parse_args(
        ["--data", str(data), "--run", str(run), "--out", str(out), "--no-progress", *extra]))


def test_build_indexes_each_listing_once_with_its_mean_photo(search_index):
    engine = SearchEngine.open(search_index["index"])
    listings, _ = read_listings(search_index["data"])

    assert len(engine) == 18 and engine.meta["count"] == 18  # 36 photos, 2 per listing
    assert engine.meta["arch"] == "cnn" and engine.meta["modalities"] == ["image"]
    assert engine.meta["has_text"] is True and engine.meta["index"]["kind"] == "flat"
    embedder = ImageEmbedder(search_index["run"])
    listing = next(x for x in listings if x.id == "prod-02-004")
    photos = np.stack([embedder.embed_query(image=p.read_bytes()) for p in listing.image_paths])
    stored = np.asarray(engine.vectors.vectors[engine.position("prod-02-004")])
    assert stored == pytest.approx(normalise(photos.mean(axis=0, keepdims=True))[0], abs=1e-5)


def test_rebuild_of_unchanged_dataset_reuses_cached_embeddings(search_index, tmp_path):
    out = tmp_path / "index"
    shutil.copytree(search_index["index"], out)
    first = layout.current_generation(out)

    generation = run_build(search_index["data"], search_index["run"], out)

    meta = layout.read_meta(generation)
    assert meta["embedded"] == 0 and meta["cached"] == 36
    assert layout.current_generation(out) == generation != first
    assert first.is_dir()  # the previous generation stays for readers that still hold it


def test_interrupted_build_leaves_the_live_index_alone(search_index, tmp_path, monkeypatch):
    out = tmp_path / "index"
    shutil.copytree(search_index["index"], out)
    live = layout.current_generation(out)
    before = sorted(p.name for p in out.iterdir())

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(build, "write_records", interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_build(search_index["data"], search_index["run"], out)

    assert layout.current_generation(out) == live
    assert sorted(p.name for p in out.iterdir()) == before  # no half-built generation, no lock


def test_build_of_a_dataset_without_products_makes_each_image_a_listing(search_index, tmp_path):
    data = make_clean_dataset(tmp_path / "folder", num_classes=3, products_per_class=2,
                              images_per_product=1, size=48)
    (data / "products.csv").unlink()  # as an image-folder dataset: no product records

    generation = run_build(data, search_index["run"], tmp_path / "index")

    engine = SearchEngine(generation)
    assert len(engine) == 6 and engine.meta["has_text"] is False
    assert engine.get("prod-01-001")["price"] is None


def test_build_refuses_a_directory_that_is_not_a_run(search_index, tmp_path):
    with pytest.raises(UserError, match="not a finished training run"):
        run_build(search_index["data"], tmp_path, tmp_path / "index")
    assert not (tmp_path / "index").exists()


def test_build_refuses_a_run_search_cannot_embed_with(search_index, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(search_index["run"], run)
    args = json.loads((run / "model_args.json").read_text())
    (run / "model_args.json").write_text(json.dumps({**args, "arch": "transformer"}))

    with pytest.raises(UserError, match="'transformer' model, which search cannot embed"):
        run_build(search_index["data"], run, tmp_path / "index")


def test_build_refuses_a_second_build_on_the_same_index(search_index, tmp_path):
    out = tmp_path / "index"

    with layout.build_lock(out), pytest.raises(UserError, match="another build"):
        run_build(search_index["data"], search_index["run"], out)


# --- the second vector set: an image run's index also holds the listings' pretrained-text vectors


def test_build_with_an_image_run_adds_the_text_encoders_vectors(multimodal_search_index,
                                                                encoder_search_index):
    engine = SearchEngine.open(multimodal_search_index["index"])
    text_index = SearchEngine.open(encoder_search_index["index"])  # the same listings, no --run

    encoder = engine.meta["text_encoder"]
    assert engine.meta["arch"] == "cnn" and engine.meta["served_model"] == "cnn"
    assert {key: encoder[key] for key in ("name", "sha256", "token_budget", "dim", "served_model")} \
        == {**{key: text_index.meta["encoder"][key] for key in ("name", "sha256", "token_budget",
                                                                "dim")}, "served_model": "query"}
    assert len(engine.text_vectors) == len(engine) == 18 and engine.text_vectors.dim == 384
    assert (engine.generation / layout.TEXT_FAISS_FILE).is_file()
    # the same encoder code, token budget and vectors as the text index's
    for listing_id in ("prod-00-000", "prod-02-005"):
        assert np.asarray(engine.text_vectors.vectors[engine.position(listing_id)]) == pytest.approx(
            np.asarray(text_index.vectors.vectors[text_index.position(listing_id)]), abs=1e-6)
    assert engine.info.text_encoder.sha256 == encoder["sha256"]


def test_build_with_no_text_encoder_holds_the_run_s_vectors_alone(search_index):
    engine = SearchEngine.open(search_index["index"])  # built with text_encoder=False

    assert "text_encoder" not in engine.meta and engine.text_vectors is None
    assert engine.info.text_encoder is None
    assert not (engine.generation / layout.TEXT_FAISS_FILE).exists()


def test_rebuild_reuses_the_cached_text_vectors(multimodal_search_index, tmp_path):
    out = tmp_path / "index"
    shutil.copytree(multimodal_search_index["index"], out)

    generation = run_build(multimodal_search_index["data"], multimodal_search_index["run"], out)

    meta = layout.read_meta(generation)
    assert meta["text_encoder"]["embedded"] == 0 and meta["text_encoder"]["cached"] == 18
    assert meta["embedded"] == 0
