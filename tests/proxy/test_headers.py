"""Security headers and the Host check on the real app (TestClient)."""

import pytest


def policy_of(response) -> dict[str, str]:
    return dict(part.strip().split(" ", 1) for part in
                response.headers["content-security-policy"].split(";"))


def test_page_policy_allows_no_inline_script_or_style(client):
    policy = policy_of(client.get("/"))

    assert policy["script-src"] == "'self'" and policy["style-src"] == "'self'"
    assert policy["base-uri"] == "'none'" and policy["form-action"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["img-src"] == "'self' data: blob:"  # blob: is the Sell photo's preview


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_pages_get_only_what_their_bundles_need(client, path):
    policy = policy_of(client.get(path))

    assert "'unsafe-inline'" in policy["script-src"] and "blob:" in policy["worker-src"]
    assert policy["base-uri"] == "'none'"


@pytest.mark.parametrize(("method", "path"), [
    ("get", "/"), ("get", "/capabilities"), ("get", "/web/app.js"), ("get", "/no-such-page"),
    ("post", "/predict/text"), ("get", "/openapi.json"),
])
def test_every_answer_forbids_content_sniffing(client, method, path):
    response = getattr(client, method)(path)

    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("host", ["evil.example", "127.0.0.1.evil.example", "10.0.0.7"])
def test_request_for_another_host_is_refused(client, host):
    response = client.get("/capabilities", headers={"Host": host})

    assert response.status_code == 400


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "localhost", "[::1]:8000"])
def test_loopback_hosts_are_served(client, host):
    assert client.get("/capabilities", headers={"Host": host}).status_code == 200


def test_allowed_hosts_add_public_names(settings, monkeypatch):
    from fastapi.testclient import TestClient

    from proxy.app import create_app

    settings.allowed_hosts = ["shop.example", "testserver"]
    with TestClient(create_app(settings)) as client:
        assert client.get("/capabilities", headers={"Host": "shop.example"}).status_code == 200
        assert client.get("/capabilities", headers={"Host": "other.example"}).status_code == 400
