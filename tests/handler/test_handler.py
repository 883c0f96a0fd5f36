"""The TorchServe handler, driven like a worker drives it: a real ``ts.context.Context`` with one
``RequestProcessor`` per request, and a tiny trained-model folder (random CNN weights)."""

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from PIL import Image
from ts.context import Context
from ts.utils.util import list_classes_from_module

from aicore.categories import ROOT_CATEGORIES
from tests.support.handler import make_context
from tests.support.models import make_model_dir
from aicore.models import load_trained
from aicore.presets import EvalPreset, load_image
from handler import image_handler as handler_module
from handler.image_handler import ImageClassifierHandler

IMAGE_SIZE = 64  # small: the CNN accepts >= 29 px, and the tests stay fast
CATEGORIES = sorted(ROOT_CATEGORIES[:5])


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An unpacked archive as the worker sees it: model.pt, model_args.json, index_to_name.json."""
    return make_model_dir(tmp_path_factory.mktemp("model_dir"), "cnn", CATEGORIES, IMAGE_SIZE)


@pytest.fixture(scope="module")
def handler(model_dir: Path) -> Iterator[ImageClassifierHandler]:
    threads = torch.get_num_threads()  # initialize() sets it process-wide; give it back after
    service = ImageClassifierHandler()
    service.initialize(make_context(model_dir))
    yield service
    torch.set_num_threads(threads)


def handle(handler: ImageClassifierHandler, model_dir: Path, rows: list[dict]
           ) -> tuple[list[dict], list[int], Context]:
    """Run one batch; return the decoded bodies, the status codes and the context."""
    context = make_context(model_dir, len(rows))
    bodies = handler.handle(rows, context)
    assert len(bodies) == len(rows)
    codes = [context.get_response_status(i)[0] for i in range(len(rows))]
    return [json.loads(body) for body in bodies], codes, context


def encode(img: Image.Image, fmt: str, **save_kw: object) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, fmt, **save_kw)
    return buffer.getvalue()


def photo(width: int, height: int, seed: int) -> Image.Image:
    """A noisy picture: different seeds give clearly different predictions."""
    gen = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (height, width, 3), dtype=torch.uint8, generator=gen)
    return Image.fromarray(pixels.numpy(), "RGB")


def reference_probabilities(model_dir: Path, data: bytes) -> list[float]:
    """What the handler must answer, computed independently of it."""
    model, _, args = load_trained(model_dir)
    tensor = EvalPreset(args["image_size"])(load_image(data, args["image_size"]))  # (3, S, S)
    with torch.no_grad():
        return torch.softmax(model(tensor.unsqueeze(0)), dim=1)[0].tolist()


@pytest.fixture(scope="module")
def images() -> list[bytes]:
    return [encode(photo(97, 61, seed=1), "JPEG"), encode(photo(40, 120, seed=2), "PNG"),
            encode(photo(128, 128, seed=3), "JPEG", quality=70)]


def test_module_defines_exactly_one_class():
    # TorchServe's loader refuses a handler module with more than one class of its own.
    assert list_classes_from_module(handler_module) == [ImageClassifierHandler]


def test_handle_answers_each_request_in_order(handler, model_dir, images):
    bodies, codes, _ = handle(handler, model_dir, [{"body": data} for data in images])

    assert codes == [200, 200, 200]
    for body, data in zip(bodies, images, strict=True):
        expected = reference_probabilities(model_dir, data)
        assert list(body["probabilities"].values()) == pytest.approx(expected, abs=1e-5)
    assert bodies[0]["probabilities"] != bodies[1]["probabilities"]  # order is observable


def test_handle_returns_every_category_summing_to_one(handler, model_dir, images):
    bodies, codes, _ = handle(handler, model_dir, [{"body": images[0]}])

    assert codes == [200]
    probabilities = bodies[0]["probabilities"]
    assert list(probabilities) == CATEGORIES  # the archive's index_to_name.json, in index order
    assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert bodies[0]["category"] == max(probabilities, key=probabilities.get)


def test_handle_sets_json_content_type_for_every_answer(handler, model_dir, images):
    _, codes, context = handle(handler, model_dir, [{"body": images[0]}, {"body": b""}])

    assert codes == [200, 400]
    assert [context.get_response_content_type(i) for i in range(2)] == ["application/json"] * 2


def bomb_png() -> bytes:
    """A PNG of 8000 x 8000 = 64 MP (over MAX_IMAGE_PIXELS) that is only a few kB on the wire."""
    return encode(Image.new("1", (8000, 8000)), "PNG")


@pytest.mark.parametrize(("bad", "reason"), [
    (b"", "empty"),
    (b"%PDF-1.7 definitely not a picture", "not an image"),
    (encode(photo(200, 150, seed=4), "JPEG")[:900], "truncated"),
    (bomb_png(), "too large"),
])
def test_handle_refuses_bad_image_alone(handler, model_dir, images, bad, reason):
    rows = [{"body": images[0]}, {"body": bad}, {"body": images[1]}]

    bodies, codes, _ = handle(handler, model_dir, rows)

    assert codes == [200, 400, 200]
    assert reason in bodies[1]["error"]
    assert set(bodies[1]) == {"error"}
    for body, data in ((bodies[0], images[0]), (bodies[2], images[1])):
        assert list(body["probabilities"].values()) == pytest.approx(
            reference_probabilities(model_dir, data), abs=1e-5)


def test_handle_refuses_a_whole_bad_batch_and_keeps_working(handler, model_dir, images):
    bodies, codes, _ = handle(handler, model_dir, [{"body": b""}, {"body": b"junk"}])
    assert codes == [400, 400]
    assert all("error" in body for body in bodies)

    _, codes, _ = handle(handler, model_dir, [{"body": images[2]}])
    assert codes == [200]


@pytest.mark.parametrize("wrap", [
    pytest.param(lambda b64: {"body": {"data": b64}}, id="json-data"),
    pytest.param(lambda b64: {"body": {"image": b64}}, id="json-image"),
    pytest.param(lambda b64: {"body": b64}, id="json-string"),
    pytest.param(lambda b64: {"data": "data:image/png;base64," + b64}, id="data-url-field"),
])
def test_handle_accepts_base64(handler, model_dir, images, wrap):
    b64 = base64.b64encode(images[1]).decode()

    bodies, codes, _ = handle(handler, model_dir, [wrap(b64)])

    assert codes == [200]
    assert list(bodies[0]["probabilities"].values()) == pytest.approx(
        reference_probabilities(model_dir, images[1]), abs=1e-5)


@pytest.mark.parametrize("field", ["data", "image", "file", "photo"])
def test_handle_accepts_multipart_field(handler, model_dir, images, field):
    bodies, codes, _ = handle(handler, model_dir, [{field: bytearray(images[0])}])

    assert codes == [200]
    assert list(bodies[0]["probabilities"].values()) == pytest.approx(
        reference_probabilities(model_dir, images[0]), abs=1e-5)


@pytest.mark.parametrize(("row", "reason"), [
    ({"body": "this is not base64!"}, "not valid base64"),
    ({"body": {"caption": "a chair"}}, "JSON body has no image"),
    ({"body": [1, 2, 3]}, "cannot read an image from a JSON list"),
    ({"caption": "a chair"}, "no image in the request"),
])
def test_handle_refuses_request_without_usable_image(handler, model_dir, images, row, reason):
    bodies, codes, _ = handle(handler, model_dir, [row, {"body": images[0]}])

    assert codes == [400, 200]
    assert reason in bodies[0]["error"]


def test_initialize_sets_torch_threads_from_env(model_dir, monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setenv("AICORE_TORCH_THREADS", "2")
    try:
        ImageClassifierHandler().initialize(make_context(model_dir))
        assert torch.get_num_threads() == 2
        monkeypatch.delenv("AICORE_TORCH_THREADS")
        ImageClassifierHandler().initialize(make_context(model_dir))
        assert torch.get_num_threads() == 1  # the default: one core per worker
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_initialize_rejects_bad_thread_count(model_dir, monkeypatch, value):
    monkeypatch.setenv("AICORE_TORCH_THREADS", value)  # raises before touching torch's threads
    with pytest.raises(ValueError, match="AICORE_TORCH_THREADS"):
        ImageClassifierHandler().initialize(make_context(model_dir))


def test_initialize_fails_on_folder_without_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.pt"):
        ImageClassifierHandler().initialize(make_context(tmp_path))


def reference_embedding(model_dir: Path, data: bytes) -> list[float]:
    """aicore.models.embed of the image, computed independently of the handler."""
    from aicore.models import embed

    model, _, args = load_trained(model_dir)
    tensor = EvalPreset(args["image_size"])(load_image(data, args["image_size"]))  # (3, S, S)
    with torch.no_grad():
        return embed(model, tensor.unsqueeze(0))[0].tolist()


@pytest.mark.parametrize("flag", [b"true", "true", "1", "TRUE"])
def test_handle_embedding_true_adds_the_unit_embedding(handler, model_dir, images, flag):
    rows = [{"body": images[0], "embedding": flag}, {"body": images[1]},
            {"body": images[2], "embedding": flag}]
    bodies, codes, _ = handle(handler, model_dir, rows)

    assert codes == [200, 200, 200]
    assert "embedding" not in bodies[1]  # only the rows that asked
    for body, data in ((bodies[0], images[0]), (bodies[2], images[2])):
        vector = body["embedding"]
        assert len(vector) == 64  # the CNN's layer before its head
        assert sum(v * v for v in vector) == pytest.approx(1.0, abs=1e-5)
        assert vector == pytest.approx(reference_embedding(model_dir, data), abs=1e-5)
        expected = reference_probabilities(model_dir, data)
        assert list(body["probabilities"].values()) == pytest.approx(expected, abs=1e-5)


def test_handle_embedding_false_answers_without_it(handler, model_dir, images):
    bodies, codes, _ = handle(handler, model_dir, [{"body": images[0], "embedding": "false"}])

    assert codes == [200]
    assert "embedding" not in bodies[0]


def test_handle_embedding_bad_value_is_refused_alone(handler, model_dir, images):
    rows = [{"body": images[0], "embedding": "maybe"}, {"body": images[1], "embedding": "true"}]
    bodies, codes, _ = handle(handler, model_dir, rows)

    assert codes == [400, 200]
    assert "embedding=true" in bodies[0]["error"]
    assert len(bodies[1]["embedding"]) == 64
