"""The query encoder's handler (query.mar) in-process with TorchServe's own context, on the
runtimes ``handler.query_archive`` stages, and the archive's accuracy gate."""

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from ts.utils.util import list_classes_from_module

from aicore.sentence import RUNTIME_FILE, SentenceEncoder, default_folder
from handler import query_archive
from handler import query_handler as handler_module
from common.codec import MAX_TITLE_CHARS
from handler.query_handler import QueryEncoderHandler
from tests.support.handler import make_context

TEXTS = ["red sofa bed", "something to edit my holiday videos"]


def staged(tmp_path: Path, runtime: str) -> Path:
    """An archive's unpacked folder: what the worker sees as ``model_dir``."""
    stage = tmp_path / runtime
    record, serialized = query_archive.stage_encoder(default_folder(), stage, runtime,
                                                     list(query_archive.SAMPLE_QUERIES))
    (stage / RUNTIME_FILE).write_text(json.dumps(record), encoding="utf-8")
    if serialized.parent != stage:  # the weights, packed from the encoder folder as they are
        (stage / serialized.name).symlink_to(serialized)
    return stage


def handle(service: QueryEncoderHandler, model_dir: Path, rows: list[dict]):
    context = make_context(model_dir, len(rows))
    bodies = service.handle(rows, context)
    return [json.loads(b) for b in bodies], [context.get_response_status(i)[0]
                                             for i in range(len(rows))]


@pytest.fixture(scope="module")
def eager_dir(tmp_path_factory) -> Path:
    return staged(tmp_path_factory.mktemp("query"), "eager")


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return SentenceEncoder(default_folder()).encode(TEXTS)


def start(model_dir: Path) -> QueryEncoderHandler:
    service = QueryEncoderHandler()
    service.initialize(make_context(model_dir))
    return service


def test_module_defines_exactly_one_class():
    assert list_classes_from_module(handler_module) == [QueryEncoderHandler]


def test_eager_answer_is_the_in_process_vector(eager_dir, reference):
    service = start(eager_dir)
    rows = [{"body": {"title": TEXTS[0], "embedding": True}},
            {"body": json.dumps({"title": TEXTS[1]}).encode()}]

    bodies, codes = handle(service, eager_dir, rows)

    assert codes == [200, 200]
    np.testing.assert_allclose(np.array([b["embedding"] for b in bodies]), reference, atol=1e-5)


@pytest.mark.parametrize(("row", "message"), [
    ({"body": {"text": "sofa"}}, "no words to embed"),
    ({"body": {"title": "  "}}, "no words to embed"),
    ({"body": {"title": 3}}, "'title' must be a string"),
    ({"body": {"title": "a" * (MAX_TITLE_CHARS + 1)}}, f"the limit is {MAX_TITLE_CHARS}"),
    ({"body": b"{not json"}, "not JSON"),
])
def test_bad_request_gets_its_own_400(eager_dir, row, message):
    service = start(eager_dir)

    bodies, codes = handle(service, eager_dir, [{"body": {"title": "sofa"}}, row])

    assert codes == [200, 400]
    assert message in bodies[1]["error"]


def test_onnx_fp32_passes_the_gate_and_serves_close_vectors(tmp_path, reference):
    model_dir = staged(tmp_path, "onnx-fp32")
    record = json.loads((model_dir / RUNTIME_FILE).read_text())

    bodies, codes = handle(start(model_dir), model_dir, [{"body": {"title": t}} for t in TEXTS])

    assert record["runtime"] == "onnx-fp32" and record["accuracy_gate"]["passed"]
    assert codes == [200, 200]
    cosines = (np.array([b["embedding"] for b in bodies]) * reference).sum(1)
    assert cosines.min() > 0.9999


def test_archive_version_names_the_weights_and_runtime(tmp_path):
    path, record = query_archive.build_query_archive(None, tmp_path, "eager")

    assert path == tmp_path / "query.mar" and record["runtime"] == "eager"
    assert record["version"].split("-")[1:] == ["53aa5117", "eager"]
    with zipfile.ZipFile(path) as mar:
        names = set(mar.namelist())
    assert {"query_handler.py", "tokenizer.json", "model.safetensors", "config.json",
            "runtime.json", "aicore/sentence.py"} <= names
