"""The listing handler (text.mar, listing.mar) in-process, with TorchServe's own context."""

import io
import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from ts.utils.util import list_classes_from_module

from aicore.models import embed, load_trained
from aicore.presets import EvalPreset, load_image
from aicore.text import collate_ids
from common.codec import MAX_DESCRIPTION_CHARS, MAX_TITLE_CHARS
from aicore.text_models import ListingBatch
from handler import listing_handler as handler_module
from handler.listing_handler import ListingClassifierHandler
from tests.support.handler import make_context
from tests.support.listing_models import write_model_dir

CATEGORIES = ["Appliances", "Home & Garden", "Video Games & Consoles"]
LISTING = {"title": "Dyson V8 hoover | in Leeds", "description": "Barely used &amp; boxed 😊"}


def jpeg(seed: int = 0, size: tuple[int, int] = (90, 60)) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise(size, 40 + seed).convert("RGB").save(buffer, "JPEG")
    return buffer.getvalue()


def start(model_dir: Path) -> ListingClassifierHandler:
    service = ListingClassifierHandler()
    service.initialize(make_context(model_dir))
    return service


@pytest.fixture(scope="module")
def text_dir(tmp_path_factory) -> Path:
    return write_model_dir(tmp_path_factory.mktemp("text"), "text", CATEGORIES)


@pytest.fixture(scope="module")
def listing_dir(tmp_path_factory) -> Path:
    return write_model_dir(tmp_path_factory.mktemp("listing"), "multimodal", CATEGORIES,
                           image_size=32, image_arch="cnn")


@pytest.fixture(scope="module")
def text_handler(text_dir):
    threads = torch.get_num_threads()
    yield start(text_dir)
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def listing_handler(listing_dir):
    threads = torch.get_num_threads()
    yield start(listing_dir)
    torch.set_num_threads(threads)


def handle(service: ListingClassifierHandler, model_dir: Path, rows: list[dict]
           ) -> tuple[list[dict], list[int]]:
    context = make_context(model_dir, len(rows))
    bodies = service.handle(rows, context)
    assert len(bodies) == len(rows)
    return [json.loads(b) for b in bodies], [context.get_response_status(i)[0]
                                             for i in range(len(rows))]


def test_module_defines_exactly_one_class():
    assert list_classes_from_module(handler_module) == [ListingClassifierHandler]


def test_text_json_body_matches_the_model(text_handler, text_dir):
    [body], [code] = handle(text_handler, text_dir, [{"body": dict(LISTING)}])
    assert code == 200
    assert sorted(body["probabilities"]) == CATEGORIES
    assert sum(body["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    model, names, _ = load_trained(text_dir)
    batch = collate_ids([model.featurizer.encode(LISTING["title"], LISTING["description"])])
    expected = torch.softmax(model(batch), dim=1)[0].tolist()
    assert [body["probabilities"][n] for n in names] == pytest.approx(expected, abs=1e-6)
    assert "embedding" not in body


def test_text_body_as_bytes_and_form_fields_give_the_same_answer(text_handler, text_dir):
    rows = [{"body": dict(LISTING)},
            {"body": json.dumps(LISTING).encode()},
            {"title": LISTING["title"].encode(), "description": LISTING["description"].encode()}]
    bodies, codes = handle(text_handler, text_dir, rows)
    assert codes == [200, 200, 200]
    assert bodies[0] == bodies[1] == bodies[2]


@pytest.mark.parametrize(("row", "message"), [
    ({"body": {"title": "", "description": " <br> 😊 "}}, "empty listing"),
    ({"body": {}}, "empty listing"),
    ({"body": {"title": 5}}, "'title' must be a string, got int"),
    ({"body": {"title": "x" * (MAX_TITLE_CHARS + 1)}}, f"the limit is {MAX_TITLE_CHARS}"),
    ({"body": {"description": "x" * (MAX_DESCRIPTION_CHARS + 1)}}, "'description' is"),
    ({"body": ["a list"]}, "must be an object"),
    ({"body": b"\xff not json"}, "not JSON"),
    ({"body": dict(LISTING), "embedding": b"maybe"}, "not a yes/no value"),
    ({"title": b"sofa", "image": jpeg()}, "reads no photo"),
])
def test_text_bad_request_gets_its_own_400(text_handler, text_dir, row, message):
    bodies, codes = handle(text_handler, text_dir, [{"body": dict(LISTING)}, row,
                                                    {"body": dict(LISTING)}])
    assert codes == [200, 400, 200]
    assert message in bodies[1]["error"]
    assert bodies[0] == bodies[2]


def test_embedding_on_request_is_the_models_unit_embedding(text_handler, text_dir):
    bodies, codes = handle(text_handler, text_dir, [{"body": dict(LISTING), "embedding": b"true"},
                                                    {"body": dict(LISTING), "embedding": "false"},
                                                    {"body": {**LISTING, "embedding": True}}])
    assert codes == [200, 200, 200]
    assert bodies[2]["embedding"] == pytest.approx(bodies[0]["embedding"])
    model, _, _ = load_trained(text_dir)
    batch = collate_ids([model.featurizer.encode(LISTING["title"], LISTING["description"])])
    expected = embed(model, batch)[0]
    got = torch.tensor(bodies[0]["embedding"])
    assert got.shape == expected.shape and torch.allclose(got, expected, atol=1e-6)
    assert got.norm().item() == pytest.approx(1.0, abs=1e-5)
    assert "embedding" not in bodies[1]


def listing_reference(model_dir: Path, image: bytes | None, title: str, description: str
                      ) -> list[float]:
    model, _, args = load_trained(model_dir)
    size = args["image_size"]
    text = collate_ids([model.featurizer.encode(title, description)])
    picture = (EvalPreset(size)(load_image(image, size)) if image is not None
               else torch.zeros(3, size, size))
    batch = ListingBatch(picture[None], torch.tensor([float(image is not None)]), text.ids,
                         text.offsets)
    with torch.inference_mode():
        return torch.softmax(model(batch), dim=1)[0].tolist()


@pytest.mark.parametrize("parts", ["photo+text", "photo only", "text only"])
def test_listing_with_or_without_photo_or_text(listing_handler, listing_dir, parts):
    photo = jpeg(1) if "photo" in parts else None
    title, description = (LISTING["title"], "") if "text" in parts else ("", "")
    row = {"title": title.encode(), "description": description.encode()}
    if photo is not None:
        row["image"] = photo
    [body], [code] = handle(listing_handler, listing_dir, [row])
    assert code == 200
    expected = listing_reference(listing_dir, photo, title, description)
    assert [body["probabilities"][n] for n in CATEGORIES] == pytest.approx(expected, abs=1e-5)


def test_listing_batch_answers_each_request(listing_handler, listing_dir):
    rows = [{"title": b"ps4 with games", "image": jpeg(2)},
            {"title": b"", "description": b""},  # nothing at all
            {"title": b"sofa", "image": b"not an image at all"},
            {"body": {"title": "Ikea desk lamp"}},  # JSON works too: no photo
            {"title": b"x", "image": jpeg(3), "embedding": b"true"}]
    bodies, codes = handle(listing_handler, listing_dir, rows)
    assert codes == [200, 400, 400, 200, 200]
    assert "empty listing" in bodies[1]["error"] and "photo" in bodies[1]["error"]
    assert "field 'image': not an image" in bodies[2]["error"]
    assert len(bodies[4]["embedding"]) == 128
    # batching changes nothing: the first row alone gives the same answer
    [alone], _ = handle(listing_handler, listing_dir, [rows[0]])
    assert alone["probabilities"] == pytest.approx(bodies[0]["probabilities"], abs=1e-5)


def test_image_model_archive_is_refused(tmp_path):
    model_dir = write_model_dir(tmp_path / "cnn", "cnn", CATEGORIES)
    with pytest.raises(ValueError, match="serves models of kind text or listing, not .cnn. .kind image."):
        start(model_dir)
