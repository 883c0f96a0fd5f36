"""datagen.relevanceset on a small AppStream file written here (the real one is Debian's, ~7 MB)."""

import csv
import gzip
import io
import tarfile

import pytest
import yaml

from common.cli import UserError
from common.trec import read_qrels, read_queries
from datagen import relevance_intents, relevanceset
from datagen.relevance_intents import Ambiguous, Intent, rule


def _app(app_id: str, name: str, categories: list[str], keywords: tuple[str, ...] = (),
         icon: bool = True) -> dict:
    doc = {"Type": "desktop-application", "ID": f"{app_id}.desktop", "Package": app_id,
           "Name": {"C": name, "de": "Anders"}, "Summary": {"C": f"{name} summary"},
           "Description": {"C": "<p>Long &amp; useful.</p><ul><li>one</li><li>two</li></ul>"},
           "Categories": categories, "Keywords": {"C": list(keywords)}}
    if icon:
        doc["Icon"] = {"cached": [{"name": f"{app_id}.png", "width": 64, "height": 64}]}
    return doc


APPS = [
    _app("chess1", "Knight", ["Game", "BoardGame"], ("chess",)),
    _app("chess2", "Queen", ["Game", "BoardGame"], ("Chess",)),
    _app("go", "Stones", ["Game", "BoardGame"]),
    _app("mp1", "Tunes", ["AudioVideo", "Audio", "Player"]),
    _app("mp2", "Songs", ["AudioVideo", "Audio", "Player"]),
    _app("mp3", "Jukebox", ["AudioVideo", "Audio", "Player"]),
    _app("vp1", "Movies", ["AudioVideo", "Video", "Player"]),
    _app("vp2", "Films", ["AudioVideo", "Video", "Player"]),
    _app("vp3", "Clips", ["AudioVideo", "Video", "Player"], icon=False),
    _app("nocat", "Lost", ["X-Custom"]),
    {"Type": "addon", "ID": "plugin", "Name": {"C": "Plugin"}},
]


@pytest.fixture
def source(tmp_path, monkeypatch):
    keep = tmp_path / "bench" / "source"
    keep.mkdir(parents=True)
    text = yaml.safe_dump_all([{"File": "DEP-11"}, *APPS], allow_unicode=True)
    (keep / "x_dep11_Components-amd64.yml.gz").write_bytes(gzip.compress(text.encode()))
    with tarfile.open(keep / "x_dep11_icons-64x64.tar.gz", "w:gz") as tar:
        for doc in APPS:
            for icon in doc.get("Icon", {}).get("cached", []):
                info = tarfile.TarInfo(icon["name"])
                info.size = 4
                tar.addfile(info, io.BytesIO(b"\x89PNG"))
    monkeypatch.setattr(relevanceset, "INTENTS", (
        Intent("i01", "play chess against the computer", rule("kw:chess"), rule("BoardGame")),
        Intent("i02", "a board game", rule("BoardGame"), rule("Game"))))
    monkeypatch.setattr(relevanceset, "AMBIGUOUS", (Ambiguous("a01", "player", (
        ("music", rule("Audio+Player"), rule("Audio")), ("video", rule("Video+Player"), rule("Video")))),))
    monkeypatch.setattr(relevanceset, "VIEWED", 1)
    return tmp_path / "bench"


def _run(out, *extra):
    return relevanceset.main(relevanceset.get_args_parser().parse_args(
        ["--out", str(out), "--no-clean", *extra]))


def test_apps_become_listings_of_their_main_category(source):
    _run(source)

    with open(source / "raw" / "Products.csv", encoding="utf-8") as f:
        rows = {row["id"]: row for row in csv.DictReader(f)}
    assert sorted(rows) == ["chess1", "chess2", "go", "mp1", "mp2", "mp3", "vp1", "vp2", "vp3"]
    assert rows["chess1"]["product_name"] == "Knight" and rows["chess1"]["category"] == "Games"
    assert rows["mp1"]["category"] == "Audio & Video" and rows["mp1"]["price"] == "£0"
    assert rows["chess1"]["product_description"] == "Knight summary\nLong & useful.\n- one\n- two"
    images = (source / "raw" / "Images.csv").read_text().splitlines()
    assert images[0] == "id,product_id" and "chess1-icon,chess1" in images and len(images) == 9


def test_judgments_come_from_categories_and_keywords(source):
    _run(source)

    queries = read_queries(source / "queries" / "dev.tsv") + read_queries(source / "queries" / "test.tsv")
    qrels = read_qrels(source / "queries" / "dev.qrels") | read_qrels(source / "queries" / "test.qrels")
    assert qrels["i01"] == {"chess1": 2, "chess2": 2, "go": 1}  # keyword case ignored
    assert qrels["i02"] == {"chess1": 2, "chess2": 2, "go": 2}  # "Game" alone: no listing here
    music = next(q for q in queries if q.qid == "a01-music")
    assert music.text == "player" and len(music.viewed) == 1 and music.viewed[0] in {"mp1", "mp2", "mp3"}
    assert music.viewed[0] not in qrels["a01-music"]  # never returned again, so not judged
    assert sum(g == 2 for g in qrels["a01-music"].values()) == 2
    assert {d for d, g in qrels["a01-video"].items() if g == 2} <= {"vp1", "vp2", "vp3"}


def test_split_keeps_both_senses_of_a_word_together_and_is_seeded(source):
    _run(source)
    first = [(source / "queries" / f).read_text() for f in ("dev.tsv", "test.tsv")]
    _run(source)

    assert [(source / "queries" / f).read_text() for f in ("dev.tsv", "test.tsv")] == first
    dev = {q.qid for q in read_queries(source / "queries" / "dev.tsv")}
    assert ("a01-music" in dev) == ("a01-video" in dev)
    assert len([q for q in dev if q.startswith("i")]) == 1


def test_a_query_without_enough_exact_matches_is_refused(source, monkeypatch):
    monkeypatch.setattr(relevanceset, "INTENTS", (
        Intent("i09", "go", rule("kw:weiqi"), rule("BoardGame")),))

    with pytest.raises(UserError, match="fewer than 2 exact matches: i09"):
        _run(source)


def test_without_metadata_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setattr(relevanceset, "APT_LISTS", tmp_path / "lists")

    with pytest.raises(UserError, match="DEP-11::DefaultEnabled=true"):
        _run(tmp_path / "bench")


def test_every_intent_has_its_own_qid_and_words():
    qids = [i.qid for i in relevance_intents.INTENTS] + [a.qid for a in relevance_intents.AMBIGUOUS]
    assert len(qids) == len(set(qids)) and len(relevance_intents.INTENTS) >= 40
    assert len(relevance_intents.AMBIGUOUS) >= 10
    assert all(len(a.senses) == 2 for a in relevance_intents.AMBIGUOUS)
