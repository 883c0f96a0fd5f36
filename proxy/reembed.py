"""Embed again the sellers' listings whose vectors other weights made than the served index's.

    make reembed                        # .venv/bin/python -m proxy.reembed
    .venv/bin/python -m proxy.reembed --dry-run    # count them, embed nothing

A listing is embedded when it is published and when its text is edited, by the model the index
was built with and, on an index with text vectors, by its text encoder (docs/marketplace.md). The
search overlay uses a stored vector only when the index's weights made it, so after a rebuild
with other weights (a new run, another encoder) every listing published before is found by the
lists whose vectors still match -- text and filters at least -- until it is embedded again; and
listings published before text vectors existed (a store of before 7 Dec 2026) have none. This job
brings each of them to the index the proxy serves now, asking TorchServe exactly what publishing
asks (:func:`proxy.market.stored_vectors`), after checking that it serves the index's weights.

It is configured like the proxy (``AICORE_*`` variables: ``AICORE_STATE_DIR``,
``AICORE_SEARCH_INDEX``, TorchServe's URLs and key file, ``AICORE_SEARCH_MODEL``) and is safe
beside a serving proxy and to run again: each listing is written with the version it read, so a
seller's edit meanwhile (which made its own vectors) wins, and a run stopped halfway (TorchServe
gone, Ctrl-C) keeps what it wrote and leaves the rest to the next run. Every proxy process sees a
re-embedded listing at its next search (the store's change feed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from common.catalogue import IMAGE, TEXT
from common.cli import UserError, run
from market.store import StoredListing
from proxy.errors import TorchServeError
from proxy.market import Market, stored_vectors
from proxy.search_routes import encoder_weights, served_weights_problem
from proxy.settings import Settings
from proxy.torchserve import TorchServeClient
from search import SearchEngine
from search.errors import IndexUnavailable

logger = logging.getLogger(__name__)


@dataclass
class Report:
    """What a run found and did; ``behind`` counts listings, the vector counts what was stored."""

    listings: int = 0     # in the store
    behind: int = 0       # with a vector of other weights (or none) that the index can have
    vectors: int = 0      # vectors by the index's model stored
    text_vectors: int = 0  # text vectors by the index's encoder stored
    edited: int = 0       # edited or deleted while being embedded: their own vectors stand
    unreadable: int = 0   # a photo file could not be read: left as they were (logged)
    dry_run: bool = False


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m proxy.reembed",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true",
                        help="count the listings behind the index, embed nothing")
    parser.add_argument("--index", type=Path, default=None,
                        help="the search index (default: the proxy's, AICORE_SEARCH_INDEX)")
    parser.add_argument("--state-dir", type=Path, default=None,
                        help="the proxy's state directory (default: AICORE_STATE_DIR)")
    return parser


def behind(listing: StoredListing, engine: SearchEngine) -> tuple[bool, bool]:
    """Whether ``listing`` lacks the index model's vector (one it can have: a photo index reads
    photos) and the index encoder's text vector (an index with text vectors)."""
    reads = engine.modalities
    can_have = TEXT in reads or (IMAGE in reads and bool(listing.photos))
    vector = can_have and listing.model != engine.info.model_sha256
    encoder = engine.info.text_encoder
    text = (encoder is not None and engine.text_vectors is not None
            and listing.text_model != encoder.sha256)
    return vector, text


async def check_weights(torchserve: TorchServeClient, engine: SearchEngine, model: str,
                        vectors: bool, text_vectors: bool) -> None:
    """UserError unless TorchServe serves the index's weights for what is to be embedded."""
    encoder = engine.info.text_encoder
    checks = ([(model, None, None)] if vectors else []) + (
        [encoder_weights(encoder)] if text_vectors and encoder is not None else [])
    for name, sha256, built_by in checks:
        problem = await served_weights_problem(torchserve, engine, name, sha256, built_by)
        if problem is not None:
            raise UserError(f"nothing re-embedded: {problem}")


async def reembed(market: Market, engine: SearchEngine, torchserve: TorchServeClient,
                  model: str, dry_run: bool = False) -> Report:
    """Embed every listing of ``market`` that is behind ``engine`` with ``model`` (the index's
    served model) and the index's encoder; returns what it did.

    Raises:
        UserError: TorchServe does not serve the index's weights, or failed mid-way (what was
            stored stays stored; the next run does the rest).
    """
    report = Report(dry_run=dry_run)
    todo = []
    for listing in market.store.all_listings():
        report.listings += 1
        vector, text = behind(listing, engine)
        if vector or text:
            todo.append((listing, vector, text))
    report.behind = len(todo)
    if dry_run or not todo:
        return report
    await check_weights(torchserve, engine, model, any(v for _, v, _ in todo),
                        any(t for _, _, t in todo))
    for listing, vector, text in todo:
        try:
            photos = ([await asyncio.to_thread(market.photos.path(name).read_bytes)
                       for name in listing.photos] if vector else None)
        except OSError as exc:  # a photo file gone from the photo store: the others go on
            logger.warning("listing %s left as it is: its photo %s", listing.id, exc)
            report.unreadable += 1
            continue
        try:
            made = await stored_vectors(torchserve, engine, model, listing.title,
                                        listing.description, photos, text)
        except TorchServeError as exc:
            raise UserError(f"stopped at listing {listing.id} ({_done(report)}): {exc.detail} "
                            "-- run it again once TorchServe answers") from None
        if await asyncio.to_thread(market.store.set_vectors, listing.id, listing.version, **made):
            report.vectors += made.get("vector") is not None
            report.text_vectors += made.get("text_vector") is not None
        else:
            report.edited += 1
    return report


def _done(report: Report) -> str:
    return (f"{report.vectors} vectors and {report.text_vectors} text vectors stored before "
            "it, and kept")


async def _main(args: argparse.Namespace, settings: Settings) -> Report:
    try:
        engine = SearchEngine.open(settings.search_index)
    except IndexUnavailable as exc:
        raise UserError(str(exc)) from None
    market = Market(settings)
    if not market.exists():
        return Report(dry_run=args.dry_run)
    timeout = httpx.Timeout(settings.read_timeout_s, connect=settings.connect_timeout_s)
    async with httpx.AsyncClient(timeout=timeout, trust_env=False) as http:
        torchserve = TorchServeClient(http, settings)
        try:
            return await reembed(market, engine, torchserve,
                                 settings.search_model or engine.info.served_model, args.dry_run)
        except TorchServeError as exc:  # the served-weights check could not ask
            raise UserError(f"nothing re-embedded: {exc.detail}") from None


def main(args: argparse.Namespace) -> Report:
    overrides = {key: value for key, value in (("search_index", args.index),
                                                ("state_dir", args.state_dir)) if value is not None}
    settings = Settings(**overrides)
    report = asyncio.run(_main(args, settings))
    print(json.dumps(asdict(report)))
    return report


if __name__ == "__main__":
    run(main, get_args_parser())
