"""``make archive``: a training run -> a self-contained TorchServe ``.mar``."""

import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from aicore.categories import ROOT_CATEGORIES
from tests.support.models import make_run
from aicore.models import MODEL_ARGS_FILE, MODEL_FILE
from handler import archive
from common.cli import UserError, run
from tests.support.listing_models import write_model_dir

CATEGORIES = sorted(ROOT_CATEGORIES[:4])


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("runs") / "cnn")


@pytest.fixture(scope="module")
def mar(cnn_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return archive.build_archive(cnn_run, "cnn", tmp_path_factory.mktemp("model_store"), "eager")[0]


def read_manifest(mar: Path) -> dict:
    with zipfile.ZipFile(mar) as z:
        return json.loads(z.read("MAR-INF/MANIFEST.json"))


def test_build_archive_writes_named_mar(mar):
    assert mar.name == "cnn.mar"
    assert sorted(p.name for p in mar.parent.iterdir()) == ["cnn.mar"]  # no staging left behind


def test_build_archive_packs_handler_model_labels_and_shared_packages(mar, cnn_run):
    with zipfile.ZipFile(mar) as z:
        names = set(z.namelist())
        assert z.read(MODEL_FILE) == (cnn_run / MODEL_FILE).read_bytes()
        assert z.read(MODEL_ARGS_FILE) == (cnn_run / MODEL_ARGS_FILE).read_bytes()
        assert z.read("index_to_name.json") == (cnn_run / "index_to_name.json").read_bytes()
        assert z.read("image_handler.py") == archive.IMAGE_HANDLER_FILE.read_bytes()

    packed = {f"{package.name}/{p.name}" for package in archive.PACKED_PACKAGES
              for p in package.glob("*.py")}
    assert {"aicore/__init__.py", "aicore/presets.py", "aicore/models.py",
            "common/torchserve.py"} <= packed
    handler_base = {f"handler/{name}" for name in archive.PACKED_HANDLER_FILES}
    assert handler_base == {"handler/__init__.py", "handler/base.py"}
    assert names == {"image_handler.py", MODEL_FILE, MODEL_ARGS_FILE, "index_to_name.json",
                     "runtime.json", "MAR-INF/MANIFEST.json", *packed, *handler_base}
    # no metrics.json, no __pycache__, none of the archive builder's own modules


def test_build_archive_manifest_names_handler_and_run_version(mar, cnn_run):
    model = read_manifest(mar)["model"]

    assert model["modelName"] == "cnn"
    assert model["handler"] == "image_handler.py"
    assert model["serializedFile"] == MODEL_FILE
    digest = hashlib.sha256((cnn_run / MODEL_FILE).read_bytes()).hexdigest()
    assert re.fullmatch(r"\d{8}-[0-9a-f]{8}-eager", model["modelVersion"])
    assert model["modelVersion"].split("-")[1] == digest[:8]
    assert model["modelVersion"] == archive.archive_version(cnn_run, "eager")


def test_archive_version_changes_with_weights(tmp_path):
    first = archive.archive_version(make_run(tmp_path / "a", seed=1), "eager")
    second = archive.archive_version(make_run(tmp_path / "b", seed=2), "eager")
    assert first != second
    assert first.split("-")[0] == second.split("-")[0]  # same day, different weights


def test_build_archive_replaces_previous_archive(tmp_path, cnn_run):
    out = tmp_path / "store"
    archive.build_archive(make_run(tmp_path / "old", seed=5), "cnn", out, "eager")

    mar, _ = archive.build_archive(cnn_run, "cnn", out, "eager")

    assert read_manifest(mar)["model"]["modelVersion"] == archive.archive_version(cnn_run, "eager")


LOAD_IN_WORKER = textwrap.dedent("""
    import json, os, sys
    from ts.context import RequestProcessor
    from ts.metrics.metric_cache_yaml_impl import MetricsCacheYamlImpl
    from ts.model_loader import TsModelLoader
    import ts

    model_dir, image = sys.argv[1], sys.argv[2]
    metrics = MetricsCacheYamlImpl(os.path.join(os.path.dirname(ts.__file__), "configs",
                                                "metrics.yaml"))
    metrics.initialize_cache()
    service = TsModelLoader().load("cnn", model_dir, "image_handler.py", None, 1,
                                   metrics_cache=metrics)
    service.context.request_processor = [RequestProcessor({})]
    [body] = service._entry_point([{"body": open(image, "rb").read()}], service.context)
    import aicore, handler, image_handler
    print(json.dumps({"body": json.loads(body), "aicore": aicore.__file__,
                      "handler": handler.__file__, "image_handler": image_handler.__file__}))
""")


def test_unpacked_archive_runs_in_torchserve_loader(mar, tmp_path):
    """The worker's view: the unpacked archive alone on PYTHONPATH, TorchServe's own loader."""
    model_dir = tmp_path / "unpacked"
    with zipfile.ZipFile(mar) as z:
        z.extractall(model_dir)
    image = tmp_path / "photo.png"
    Image.new("RGB", (50, 30), (10, 200, 30)).save(image)
    env = {**os.environ, "PYTHONPATH": str(model_dir)}  # as TorchServe sets it for a worker

    result = subprocess.run([sys.executable, "-c", LOAD_IN_WORKER, str(model_dir), str(image)],
                            cwd=model_dir, env=env, capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stderr[-2000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert sorted(answer["body"]["probabilities"]) == CATEGORIES
    # the handler, its base package and aicore came from the archive, not the repository checkout
    assert Path(answer["aicore"]).parent == model_dir / "aicore"
    assert Path(answer["image_handler"]) == model_dir / "image_handler.py"
    assert Path(answer["handler"]) == model_dir / "handler" / "__init__.py"


def test_build_archive_refuses_missing_run_dir(tmp_path):
    with pytest.raises(UserError, match=r"does not exist: train it with `make train MODEL=cnn`"):
        archive.build_archive(tmp_path / "nope", "cnn", tmp_path / "store")
    assert not (tmp_path / "store").exists()


def test_build_archive_refuses_unfinished_run(tmp_path):
    run_dir = make_run(tmp_path / "cnn")
    (run_dir / "index_to_name.json").unlink()

    with pytest.raises(UserError, match="lacks index_to_name.json"):
        archive.build_archive(run_dir, "cnn", tmp_path / "store")


def test_build_archive_refuses_wrong_architecture(tmp_path, cnn_run):
    with pytest.raises(UserError, match=r"holds a 'cnn' model, but resnet50.mar must hold"):
        archive.build_archive(cnn_run, "resnet50", tmp_path / "store")


def test_main_reports_missing_run_in_one_line_and_exits_2(tmp_path, cnn_run, capsys):
    argv = ["--cnn-run", str(cnn_run), "--resnet-run", str(tmp_path / "runs" / "resnet50"),
            "--models", "cnn", "resnet50", "--out", str(tmp_path / "store")]

    with pytest.raises(SystemExit) as exit_info:
        run(archive.main, archive.get_args_parser(), argv)

    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "runs/resnet50" in err and "make train MODEL=resnet50" in err
    assert not (tmp_path / "store").exists()  # nothing half-built: cnn.mar was not written


def test_main_builds_both_archives(tmp_path, cnn_run, capsys):
    resnet_run = make_run(tmp_path / "resnet50", arch="resnet50", image_size=32)
    args = archive.get_args_parser().parse_args(
        ["--cnn-run", str(cnn_run), "--resnet-run", str(resnet_run), "--models", "cnn", "resnet50",
         "--out", str(tmp_path / "s"), "--runtime", "eager"])

    built = archive.main(args)

    assert [p.name for p in built] == ["cnn.mar", "resnet50.mar"]
    assert read_manifest(built[1])["model"]["modelVersion"] == archive.archive_version(resnet_run, "eager")
    assert archive.archive_version(resnet_run, "eager") in capsys.readouterr().out



def test_main_builds_text_and_listing_archives_with_the_listing_handler(tmp_path, cnn_run):
    text_run = write_model_dir(tmp_path / "text", "text", CATEGORIES)
    listing_run = write_model_dir(tmp_path / "multimodal", "multimodal", CATEGORIES, image_arch="cnn")
    args = archive.get_args_parser().parse_args(
        ["--text-run", str(text_run), "--listing-run", str(listing_run), "--cnn-run", str(cnn_run),
         "--models", "text", "listing", "--out", str(tmp_path / "s")])

    built = archive.main(args)

    assert [p.name for p in built] == ["text.mar", "listing.mar"]
    for mar in built:
        assert read_manifest(mar)["model"]["handler"] == "listing_handler.py"
        with zipfile.ZipFile(mar) as z:
            assert {"aicore/text.py", "aicore/text_models.py", "common/handling.py"} <= set(z.namelist())


def test_listing_archive_refuses_a_text_run(tmp_path):
    text_run = write_model_dir(tmp_path / "text", "text", CATEGORIES)
    with pytest.raises(UserError, match=r"holds a 'text' model, but listing.mar must hold 'multimodal'"):
        archive.build_archive(text_run, "listing", tmp_path / "store")
