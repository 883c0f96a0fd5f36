"""Small helpers of the proxy's tests (the fake TorchServe is tests.support.torchserve's)."""

import io

import httpx
from fastapi.testclient import TestClient
from PIL import Image

CATEGORIES = ["Appliances", "Home & Garden", "Video Games & Consoles"]


LIMIT = 4096  # bytes: a small upload limit keeps the oversize tests cheap

# The models the proxy's unit tests were written for (the fake TorchServe describes them), pinned so
# the production default (efficientnet_lite0, tests/proxy/test_settings.py) can change on its own.
UNIT_MODELS = {"models": ["cnn", "resnet50", "text", "listing", "query"], "default_model": "resnet50"}


def png_bytes(size: int = 8) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def post_image(client: TestClient, data: bytes, **params: str) -> httpx.Response:
    return client.post("/predict/image", params=params, files={"image": ("photo.png", data)})
