"""The page at ``/``, its files, ``GET /capabilities`` and the offline ``/docs`` and ``/redoc``,
through FastAPI's TestClient (no TorchServe needed: none of these routes calls it).

The browser tests (``tests/e2e/test_browser.py``) prove the same pages really render in Chromium.
"""

import re
from collections.abc import Iterator

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from aicore.categories import ROOT_CATEGORIES
from proxy.app import create_app
from proxy.settings import Settings
from proxy.webpage import WEB_DIR, add_web

# An absolute URL, or a protocol-relative one (//cdn.example/x.js), in an attribute or CSS url().
EXTERNAL = re.compile(r"""(?:src|href|action)\s*=\s*["']?(?:https?:)?//|url\(\s*["']?(?:https?:)?//""",
                      re.IGNORECASE)


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = create_app(Settings(max_upload_bytes=4096, models=["cnn", "resnet50"], default_model="cnn"))
    with TestClient(app) as client:
        yield client


def test_index_serves_the_page(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert 'id="sell-form"' in response.text
    assert '<script src="/web/app.js"' in response.text


@pytest.mark.parametrize("name, media_type", [("app.js", "javascript"), ("buy_feed.js", "javascript"),
                                              ("style.css", "text/css")])
def test_web_files_are_served(client, name, media_type):
    response = client.get(f"/web/{name}")
    assert response.status_code == 200
    assert media_type in response.headers["content-type"]
    assert response.content == (WEB_DIR / name).read_bytes()


@pytest.mark.parametrize("name", ["index.html", "app.js", "buy_feed.js", "style.css"])
def test_page_files_load_nothing_from_another_host(name):
    text = (WEB_DIR / name).read_text()
    assert not EXTERNAL.search(text), EXTERNAL.search(text)
    assert "http://" not in text and "https://" not in text


def test_every_form_control_has_a_label():
    html = (WEB_DIR / "index.html").read_text()
    controls = re.findall(r"<(?:input|select|textarea)\b[^>]*\bid=\"([^\"]+)\"", html)
    labelled = set(re.findall(r"<label\b[^>]*\bfor=\"([^\"]+)\"", html))
    assert controls  # the regex still finds the page's controls
    assert set(controls) - labelled == set()


def test_capabilities_report_search_and_every_predict_route(client):
    response = client.get("/capabilities")
    assert response.status_code == 200
    body = response.json()
    assert body == {
        "default_model": "cnn",
        "max_upload_bytes": 4096,
        "categories": list(ROOT_CATEGORIES),
        "search": True,  # proxy.search_routes is included by create_app
        # the routes exist, but this proxy serves no text or listing model (models=...)
        "predict": {"image": True, "text": False, "listing": False},
        "models": [{"name": "cnn", "kind": "image", "reads": "photo"},
                   {"name": "resnet50", "kind": "image", "reads": "photo"}],
        "routes": {"image": {"path": "/predict/image", "body": "multipart/form-data"}},
    }


def test_capabilities_give_every_served_kind_its_route_and_body():
    app = create_app(Settings(max_upload_bytes=4096))  # every model of config.properties
    with TestClient(app) as client:
        body = client.get("/capabilities").json()
    assert body["predict"] == {"image": True, "text": True, "listing": True}
    assert {m["name"]: m["kind"] for m in body["models"]} == {
        "efficientnet_lite0": "image", "cnn": "image", "resnet50": "image", "text": "text",
        "listing": "listing", "query": "query"}
    assert body["routes"] == {
        "image": {"path": "/predict/image", "body": "multipart/form-data"},
        "text": {"path": "/predict/text", "body": "application/json"},
        "listing": {"path": "/predict/listing", "body": "multipart/form-data"}}


def test_capabilities_follow_the_routes_the_app_has():
    # An app with the page and only two of the routes it looks for (as a deployment may build it).
    app = FastAPI()
    app.state.settings = Settings()
    add_web(app)
    extra = APIRouter()

    @extra.get("/search")
    async def search() -> list[str]:
        return []

    @extra.post("/predict/listing")
    async def listing() -> dict[str, str]:
        return {}

    app.include_router(extra)
    with TestClient(app) as client:
        body = client.get("/capabilities").json()
    assert body["search"] is True
    assert body["predict"] == {"image": False, "text": False, "listing": True}


@pytest.mark.parametrize("path, asset", [("/docs", "swagger-ui-bundle.js"),
                                         ("/docs", "swagger-ui.css"),
                                         ("/redoc", "redoc.standalone.js")])
def test_docs_load_their_assets_from_the_proxy(client, path, asset):
    page = client.get(path)
    assert page.status_code == 200
    assert "https://" not in page.text and "http://" not in page.text
    urls = re.findall(r"""(?:src|href|url:)\s*=?\s*['"]([^'"]+)['"]""", page.text)
    local = [url for url in urls if url.endswith(asset)]
    assert local and all(url.startswith("/") for url in local), urls
    served = client.get(local[0])
    assert served.status_code == 200
    assert len(served.content) > 50_000  # the real bundle, not an error page


def test_swagger_ui_never_calls_the_online_validator(client):
    page = client.get("/docs").text
    assert re.search(r'"validatorUrl"\s*:\s*null', page)


@pytest.mark.parametrize("path", ["/", "/docs", "/redoc"])
def test_html_pages_may_load_only_from_the_proxy(client, path):
    response = client.get(path)
    assert response.status_code == 200
    policy = dict(part.strip().split(" ", 1) for part in
                  response.headers["content-security-policy"].split(";"))
    assert policy["default-src"] == "'self'"
    for directive in ("script-src", "style-src", "img-src", "connect-src", "worker-src"):
        value = policy.get(directive, "")
        assert "http" not in value and "*" not in value, value


def test_json_answers_carry_no_page_policy(client):
    response = client.get("/capabilities")
    assert response.status_code == 200
    assert "content-security-policy" not in response.headers


def test_page_takes_kinds_and_bodies_from_the_proxy_not_from_names_or_openapi():
    script = (WEB_DIR / "app.js").read_text()
    assert "/openapi.json" not in script
    assert not re.search(r"name\.startsWith\(", script)  # no kind guessed from a model's name
    assert "state.capabilities.routes" in script and "m.kind" in script
