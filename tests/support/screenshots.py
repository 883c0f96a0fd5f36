"""The docs' pictures (docs/img) of the web page and the API docs, taken with the headless Chromium the
browser tests use, from a running proxy (``make demo`` or ``make serve``).

    .venv/bin/python -m tests.support.screenshots --url http://127.0.0.1:8000 \\
        --photo data/demo/raw/samples/<a photo> --model cnn --out docs/img

PNGs are reduced to a 64-colour palette so each stays well under 150 KB in git.
"""

import argparse
import mimetypes
import tempfile
from pathlib import Path

from PIL import Image
from playwright.sync_api import Page, expect

from tests.support.browser import chromium

COLOURS = 64  # flat UI colours: a palette keeps the text sharp at a fraction of the bytes


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000",
                        help="the proxy (default: http://127.0.0.1:8000)")
    parser.add_argument("--photo", type=Path, required=True, help="the photo the Sell picture classifies")
    parser.add_argument("--model", default="cnn", help="the model the Sell picture uses (default: cnn)")
    parser.add_argument("--query", default="sofa", help="what the Buy picture searches for (default: sofa)")
    parser.add_argument("--out", type=Path, default=Path("docs/img"),
                        help="directory for the PNGs (default: docs/img)")
    return parser


def save_small(page: Page, path: Path, full_page: bool = False) -> None:
    page.screenshot(path=str(path), full_page=full_page)
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(COLOURS, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)
    print(f"{path}  {path.stat().st_size / 1024:.0f} KB")


def sell(page: Page, url: str, photo: Path, model: str) -> None:
    page.goto(f"{url}/")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    panel = page.locator("#panel-sell")
    panel.get_by_label("Model").select_option(model)
    mime = mimetypes.guess_type(photo.name)[0] or "application/octet-stream"
    panel.get_by_label("Photo").set_input_files(
        files=[{"name": photo.name, "mimeType": mime, "buffer": photo.read_bytes()}])
    page.get_by_role("button", name="Suggest a category").click()
    expect(page.locator("#sell-result")).to_be_visible(timeout=60_000)


def buy(page: Page, url: str, query: str) -> None:
    page.goto(f"{url}/")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    page.get_by_role("tab", name="Buy").click()
    page.locator("#buy-q").fill(query)
    page.locator("#buy-submit").click()
    expect(page.locator("#buy-results li.card").first).to_be_visible(timeout=60_000)
    page.locator("#buy-count").scroll_into_view_if_needed()
    page.wait_for_function("() => [...document.querySelectorAll('#buy-results img')].slice(0, 4)"
                           ".every(img => img.complete && img.naturalWidth > 0)", timeout=30_000)


def main(args: argparse.Namespace) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile, chromium(Path(profile)) as browser:
        page = browser.new_page(width=900, height=1000)
        sell(page, args.url, args.photo, args.model)
        save_small(page, args.out / "sell.png", full_page=True)
        phone = browser.new_page(width=360, height=740)
        sell(phone, args.url, args.photo, args.model)
        phone.locator("#sell-result").evaluate("result => result.scrollIntoView()")  # the bars
        save_small(phone, args.out / "sell-phone.png")
        buy(page, args.url, args.query)
        save_small(page, args.out / "buy.png")
        page.goto(f"{args.url}/docs")
        expect(page.locator(".opblock-summary-path").first).to_be_visible(timeout=30_000)
        save_small(page, args.out / "docs.png")
        if browser.external:
            raise SystemExit(f"the pages tried to reach the internet: {browser.external}")


if __name__ == "__main__":
    main(get_args_parser().parse_args())
