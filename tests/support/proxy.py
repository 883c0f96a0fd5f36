"""Fakes of TorchServe for the proxy's tests: a fake client (dependency override) and small helpers."""

import io
import httpx
from fastapi.testclient import TestClient
from PIL import Image
from proxy.errors import (
    ModelNotFound,
    TorchServeError,
)
from proxy.torchserve import ModelDescription, Prediction

# The image models the proxy's unit tests were written for (the fake TorchServe serves them),
# pinned so the production default (efficientnet_lite0, tests/proxy/test_settings.py) can change
# on its own.
IMAGE_MODELS = {"models": ["cnn", "resnet50"], "default_model": "resnet50"}



CATEGORIES = ["Appliances", "Home & Garden", "Video Games & Consoles"]


PROBABILITIES = {"Appliances": 0.1, "Home & Garden": 0.7, "Video Games & Consoles": 0.2}


LIMIT = 4096  # bytes: a small upload limit keeps the oversize tests cheap


def png_bytes(size: int = 8) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def describe(name: str, statuses: list[str], version: str = "1.0") -> ModelDescription:
    return ModelDescription.model_validate({
        "modelName": name, "modelVersion": version,
        "workers": [{"id": str(9000 + i), "status": s} for i, s in enumerate(statuses)],
    })


class FakeTorchServe:
    """Stands in for TorchServeClient: canned answers, or the error a test sets."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes]] = []
        self.error: Exception | None = None
        self.ping_error: TorchServeError | None = None
        self.descriptions = {"cnn": describe("cnn", ["READY"]),
                             "resnet50": describe("resnet50", ["READY", "READY"])}

    async def predict(self, model: str, image: bytes) -> Prediction:
        self.calls.append((model, image))
        if self.error is not None:
            raise self.error
        return Prediction(category="Home & Garden", probabilities=PROBABILITIES)

    async def ping(self) -> str:
        if self.ping_error is not None:
            raise self.ping_error
        return "Healthy"

    async def model(self, name: str) -> ModelDescription:
        if name not in self.descriptions:
            raise ModelNotFound(f"TorchServe has no model {name!r} registered")
        return self.descriptions[name]

    async def models(self) -> dict[str, list[str]]:
        return {"cnn": ["1.0"], "old": ["0.9", "1.0"], "resnet50": ["1.0"]}


def post_image(client: TestClient, data: bytes, **params: str) -> httpx.Response:
    return client.post("/predict/image", params=params, files={"image": ("photo.png", data)})
