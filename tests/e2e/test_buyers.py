"""Buyers end to end: the real proxy (in front of the real TorchServe) with a real index and a
real sessions database, driven over HTTP and by headless Chromium: views move the feed, clearing
resets it, two browsers do not see each other's history, and the page reports what it showed."""

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page, expect

from buyers.feed import feed
from buyers.store import SESSION_HEADER, SESSIONS_FILE, SessionStore
from search import SearchEngine
from serving import ctl
from tests.support import e2e
from tests.support.browser import Browser, chromium

pytestmark = [pytest.mark.e2e]

START_TIMEOUT_S = 180.0
ANSWER_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def runtime_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serve-buyers")


@pytest.fixture(scope="module")
def stack(serving_model_store: Path, search_index: Path, runtime_dir: Path) -> Iterator[ctl.Stack]:
    with e2e.running_stack(runtime_dir, serving_model_store, START_TIMEOUT_S,
                           {"AICORE_SEARCH_INDEX": str(search_index)}) as stack:
        yield stack


@pytest.fixture
def buyer(stack) -> Iterator[requests.Session]:
    """An API client with a session of its own (the X-Session header)."""
    with e2e.http() as session:
        session.headers[SESSION_HEADER] = "new"
        yield session


def call(session: requests.Session, method: str, url: str, **kwargs) -> requests.Response:
    response = session.request(method, url, timeout=60, **kwargs)
    if SESSION_HEADER in response.headers:
        session.headers[SESSION_HEADER] = response.headers[SESSION_HEADER]
    return response


def test_views_through_the_proxy_move_the_feed_and_clearing_resets_it(stack, buyer,
                                                                      search_index):
    url = stack.proxy_url
    cold = call(buyer, "GET", f"{url}/feed", params={"k": 6})
    assert cold.status_code == 200 and cold.json()["personalised"] is False

    kind = call(buyer, "GET", f"{url}/listings/prod-03-000").json()["category"]
    call(buyer, "GET", f"{url}/listings/prod-03-001")
    warm = call(buyer, "GET", f"{url}/feed", params={"k": 6}).json()

    assert warm["personalised"] is True
    assert not {"prod-03-000", "prod-03-001"} & {hit["id"] for hit in warm["results"]}
    assert all(hit["reason"].startswith("like ") for hit in warm["results"])
    # the engine's own feed for those views, latest first (3 listings per kind: one is left)
    expected = feed(SearchEngine.open(search_index), ["prod-03-001", "prod-03-000"], [], 6)
    assert [hit["id"] for hit in warm["results"]] == [item.id for item in expected]
    assert kind in {hit["category"] for hit in warm["results"]}

    erased = call(buyer, "DELETE", f"{url}/me/history")
    assert erased.status_code == 200 and erased.json()["erased"] == 2
    assert call(buyer, "GET", f"{url}/feed").json()["personalised"] is False


def test_search_uses_the_session_s_views_unless_viewed_is_given(stack, buyer):
    url = stack.proxy_url
    call(buyer, "GET", f"{url}/listings/prod-07-002")
    personal = call(buyer, "GET", f"{url}/search", params={"q": "for sale", "k": 10}).json()
    with e2e.http() as other:
        explicit = other.get(f"{url}/search", params={"q": "for sale", "k": 10,
                                                      "viewed": "prod-07-002"}, timeout=60).json()
        plain = other.get(f"{url}/search", params={"q": "for sale", "k": 10}, timeout=60).json()

    assert personal["personalised"] is True and plain["personalised"] is False
    assert [h["id"] for h in personal["results"]] == [h["id"] for h in explicit["results"]]


def test_events_are_validated_and_stored_without_an_address(stack, buyer, runtime_dir):
    url = stack.proxy_url
    bad = call(buyer, "POST", f"{url}/events", json={"type": "click", "listing": "prod-00-000",
                                                     "rank": 0})
    unknown = call(buyer, "POST", f"{url}/events", json={"type": "click", "listing": "nope",
                                                         "rank": 1})
    good = call(buyer, "POST", f"{url}/events", json={
        "type": "impression", "listings": ["prod-00-000", "prod-00-001"], "source": "feed",
        "ranker": "feed-mmr"})

    assert bad.status_code == 422 and "rank" in bad.text
    assert unknown.status_code == 422
    assert unknown.json()["detail"][0]["loc"] == ["body", "listing"]
    assert good.status_code == 202
    store = SessionStore(runtime_dir / "state" / SESSIONS_FILE)
    try:
        mine = store.history(buyer.headers[SESSION_HEADER])
    finally:
        store.close()
    assert [(e.type, e.shown) for e in mine] == [("impression", ["prod-00-000", "prod-00-001"])]


# --- the page ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    with chromium(tmp_path_factory.mktemp("chromium-buyer-a")) as browser:
        yield browser


def open_feed(page: Page, stack: ctl.Stack) -> None:
    """The page with a session that has no history (the profile is shared by the tests)."""
    page.goto(f"{stack.proxy_url}/")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    page.evaluate("fetch('/me/history', {method: 'DELETE'}).then((r) => r.status)")
    page.get_by_role("tab", name="Buy").click()
    expect(page.locator("#feed")).to_have_attribute("data-personalised", "false",
                                                    timeout=ANSWER_TIMEOUT_MS)
    expect(page.locator("#feed-results li.card").first).to_be_visible(timeout=ANSWER_TIMEOUT_MS)


def reasons(page: Page) -> list[str]:
    return page.locator("#feed-results li.card .why").all_inner_texts()


def history(page: Page, until=lambda stored: True, timeout_s: float = 10.0) -> dict:
    """The session's stored history, polled until ``until`` holds (the page's events are
    fire-and-forget requests)."""
    deadline = time.monotonic() + timeout_s
    while True:
        stored = page.evaluate("fetch('/me/history').then((r) => r.json())")
        if until(stored) or time.monotonic() > deadline:
            return stored
        time.sleep(0.2)


@pytest.mark.browser
def test_the_page_opens_on_the_feed_and_views_move_it(browser, stack):
    page = browser.new_page()
    try:
        open_feed(page, stack)
        assert not any("like " in r for r in reasons(page))  # a new session: popular and new

        first = page.locator("#feed-results li.card").first
        title = first.locator(".title").inner_text()
        first.locator("button").click()
        expect(page.locator("#listing-detail")).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
        page.locator("#detail-close").click()

        expect(page.locator("#feed")).to_have_attribute("data-personalised", "true",
                                                        timeout=ANSWER_TIMEOUT_MS)
        assert reasons(page) == [f"Why: like {title}"] * len(reasons(page))
        stored = history(page, lambda h: any(e["type"] == "click" for e in h["events"]))
        by_type = {event["type"]: event for event in stored["events"]}
        assert by_type["impression"]["source"] == "feed"
        assert (by_type["click"]["rank"], by_type["click"]["source"]) == (1, "feed")
        assert by_type["view"]["listing"] == by_type["click"]["listing"]

        page.locator("#feed-clear").click()
        expect(page.locator("#feed")).to_have_attribute("data-personalised", "false",
                                                        timeout=ANSWER_TIMEOUT_MS)
        expect(page.locator("#feed-note")).to_contain_text("cleared")
        assert history(page)["views"] == []
        assert not any("like " in r for r in reasons(page))
    finally:
        page.close()
    assert browser.page_errors == [] and browser.external == []


@pytest.mark.browser
def test_two_browsers_do_not_see_each_other_s_history(browser, stack, tmp_path):
    page = browser.new_page()
    try:
        open_feed(page, stack)
        page.locator("#feed-results li.card button").nth(1).click()
        expect(page.locator("#listing-detail")).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
        assert len(history(page, lambda h: h["views"])["views"]) == 1
        with browser.another_profile(tmp_path / "chromium-buyer-b") as other:
            stranger = other.new_page()
            open_feed(stranger, stack)
            assert history(stranger)["views"] == []
            expect(stranger.locator("#feed")).to_have_attribute("data-personalised", "false")
            assert not any(re.match(r"Why: like ", r) for r in reasons(stranger))
    finally:
        page.close()


@pytest.mark.browser
def test_a_search_on_the_page_reports_its_impression_and_click(browser, stack):
    page = browser.new_page()
    try:
        open_feed(page, stack)
        page.locator("#buy-q").fill("sofa")
        page.locator("#buy-submit").click()
        cards = page.locator("#buy-results li.card")
        expect(cards.first).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
        shown = [card.get_attribute("data-id") for card in cards.all()]
        cards.nth(1).locator("button").click()
        expect(page.locator("#listing-detail")).to_be_visible(timeout=ANSWER_TIMEOUT_MS)

        events = history(page, lambda h: sum(e.get("source") == "search"
                                             for e in h["events"]) >= 2)["events"]
        search = [e for e in events if e.get("source") == "search"]
        assert search[0]["type"] == "impression" and search[0]["listings"] == shown
        assert search[0]["query"] == "sofa"
        assert search[1] == {**search[1], "type": "click", "listing": shown[1], "rank": 2}
    finally:
        page.close()
