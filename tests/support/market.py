"""Seller-side helpers of the end-to-end tests: register, publish, and ask search what it finds."""

import io

import requests
from PIL import Image

from tests.support.e2e import http


def register(url: str, name: str = "Ada") -> dict[str, str]:
    """A new seller's ``Authorization`` header."""
    with http() as session:
        response = session.post(f"{url}/sellers", json={"name": name}, timeout=30)
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def jpeg_with_gps(colour=(30, 160, 60), size=(160, 120)) -> bytes:
    """A phone-like JPEG whose EXIF names the maker and a GPS position."""
    img = Image.new("RGB", size, colour)
    img.paste((250, 250, 250), (10, 10, 60, 50))
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    exif[0x8825] = {1: "N", 2: (51.0, 30.0, 0.0), 3: "W", 4: (0.0, 7.0, 0.0)}
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", exif=exif)
    return buffer.getvalue()


def publish(session: requests.Session, url: str, auth: dict, photos=(), headers=None,
            timeout: float = 60, **fields) -> requests.Response:
    form = {"title": "Green kettle - unused", "description": "A kettle, collection only",
            "price": "£1,234.50", "location": "Leeds, West Yorkshire", **fields}
    files = [("photos", (f"p{i}.jpg", data, "image/jpeg")) for i, data in enumerate(photos)]
    return session.post(f"{url}/listings", data=form, files=files or None,
                        headers={**auth, **(headers or {})}, timeout=timeout)


def search_ids(session: requests.Session, url: str, **params) -> list[str]:
    response = session.get(f"{url}/search", params=params, timeout=30)
    assert response.status_code == 200, response.text
    return [hit["id"] for hit in response.json()["results"]]
