"""The click log: impressions joined with their clicks, CTR/MRR per ranker, and the simulator
writing a log through the real proxy app (``encoder_search_index``; no TorchServe needed: the
simulated searches are lexical)."""

import json
import shutil
from argparse import Namespace

import pytest
from fastapi.testclient import TestClient

from buyers import clicks
from buyers.simulate import Interest, simulate
from buyers.store import Event, SessionStore
from proxy.app import create_app
from proxy.settings import Settings


def shown(session, ids, source="search", query="q", ranker="fused"):
    return Event(type="impression", source=source, query=query, ranker=ranker, shown=ids,
                 session=session, at=0.0)


def click(session, listing, rank, source="search", query="q"):
    return Event(type="click", source=source, query=query, listing=listing, rank=rank,
                 session=session, at=1.0)


def test_a_click_joins_the_impression_that_showed_it():
    rows, orphans = clicks.impressions([
        shown("s1", ["a", "b", "c"]), click("s1", "b", 2), click("s1", "b", 2),
        shown("s1", ["x", "y"], source="feed", query=None, ranker="feed-mmr"),
        click("s1", "y", 2, source="feed", query=None),
        click("s1", "c", 1),  # wrong rank: an orphan
        click("s2", "a", 1),  # another session: an orphan
    ])

    assert orphans == 2
    assert [(r["shown"], r["clicked"], r["clicked_ranks"]) for r in rows] == [
        (["a", "b", "c"], ["b"], [2]), (["x", "y"], ["y"], [2])]
    assert rows[0]["session"] == rows[1]["session"] == 0


def test_metrics_per_ranker():
    rows, _ = clicks.impressions([
        shown("s", ["a", "b", "c"]), click("s", "a", 1), click("s", "c", 3),
        shown("s", ["a", "b", "c"], query="r"),
        shown("s", ["d", "e"], query="t", ranker="lexical"), click("s", "e", 2, query="t"),
    ])
    report = clicks.metrics(rows)

    fused, lexical = report["search/fused"], report["search/lexical"]
    assert (fused["impressions"], fused["clicks"], fused["ctr"], fused["mrr"]) == (2, 2, 0.5, 0.5)
    assert fused["ctr_at_rank"][:4] == [0.5, 0.0, 0.5, None]
    assert (lexical["ctr"], lexical["mrr"]) == (1.0, 0.5)


def test_interest_attraction():
    interest = Interest({"Games": 0.7, "Office": 0.3})

    assert interest.main == "Games"
    assert interest.attraction("Office") == 0.3 and interest.attraction("Science") < 0.1


@pytest.fixture
def app(encoder_search_index, tmp_path):
    shutil.copytree(encoder_search_index["index"], tmp_path / "index")
    return create_app(Settings(key_file=tmp_path / "key_file.json",
                               search_index=tmp_path / "index", state_dir=tmp_path / "state",
                               allowed_hosts=["testserver"]))


def test_the_simulated_log_exports_as_it_was_written(app, tmp_path, capsys):
    with TestClient(app) as client:
        kinds = sorted({h["category"] for h in client.get("/feed?k=100").json()["results"]})
        log = simulate(client, kinds, sessions=6, steps=4, seed=3, retriever="lexical")
    out = tmp_path / "clicks.jsonl"

    report = clicks.main(Namespace(state_dir=tmp_path / "state", out=out, json=None,
                                   since_days=None))

    slates = [slate for session in log for slate in session if slate.ids]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert report["orphan_clicks"] == 0 and len(rows) == len(slates) == report["impressions"]
    # the export is ordered by session id (random), then time
    exported = [(r["shown"], list(zip(r["clicked"], r["clicked_ranks"], strict=True)))
                for r in rows]
    assert sorted(map(repr, exported)) == sorted(repr((s.ids, s.clicked)) for s in slates)
    assert sum(len(s.clicked) for s in slates) > 0
    assert {r["source"] for r in rows} == {"search", "feed"}
    assert "impressions" in capsys.readouterr().out


def test_simulated_clicks_open_listings_as_views(app, tmp_path):
    with TestClient(app) as client:
        kinds = sorted({h["category"] for h in client.get("/feed?k=100").json()["results"]})
        log = simulate(client, kinds, sessions=3, steps=3, seed=1, retriever="lexical")
    store = SessionStore(tmp_path / "state" / "sessions.db")
    events = list(store.events())
    store.close()

    clicked = [listing for session in log for slate in session for listing, _ in slate.clicked]
    assert [e.listing for e in events if e.type == "view"] == \
        [e.listing for e in events if e.type == "click"]
    assert sorted(e.listing for e in events if e.type == "click") == sorted(clicked)
