"""Small helpers of the proxy's tests (the fake TorchServe is tests.support.torchserve's)."""

import io

import httpx
from fastapi.testclient import TestClient
from PIL import Image

CATEGORIES = ["Appliances", "Home & Garden", "Video Games & Consoles"]


LIMIT = 4096  # bytes: a small upload limit keeps the oversize tests cheap


def png_bytes(size: int = 8) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def post_image(client: TestClient, data: bytes, **params: str) -> httpx.Response:
    return client.post("/predict/image", params=params, files={"image": ("photo.png", data)})
