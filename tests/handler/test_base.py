"""handler.base.ServedModelHandler: what a new kind of handler gets for free. A query-encoder
handler (kind "query") is a subclass with two short methods: it decodes the query contract,
answers the embedding alone, and refuses bad rows one by one."""

import json
from pathlib import Path

import pytest
import torch

from aicore.text import TextBatch, collate_ids
from common import catalogue
from common.catalogue import QUERY
from common.codec import ModelRequest
from handler.base import ServedModelHandler
from tests.support.handler import make_context
from tests.support.listing_models import write_model_dir


class QueryHandler(ServedModelHandler):
    """A query encoder as a new kind's handler would be written: prepare + collate."""

    kinds = (QUERY,)

    def prepare(self, request: ModelRequest) -> list[int]:
        return self.runtime.model.featurizer.encode(request.title, request.description)

    def collate(self, items: list[list[int]]) -> TextBatch:
        return collate_ids(items)


@pytest.fixture
def query_handler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[QueryHandler, Path]:
    # A text run served as the query kind (the table a real query archive would join).
    monkeypatch.setitem(catalogue.ARCH_KINDS, "text", QUERY)
    model_dir = write_model_dir(tmp_path / "model", "text", ["a", "b"])
    threads = torch.get_num_threads()
    service = QueryHandler()
    service.initialize(make_context(model_dir))
    yield service, model_dir
    torch.set_num_threads(threads)


def test_a_query_handler_answers_the_embedding_alone(query_handler):
    service, model_dir = query_handler
    rows = [{"body": {"title": "red kettle"}}, {"body": {"title": 5}}]
    context = make_context(model_dir, len(rows))

    bodies = [json.loads(b) for b in service.handle(rows, context)]

    assert set(bodies[0]) == {"embedding"}  # no category: the kind does not classify
    vector = torch.tensor(bodies[0]["embedding"])
    torch.testing.assert_close(vector.norm(), torch.tensor(1.0))
    assert bodies[1] == {"error": "field 'title' must be a string, got int"}
    assert [context.get_response_status(i)[0] for i in range(2)] == [200, 400]


def test_a_handler_refuses_an_archive_of_another_kind(tmp_path: Path):
    model_dir = write_model_dir(tmp_path / "model", "text", ["a", "b"])
    threads = torch.get_num_threads()
    try:
        with pytest.raises(ValueError, match="serves models of kind query, not 'text' .kind text."):
            QueryHandler().initialize(make_context(model_dir))
    finally:
        torch.set_num_threads(threads)
