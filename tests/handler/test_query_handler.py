"""The query encoder's handler (query.mar) in-process with TorchServe's own context, on the
runtimes ``handler.query_archive`` stages, and the archive's accuracy gate."""

import json
import logging
import zipfile
from pathlib import Path

import numpy as np
import pytest
from ts.utils.util import list_classes_from_module

from aicore.sentence import RUNTIME_FILE, SentenceEncoder, default_folder
from handler import query_archive
from handler import query_handler as handler_module
from common.codec import MAX_TITLE_CHARS
from handler.query_gate import MAX_NDCG_DROP, JudgedQueries
from handler.query_handler import QueryEncoderHandler
from tests.support.handler import make_context

TEXTS = ["red sofa bed", "something to edit my holiday videos"]


def staged(tmp_path: Path, runtime: str, judged: JudgedQueries | None = None) -> Path:
    """An archive's unpacked folder: what the worker sees as ``model_dir``."""
    stage = tmp_path / runtime
    record, serialized = query_archive.stage_encoder(default_folder(), stage, runtime,
                                                     list(query_archive.SAMPLE_QUERIES), judged)
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


@pytest.fixture(autouse=True)
def restore_logging():
    """The handler quiets TorchServe's per-request lines process-wide; undo it after each test."""
    levels = {name: logging.getLogger(name).level for name in handler_module.QUIET_LOGGERS}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    logging.getLogger().removeFilter(handler_module._not_per_request)


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


def test_worker_drops_torchserve_per_request_lines_and_keeps_others(eager_dir):
    start(eager_dir)
    root = logging.getLogger()

    def passes_filters(msg: str) -> bool:
        return bool(root.filter(root.makeRecord("root", logging.INFO, __file__, 1, msg, (1,), None)))

    assert not passes_filters(handler_module.PER_REQUEST_LINE)
    assert passes_filters("Torch worker started. %d")
    assert logging.getLogger("ts.metrics.caching_metric").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("ts.service").getEffectiveLevel() == logging.WARNING


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


# A judged set small enough for a unit test: the nDCG half of the gate runs on it as on dev.
JUDGED = JudgedQueries(
    listing_ids=["sofa", "editor", "kettle"],
    listing_texts=["Red leather sofa bed\nSeats three", "Video editor\nCut and edit your films",
                   "Kettle\nBoils water fast"],
    query_ids=["q1", "q2"], query_texts=["a settee to sleep on", "edit my holiday videos"],
    viewed=[(), ()], qrels={"q1": {"sofa": 2}, "q2": {"editor": 2}})


def test_onnx_fp32_passes_the_gate_and_serves_close_vectors(tmp_path, reference):
    model_dir = staged(tmp_path, "onnx-fp32", JUDGED)
    record = json.loads((model_dir / RUNTIME_FILE).read_text())

    bodies, codes = handle(start(model_dir), model_dir, [{"body": {"title": t}} for t in TEXTS])

    assert record["runtime"] == "onnx-fp32" and record["accuracy_gate"]["passed"]
    ndcg = record["accuracy_gate"]["ndcg"]
    assert ndcg["measured"] and ndcg["passed"] and ndcg["queries"] == 2
    assert ndcg["eager"] == pytest.approx(1.0) and abs(ndcg["drop"]) <= MAX_NDCG_DROP
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


def test_gate_output_says_when_ndcg_was_not_measured():
    gate = {"texts": 262, "cosine_min": 0.9925, "min_cosine": 0.99, "passed": True,
            "ndcg": {"measured": False, "why": "data/relevance/queries/dev.tsv missing "
                     "(`make relevanceset` builds them)", "max_drop": MAX_NDCG_DROP}}

    said = query_archive.describe_gate(gate)

    assert "0.9925 on 262 texts" in said
    assert "dev nDCG@10 NOT MEASURED: data/relevance/queries/dev.tsv missing" in said


def test_gate_output_gives_both_ndcg_figures():
    gate = {"texts": 262, "cosine_min": 0.9925, "min_cosine": 0.99, "passed": True,
            "ndcg": {"measured": True, "queries": 41, "eager": 0.5391, "runtime": 0.5312,
                     "drop": 0.0079, "max_drop": MAX_NDCG_DROP, "passed": True}}

    said = query_archive.describe_gate(gate)

    assert "dense dev nDCG@10 0.5312 vs eager 0.5391 on 41 judged queries, drop +0.0079" in said
