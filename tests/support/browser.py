"""Headless Chromium (Debian's package) driven by Playwright, cut off from the internet.

Used by the browser tests and by ``python -m tests.support.screenshots`` (the pictures in docs/img).
Playwright's own browser download is never used: ``executable_path`` is the system Chromium that
``make chromium`` installs.
"""

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import BrowserContext, Page, Playwright, Route, sync_playwright

# Chromium's own background traffic (updates, sync, field trials) off; QUIC off so every request
# is plain HTTP that the route guard below sees.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # tests run as root in CI containers
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Any host but the loopback proxy fails to resolve: the page must work on a box without
    # internet, and a CDN reference would show up as a blank page, not as a silent download.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
LOCAL_SCHEMES = {"data", "blob", "about"}


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        raise RuntimeError("chromium is not installed: run `make chromium` (Debian package chromium)")
    return path


@dataclass
class Browser:
    """One Chromium profile; ``external`` lists every request that tried to leave the machine."""

    context: BrowserContext
    external: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    playwright: Playwright | None = None

    @contextmanager
    def another_profile(self, user_data_dir: Path) -> Iterator["Browser"]:
        """A second Chromium with its own profile (cookies, storage): another person's browser.
        Sync Playwright runs once per thread, so it shares this one's."""
        assert self.playwright is not None
        other = _launch(self.playwright, user_data_dir)
        try:
            yield other
        finally:
            other.context.close()

    def new_page(self, width: int = 1100, height: int = 900) -> Page:
        page = self.context.new_page()
        page.set_viewport_size({"width": width, "height": height})
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        return page


def _guard(browser: Browser, route: Route) -> None:
    url = urlsplit(route.request.url)
    if url.scheme in LOCAL_SCHEMES or url.hostname in LOCAL_HOSTS:
        route.continue_()
    else:
        browser.external.append(route.request.url)
        route.abort("internetdisconnected")


@contextmanager
def chromium(user_data_dir: Path) -> Iterator[Browser]:
    """A fresh headless Chromium profile in ``user_data_dir``, every non-loopback request aborted
    and recorded."""
    with sync_playwright() as playwright:
        browser = _launch(playwright, user_data_dir)
        try:
            yield browser
        finally:
            browser.context.close()


def _launch(playwright: Playwright, user_data_dir: Path) -> Browser:
    context = playwright.chromium.launch_persistent_context(
        str(user_data_dir), executable_path=chromium_path(), headless=True,
        args=CHROMIUM_FLAGS, service_workers="block",
    )
    browser = Browser(context, playwright=playwright)
    context.route("**/*", lambda route: _guard(browser, route))
    return browser
