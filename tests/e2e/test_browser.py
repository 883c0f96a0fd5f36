"""The page at ``/`` and the API docs in a real browser: headless Chromium (Debian's package) with
no route to the internet, driving the real proxy in front of the real TorchServe serving tiny
models trained for the test session.

A failing test leaves a screenshot in ``build/browser-failures/`` (git-ignored).
"""

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from serving import ctl, ready
from serving import process as serving_process
from tests.support import REPO_ROOT, e2e
from tests.support.browser import Browser, chromium

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

START_TIMEOUT_S = 180.0
ANSWER_TIMEOUT_MS = 60_000  # the first answer of a fresh ResNet-50 worker on a busy 2-core CPU
FAILURES = REPO_ROOT / "build" / "browser-failures"


@pytest.fixture(scope="module")
def stack(serving_model_store: Path, search_index: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[ctl.Stack]:
    runtime_dir = tmp_path_factory.mktemp("serve-browser")
    with e2e.running_stack(runtime_dir, serving_model_store, START_TIMEOUT_S,
                           {"AICORE_SEARCH_INDEX": str(search_index)}) as stack:
        yield stack


@pytest.fixture(scope="module")
def categories(serving_runs: dict[str, Path]) -> list[str]:
    return list(json.loads((serving_runs["cnn"] / "index_to_name.json").read_text()).values())


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as browser:
        yield browser


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A new tab; afterwards: a screenshot if the test failed, and proof that nothing the tab did
    tried to reach the internet or threw a JavaScript error."""
    failed_before = request.session.testsfailed
    browser.external.clear()
    browser.page_errors.clear()
    page = browser.new_page()
    yield page
    # The call phase's report is counted before fixtures are torn down.
    if request.session.testsfailed > failed_before:
        FAILURES.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^\w.-]+", "_", request.node.name)
        page.screenshot(path=str(FAILURES / f"{name}.png"), full_page=True)
    page.close()
    assert browser.external == [], "the page tried to reach the internet"
    assert browser.page_errors == [], "the page threw JavaScript errors"


def open_page(page: Page, stack: ctl.Stack) -> None:
    page.goto(f"{stack.proxy_url}/")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")


def sell_panel(page: Page) -> Locator:
    return page.locator("#panel-sell")  # the Buy panel has a "Photo" control too


def read_bars(page: Page) -> dict[str, tuple[float, float]]:
    """``{category: (probability, bar width in % of its track)}`` as the page shows them."""
    return page.eval_on_selector_all("#sell-bars li", """items => Object.fromEntries(items.map(li => [
        li.dataset.category,
        [Number(li.dataset.probability),
         100 * li.querySelector('.fill').getBoundingClientRect().width /
               li.querySelector('.track').getBoundingClientRect().width]]))""")


def test_page_starts_when_its_last_script_arrives_late(page, stack):
    # buy_feed.js held back until /capabilities has answered: the page must wait for it, not call
    # it before it exists (seen on a loaded machine: "BuyFeed is not defined", page never ready)
    held = []
    page.route("**/web/buy_feed.js", lambda route: held.append(route))  # paused until let go
    page.goto(f"{stack.proxy_url}/", wait_until="commit")  # returns before the page has run
    try:  # a page that starts too early asks at once; a right one waits for buy_feed.js first
        page.wait_for_event("response", lambda r: r.url.endswith("/capabilities"), timeout=5000)
        page.wait_for_timeout(500)  # time for what runs on the answer to run
    except PlaywrightTimeoutError:
        pass
    assert len(held) == 1
    held[0].continue_()
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.locator("#tab-buy")).to_be_visible()  # search is there and BuyFeed started


# --- Sell ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["cnn", "resnet50", "efficientnet_lite0"])
def test_sell_photo_shows_a_bar_per_category(page, stack, categories, model):
    photo = e2e.photo_jpeg()
    open_page(page, stack)
    sell_panel(page).get_by_label("Model").select_option(model)
    sell_panel(page).get_by_label("Photo").set_input_files(
        files=[{"name": "chair.jpg", "mimeType": "image/jpeg", "buffer": photo}])
    page.get_by_role("button", name="Suggest a category").click()

    result = page.locator("#sell-result")
    expect(result).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    bars = read_bars(page)
    expected = e2e.predict_proxy(stack, model, photo, "chair.jpg").json()
    assert sorted(bars) == sorted(categories)
    for category, (probability, width) in bars.items():
        assert probability == pytest.approx(expected["probabilities"][category], abs=1e-6)
        assert width == pytest.approx(100 * probability, abs=1.0)
    assert page.locator("#sell-category").inner_text() == expected["category"]
    assert page.locator("#sell-bars li").first.get_attribute("data-category") == expected["category"]
    expect(page.locator("#sell-model-used")).to_have_text(f"Model: {model}")


def test_sell_takes_a_dropped_photo(page, stack, categories):
    open_page(page, stack)
    # A drop as the browser delivers it: a DataTransfer holding the file, dropped on the zone.
    page.evaluate("""bytes => {
        const transfer = new DataTransfer();
        transfer.items.add(new File([new Uint8Array(bytes)], "dropped.png", {type: "image/png"}));
        document.getElementById("drop-zone").dispatchEvent(
            new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
    }""", list(e2e.logo_png()))
    expect(page.locator("#sell-preview")).to_be_visible()
    # The preview is drawn, not its alt text: the page's policy lets its blob: URL load.
    page.wait_for_function("() => { const img = document.getElementById('sell-preview');"
                           " return img.complete && img.naturalWidth === 93; }", timeout=10_000)
    assert page.locator("#sell-photo").evaluate("input => input.files[0].name") == "dropped.png"
    page.locator("#sell-title").fill("Blue logo sticker")
    page.get_by_role("button", name="Suggest a category").click()

    expect(page.locator("#sell-result")).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    assert sorted(read_bars(page)) == sorted(categories)
    # A photo with a title goes to the served photo + text model, which reads both.
    expect(page.locator("#sell-model-used")).to_have_text("Model: listing")


def test_sell_lists_the_served_models(page, stack):
    open_page(page, stack)
    options = page.locator("#sell-model option").evaluate_all("os => os.map(o => o.value)")
    with e2e.http() as session:
        models = session.get(f"{stack.proxy_url}/models", timeout=10).json()["models"]
        routes = session.get(f"{stack.proxy_url}/capabilities", timeout=10).json()["routes"]
    askable = [m["name"] for m in models if m["kind"] in routes]  # the query encoder has no route
    assert {"cnn", "resnet50", "efficientnet_lite0", "text", "listing"} <= set(askable)
    assert "query" in {m["name"] for m in models} and "query" not in askable
    assert options == ["", *askable]  # Automatic, then what GET /models says is served and askable


def test_sell_works_with_the_keyboard_only(page, stack, categories):
    open_page(page, stack)
    focused = []
    for _ in range(12):  # Tab through the page until the photo control has the focus
        page.keyboard.press("Tab")
        focused.append(page.evaluate("document.activeElement.id"))
        if focused[-1] == "sell-photo":
            break
    assert focused[-1] == "sell-photo", focused
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Space")
    chooser.value.set_files(files=[{"name": "logo.png", "mimeType": "image/png", "buffer": e2e.logo_png()}])
    for control in ("sell-title", "sell-description", "sell-model"):
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == control
    page.keyboard.press("ArrowDown")  # Automatic -> cnn
    assert page.locator("#sell-model").input_value() == "cnn"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "sell-submit"
    page.keyboard.press("Enter")

    expect(page.locator("#sell-result")).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    assert sorted(read_bars(page)) == sorted(categories)


def test_sell_fits_a_phone_width_window(browser, stack):
    page = browser.new_page(width=360, height=740)
    try:
        open_page(page, stack)
        sell_panel(page).get_by_label("Photo").set_input_files(
            files=[{"name": "p.png", "mimeType": "image/png", "buffer": e2e.logo_png()}])
        page.get_by_role("button", name="Suggest a category").click()
        expect(page.locator("#sell-result")).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
        # Nothing wider than the window: no sideways scrolling to read a bar or a button.
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
    finally:
        page.close()


@pytest.mark.parametrize("name, mime, data, message", [
    ("notes.txt", "text/plain", b"not a photo", "“notes.txt” is not an image (text/plain)"),
    ("broken.jpg", "image/jpeg", b"\xff\xd8\xff\xe0 truncated", "We could not use this: "),
    ("huge.jpg", "image/jpeg", b"\xff" * (11 * 2**20), "over the 10.0 MB limit"),
])
def test_sell_explains_a_bad_photo(page, stack, name, mime, data, message):
    open_page(page, stack)
    sell_panel(page).get_by_label("Photo").set_input_files(
        files=[{"name": name, "mimeType": mime, "buffer": data}])
    page.get_by_role("button", name="Suggest a category").click()

    error = page.get_by_role("alert")
    expect(error).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    expect(error).to_contain_text(message)
    expect(page.locator("#sell-result")).to_be_hidden()


def test_sell_without_a_photo_asks_for_one(page, stack):
    open_page(page, stack)
    page.get_by_role("button", name="Suggest a category").click()
    expect(page.get_by_role("alert")).to_have_text("Choose a photo of the item first.")


# --- Buy -----------------------------------------------------------------------------------------


def test_buy_tab_is_shown_exactly_when_the_proxy_has_search(page, stack):
    open_page(page, stack)
    with e2e.http() as session:
        has_search = session.get(f"{stack.proxy_url}/capabilities", timeout=10).json()["search"]
    expect(page.get_by_role("tab", name="Sell")).to_be_visible()
    if has_search:
        expect(page.get_by_role("tab", name="Buy")).to_be_visible()
    else:
        expect(page.locator("#tab-buy")).to_be_hidden()


def test_buy_search_shows_the_ranked_listings_and_one_with_similar(page, stack):
    open_page(page, stack)
    page.get_by_role("tab", name="Buy").click()
    page.locator("#buy-q").fill("sofa")
    page.locator("#buy-submit").click()
    cards = page.locator("#buy-results li.card")
    expect(cards.first).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    with e2e.http() as session:
        expected = session.get(f"{stack.proxy_url}/search", params={"q": "sofa", "k": 24},
                               timeout=60).json()["results"]

    assert expected, "the index holds sofas: the proxy must find them"
    assert cards.locator(".title").all_inner_texts() == [hit["title"] for hit in expected]
    assert "Why:" in cards.first.inner_text()
    cards.first.locator("button").click()
    expect(page.locator("#listing-detail")).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    expect(page.locator("#detail-body")).to_contain_text(expected[0]["title"])
    expect(page.locator("#detail-similar li.card").first).to_be_visible(timeout=ANSWER_TIMEOUT_MS)


# --- API docs ------------------------------------------------------------------------------------


def test_docs_render_every_operation_offline(page, stack):
    page.goto(f"{stack.proxy_url}/docs")
    operations = page.locator(".opblock-summary-path")
    expect(operations.first).to_be_visible(timeout=30_000)
    paths = set(operations.all_inner_texts())
    assert {"/predict/image", "/health", "/models", "/capabilities"} <= {p.strip() for p in paths}


def test_redoc_renders_offline(page, stack):
    page.goto(f"{stack.proxy_url}/redoc")
    expect(page.get_by_role("heading", name="Classify one listing image")).to_be_visible(timeout=30_000)


# --- last: it restarts TorchServe ----------------------------------------------------------------


def test_sell_says_when_the_service_is_down(page, stack):
    open_page(page, stack)
    sell_panel(page).get_by_label("Model").select_option("cnn")
    sell_panel(page).get_by_label("Photo").set_input_files(
        files=[{"name": "logo.png", "mimeType": "image/png", "buffer": e2e.logo_png()}])
    assert serving_process.stop_torchserve(stack)
    try:
        page.get_by_role("button", name="Suggest a category").click()
        error = page.get_by_role("alert")
        expect(error).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
        expect(error).to_contain_text("The service is busy or not ready.")
        expect(error).to_contain_text("TorchServe is not reachable")
    finally:
        process = serving_process.start_torchserve(stack)
        ready.wait_torchserve(stack, process, START_TIMEOUT_S)
