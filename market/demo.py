"""Sell through the running proxy: register a demo seller, publish a listing, find it by search.

    python -m market.demo [--url http://127.0.0.1:8000] [--photo PHOTO] [--location "Leeds, West Yorkshire"]

What ``make demo`` runs after ``make serve``: every step goes through the HTTP API a seller's
app would use (docs/marketplace.md), and the script fails unless search finds the new listing
within a second of its 201.
"""

from __future__ import annotations

import argparse
import secrets
import time
from pathlib import Path

import requests

from common.cli import UserError, run
from common.torchserve import DEFAULT_HOST, DEFAULT_PROXY_PORT

FRESH_S = 1.0


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m market.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=f"http://{DEFAULT_HOST}:{DEFAULT_PROXY_PORT}",
                        help="the proxy (default: %(default)s)")
    parser.add_argument("--photo", type=Path, default=None,
                        help="a photo of the item (default: none; the text is enough)")
    parser.add_argument("--location", default=None,
                        help="a place the index knows (default: the place of the first listing "
                             "a search for 'sofa' returns)")
    return parser


def _check(response: requests.Response, what: str) -> dict:
    if not response.ok:
        raise UserError(f"{what}: {response.status_code} {response.text[:300]}")
    return response.json() if response.content else {}


def main(args: argparse.Namespace) -> float:
    """Returns the seconds from the 201 to the first search that found the listing."""
    url, word = args.url.rstrip("/"), "demo" + secrets.token_hex(3)
    with requests.Session() as session:
        session.trust_env = False  # the proxy is local: never through an HTTP_PROXY
        try:
            seller = _check(session.post(f"{url}/sellers", json={"name": "Demo seller"}, timeout=30),
                            "register")
        except requests.ConnectionError:
            raise UserError(f"no proxy answers at {url}: start it with `make serve`") from None
        auth = {"Authorization": f"Bearer {seller['token']}"}
        location = args.location or _a_known_place(session, url)
        form = {"title": f"Oak dining table {word}", "description": "Solid oak, seats six.",
                "price": "£120", "location": location}
        files = [("photos", (args.photo.name, args.photo.read_bytes()))] if args.photo else None
        created = _check(session.post(f"{url}/listings", data=form, files=files, headers=auth,
                                      timeout=120), "publish")
        acknowledged = time.perf_counter()
        print(f"seller {seller['id']} published {created['id']} in {created['category']!r} "
              f"(suggested: {created['suggested']})")
        while time.perf_counter() - acknowledged < 5:
            hits = _check(session.get(f"{url}/search", params={"q": word}, timeout=30), "search")
            # a text index's dense side ranks other listings too: found = among the results
            if created["id"] in [hit["id"] for hit in hits["results"]]:
                waited = time.perf_counter() - acknowledged
                print(f"search for {word!r} found it {waited * 1000:.0f} ms after the 201: "
                      f"{url}{created['url']}")
                if waited > FRESH_S:
                    raise UserError(f"found only after {waited:.2f} s (the promise is {FRESH_S} s)")
                return waited
            time.sleep(0.02)
    raise UserError(f"search did not find {created['id']} within 5 s of its 201")


def _a_known_place(session: requests.Session, url: str) -> str:
    hits = _check(session.get(f"{url}/search", params={"q": "sofa", "k": 1}, timeout=30),
                  "search")["results"]
    if not hits or not hits[0]["location"]:
        raise UserError("the index has no listing with a place: pass --location")
    return hits[0]["location"]


if __name__ == "__main__":
    run(main, get_args_parser())
