"""Simulated buyers that write a realistic event log through the real HTTP API.

A buyer has interests: listing kinds (root categories) with an attraction probability each
(:class:`Interest`), anything else :data:`STRAY` (an occasional click on anything). Each step the
buyer looks at a list -- the feed (``GET /feed``) or a search for one of its kinds
(``GET /search?q=<kind>``) -- and reports the impression (``POST /events``) as the page does.
Clicks follow the position-based click model (Craswell et al. 2008; Joachims et al. 2005): the
listing at rank ``r`` is examined with probability ``1 / r ** eta`` and an examined listing is
clicked with its kind's attraction probability. A click is reported (``POST /events``) and the
listing opened (``GET /listings/{id}``: a view, as the page does). Every random draw comes from
one seeded ``numpy`` generator, so a log is reproducible.

A buyer is a plain ``httpx.Client`` (a FastAPI ``TestClient`` in tests and benchmarks, or a
client of a running proxy) with its own ``X-Session``, so many buyers share one client::

    python -m buyers.simulate --url http://127.0.0.1:8080 --sessions 50 --steps 8
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx
import numpy as np

from buyers.store import SESSION_HEADER

STRAY = 0.02  # attraction of a listing of a kind the buyer does not want
ETA = 1.0  # examination 1 / rank ** eta (eta = 1: Joachims et al.'s eye-tracking fit, roughly)
PRIMARY, SECONDARY = 0.7, 0.3  # attraction of a buyer's main kind and of its second one


@dataclass
class Interest:
    """Kind (root category) -> probability of clicking an examined listing of that kind."""

    kinds: dict[str, float]

    def attraction(self, kind: str) -> float:
        return self.kinds.get(kind, STRAY)

    @property
    def main(self) -> str:
        return max(self.kinds, key=self.kinds.__getitem__)


@dataclass
class Slate:
    """One list the buyer saw and what it clicked (ids, 1-based ranks)."""

    source: str
    query: str | None
    ids: list[str]
    kinds: list[str]
    clicked: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class Buyer:
    """One simulated session, talking to the proxy through ``client``."""

    client: httpx.Client
    rng: np.random.Generator
    eta: float = ETA
    retriever: str = "fused"
    session: str = "new"

    def feed(self, interest: Interest, k: int = 10) -> Slate:
        body = self._call("GET", "/feed", params={"k": k})
        return self._react(body, "feed", None, body["ranker"], interest)

    def search(self, interest: Interest, query: str, k: int = 10) -> Slate:
        body = self._call("GET", "/search", params={"q": query, "k": k,
                                                    "retriever": self.retriever})
        return self._react(body, "search", query, body["retriever"], interest)

    def open(self, listing: str) -> None:
        self._call("GET", f"/listings/{listing}")

    def erase(self) -> None:
        self._call("DELETE", "/me/history")

    def _react(self, body: dict, source: str, query: str | None, ranker: str,
               interest: Interest) -> Slate:
        hits = body["results"]
        slate = Slate(source, query, [h["id"] for h in hits], [h["category"] for h in hits])
        if not hits:
            return slate
        self._call("POST", "/events", json={"type": "impression", "listings": slate.ids,
                                            "query": query, "source": source, "ranker": ranker})
        for rank, (listing, kind) in enumerate(zip(slate.ids, slate.kinds, strict=True), start=1):
            examined = self.rng.random() < 1.0 / rank ** self.eta
            if examined and self.rng.random() < interest.attraction(kind):
                slate.clicked.append((listing, rank))
                self._call("POST", "/events", json={"type": "click", "listing": listing,
                                                    "rank": rank, "query": query,
                                                    "source": source, "ranker": ranker})
                self.open(listing)
        return slate

    def _call(self, method: str, path: str, **kwargs: object) -> dict:
        response = self.client.request(method, path, headers={SESSION_HEADER: self.session},
                                       **kwargs)  # type: ignore[arg-type]
        response.raise_for_status()
        self.session = response.headers.get(SESSION_HEADER, self.session)
        return response.json()


def query_for(kind: str) -> str:
    """The words a buyer of ``kind`` types: its name ("Audio & Video" -> "audio video")."""
    return " ".join(word for word in kind.lower().replace("&", " ").split())


def simulate(client: httpx.Client, kinds: Sequence[str], sessions: int, steps: int,
             seed: int = 0, eta: float = ETA, retriever: str = "fused",
             feed_share: float = 0.6) -> list[list[Slate]]:
    """``sessions`` buyers, each with a main and a second kind drawn from ``kinds``: a search
    for the main kind, then ``steps - 1`` looks at the feed (probability ``feed_share``) or a
    search for one of its kinds. Returns each session's slates."""
    rng = np.random.default_rng(seed)
    log = []
    for _ in range(sessions):
        main, second = rng.choice(len(kinds), 2, replace=False)
        interest = Interest({kinds[main]: PRIMARY, kinds[second]: SECONDARY})
        buyer = Buyer(client, rng, eta, retriever)
        slates = [buyer.search(interest, query_for(kinds[main]))]
        for _ in range(steps - 1):
            if rng.random() < feed_share:
                slates.append(buyer.feed(interest))
            else:
                kind = kinds[main] if rng.random() < 0.7 else kinds[second]
                slates.append(buyer.search(interest, query_for(kind)))
        log.append(slates)
    return log


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Write a simulated buyers' event log through a "
                                     "running proxy (docs/buyers.md)")
    parser.add_argument("--url", default="http://127.0.0.1:8080",
                        help="the proxy (default: http://127.0.0.1:8080)")
    parser.add_argument("--sessions", type=int, default=50, help="buyers (default: 50)")
    parser.add_argument("--steps", type=int, default=8, help="lists each buyer sees (default: 8)")
    parser.add_argument("--eta", type=float, default=ETA,
                        help=f"position bias: examination 1/rank^eta (default: {ETA})")
    parser.add_argument("--retriever", choices=["fused", "dense", "lexical"], default="fused",
                        help="the searches' retriever (default: fused)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--kinds", type=lambda text: [k.strip() for k in text.split(",")],
                        help="the buyers' kinds, comma-separated (default: the root categories "
                        "of a 100-listing feed)")
    return parser


def main(args: argparse.Namespace) -> None:
    with httpx.Client(base_url=args.url, timeout=60.0, trust_env=False) as client:
        answer = client.get("/feed", params={"k": 100}, headers={SESSION_HEADER: "new"})
        if answer.status_code != 200:
            raise SystemExit(f"GET /feed answered {answer.status_code}: {answer.text[:300]}")
        kinds = args.kinds or sorted({hit["category"] for hit in answer.json()["results"]})
        log = simulate(client, kinds, args.sessions, args.steps, args.seed, args.eta,
                       args.retriever)
    clicks = sum(len(slate.clicked) for slates in log for slate in slates)
    print(f"{len(log)} sessions, {sum(map(len, log))} impressions, {clicks} clicks written "
          f"to {args.url}")


if __name__ == "__main__":
    main(get_args_parser().parse_args())
