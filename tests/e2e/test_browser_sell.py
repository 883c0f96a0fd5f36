"""Selling in a real browser (headless Chromium, no internet) against the real stack: register,
photo + text -> the suggested category (changed) -> Publish -> My listings: change the price,
mark sold, delete; Buy finds the new listing while it is for sale."""

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from serving import ctl
from tests.e2e.test_browser import ANSWER_TIMEOUT_MS, START_TIMEOUT_S, open_page, sell_panel
from tests.e2e.test_browser import browser, categories, page  # noqa: F401 -- shared fixtures
from tests.support import e2e

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


@pytest.fixture(scope="module")
def stack(serving_model_store: Path, search_index: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[ctl.Stack]:
    env = {"AICORE_SEARCH_INDEX": str(search_index),
           "AICORE_STATE_DIR": str(tmp_path_factory.mktemp("browser_state"))}
    with e2e.running_stack(tmp_path_factory.mktemp("serve-browser-sell"), serving_model_store,
                           START_TIMEOUT_S, env) as stack:
        yield stack


def buy_ids(tab: Page, query: str) -> list[str]:
    tab.get_by_role("tab", name="Buy").click()
    tab.locator("#buy-q").fill(query)
    tab.locator("#buy-count").evaluate("count => { count.textContent = ''; }")  # this answer's
    tab.locator("#buy-submit").click()
    expect(tab.locator("#buy-count")).not_to_be_empty(timeout=ANSWER_TIMEOUT_MS)
    ids = tab.locator("#buy-results li.card").evaluate_all("cards => cards.map(c => c.dataset.id)")
    tab.get_by_role("tab", name="Sell").click()
    return ids


def test_sell_publish_edit_sell_and_delete(page: Page, stack, categories):  # noqa: F811
    unique = "zq" + secrets.token_hex(4)
    open_page(page, stack)
    page.get_by_label("Your name").fill("Ada")
    page.get_by_role("button", name="Register as a seller").click()
    expect(page.locator("#seller-who")).to_contain_text("Ada")

    sell_panel(page).get_by_label("Photo").set_input_files(
        files=[{"name": "kettle.jpg", "mimeType": "image/jpeg", "buffer": e2e.photo_jpeg()}])
    page.locator("#sell-title").fill(f"Kettle {unique}")
    page.locator("#sell-description").fill("Barely used, collection only")
    page.get_by_role("button", name="Suggest a category").click()
    expect(page.locator("#sell-result")).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    suggested = page.locator("#sell-category").inner_text()
    assert page.locator("#publish-category").input_value() == suggested
    chosen = next(c for c in categories if c != suggested)  # the seller changes it
    page.locator("#publish-category").select_option(chosen)
    page.locator("#publish-price").fill("£80")
    page.locator("#publish-location").fill("Leeds, West Yorkshire")
    page.get_by_role("button", name="Publish").click()

    expect(page.locator("#publish-result")).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    expect(page.locator("#publish-link")).to_contain_text(chosen)
    mine = page.locator("#my-listings li")
    expect(mine).to_have_count(1)
    listing_id = mine.first.get_attribute("data-id")
    assert buy_ids(page, unique) == [listing_id]

    mine.first.get_by_label(f"New price of Kettle {unique}").fill("60")
    mine.first.get_by_role("button", name="Change price").click()
    expect(mine.first).to_contain_text("£60.00")
    mine.first.get_by_role("button", name="Mark sold").click()
    expect(mine.first).to_have_attribute("data-status", "sold")
    assert buy_ids(page, unique) == []
    mine.first.get_by_role("button", name="Delete").click()
    expect(page.locator("#my-listings li")).to_have_count(0)
    expect(page.locator("#mine-empty")).to_be_visible()
