"""The proxy's test fixtures: settings with a small upload limit, a fake TorchServe client, a TestClient."""

import os
from collections.abc import Iterator
from pathlib import Path
import pytest
from fastapi.testclient import TestClient
from proxy.app import create_app
from tests.support.proxy import LIMIT, UNIT_MODELS
from tests.support.torchserve import FakeTorchServe
from proxy.deps import get_torchserve
from proxy.settings import Settings



@pytest.fixture(autouse=True)
def _no_aicore_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A developer's AICORE_* variables must not change what these tests see."""
    for name in list(os.environ):
        if name.startswith("AICORE_"):
            monkeypatch.delenv(name)
    # TestClient sends Host: testserver; a deployment names its public host the same way.
    monkeypatch.setenv("AICORE_ALLOWED_HOSTS", "testserver")
    monkeypatch.setenv("AICORE_STATE_DIR", str(tmp_path / "state"))  # never the repository's


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(key_file=tmp_path / "key_file.json", max_upload_bytes=LIMIT, **UNIT_MODELS)


@pytest.fixture
def fake() -> FakeTorchServe:
    return FakeTorchServe()


@pytest.fixture
def client(settings: Settings, fake: FakeTorchServe) -> Iterator[TestClient]:
    app = create_app(settings)
    app.dependency_overrides[get_torchserve] = lambda: fake
    with TestClient(app) as test_client:  # a context manager, so the lifespan runs
        yield test_client
