"""common.catalogue: the served models of config.properties with their kinds, and the archive
version written and read in one place."""

import os
from pathlib import Path

import pytest

from common.catalogue import (ARCH_KINDS, IMAGE, KINDS, LISTING, QUERY, TEXT, ArchiveVersion,
                              Catalogue, format_version, kind_of_arch, parse_version,
                              weights_sha256)
from common.cli import UserError
from tests.support import REPO_ROOT

SNAPSHOT = """model_snapshot={{"name": "s", "modelCount": 1, "models": {{"m": {{"v": {{\\
  "marName": "m.mar", {kind}"minWorkers": 2, "batchSize": 4, "maxBatchDelay": 5}}}}}}}}
"""


def test_repository_catalogue_names_every_served_model_with_its_kind():
    catalogue = Catalogue.from_config(REPO_ROOT / "config.properties")

    assert {name: model.kind for name, model in catalogue.items()} == {
        "cnn": IMAGE, "resnet50": IMAGE, "text": TEXT, "listing": LISTING, "query": QUERY}
    assert catalogue.names(IMAGE) == ("cnn", "resnet50")
    assert catalogue["text"].mar_name == "text.mar" and catalogue["text"].batch_size == 16
    assert catalogue.kind("vgg") is None


def test_every_archive_architecture_has_a_kind():
    from aicore.models import ARCHITECTURES

    assert set(ARCH_KINDS) == set(ARCHITECTURES)
    assert kind_of_arch("multimodal") == LISTING
    with pytest.raises(ValueError, match="architecture 'vgg' has no served kind"):
        kind_of_arch("vgg")


def test_kinds_say_what_they_read_and_answer():
    assert KINDS[IMAGE].photo and not KINDS[IMAGE].text
    assert KINDS[LISTING].photo and KINDS[LISTING].text
    assert KINDS[QUERY].embeds_only and not KINDS[TEXT].embeds_only


@pytest.mark.parametrize(("kind", "error"), [
    ('', "has kind None"), ('"kind": "audio", ', "has kind 'audio'"),
])
def test_snapshot_model_without_a_known_kind_is_refused_naming_the_kinds(tmp_path, kind, error):
    config = tmp_path / "config.properties"
    config.write_text(SNAPSHOT.format(kind=kind))
    with pytest.raises(UserError, match=rf"model 'm' .*{error}.*one of image, text, listing, query"):
        Catalogue.from_config(config)


def test_snapshot_with_a_kind_reads_its_batching(tmp_path):
    config = tmp_path / "config.properties"
    config.write_text(SNAPSHOT.format(kind='"kind": "query", '))
    [model] = Catalogue.from_config(config).values()
    assert (model.name, model.kind, model.workers, model.batch_size, model.max_batch_delay_ms) == \
        ("m", QUERY, 2, 4, 5)


def test_missing_snapshot_is_a_user_error(tmp_path):
    config = tmp_path / "config.properties"
    config.write_text("inference_address=http://127.0.0.1:8080\n")
    with pytest.raises(UserError, match="has no model_snapshot"):
        Catalogue.from_config(config)


def test_version_is_written_and_read_back(tmp_path):
    weights = tmp_path / "model.pt"
    weights.write_bytes(b"weights")
    os.utime(weights, (1_796_000_000, 1_796_000_000))  # 2026-11-30 00:53 UTC

    version = format_version(weights, "onnx-int8")

    assert version == f"20261130-{weights_sha256(weights)[:8]}-onnx-int8"
    parsed = parse_version(version)
    assert parsed == ArchiveVersion("20261130", weights_sha256(weights)[:8], "onnx-int8")
    assert parsed.same_weights(weights_sha256(weights))
    assert not parsed.same_weights("0" * 64)


@pytest.mark.parametrize("text", ["1.0", "20261201-deadbeef", "2026-deadbeef-eager",
                                  "20261201-DEADBEEF-eager"])
def test_parse_version_refuses_other_strings(text):
    with pytest.raises(ValueError, match="is not <YYYYMMDD>-<sha8>-<runtime>"):
        parse_version(text)


def test_weights_sha256_matches_hashlib(tmp_path: Path):
    import hashlib

    path = tmp_path / "model.pt"
    path.write_bytes(os.urandom(3 << 20))  # more than one 1 MiB block
    assert weights_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()
