"""proxy.reembed: listings whose vectors other weights made are embedded again, as publishing
embeds them, written with the version read (an edit meanwhile wins), only where TorchServe serves
the index's weights; the overlay sees them at the next search."""

import asyncio
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from common.cli import UserError
from market.store import MarketStore
from proxy.errors import NoWorkerReady
from proxy.market import Market
from proxy.reembed import Report, get_args_parser, main, reembed
from proxy.settings import Settings
from search import SearchEngine
from tests.proxy.test_market_routes import jpeg_with_gps, make_client, market_fake, publish, register


@pytest.fixture
def published(multimodal_search_index, tmp_path: Path):
    """A photo index with text vectors and a store with two listings published on it (one with a
    photo, one without), both then set back as an earlier release left them: the photo vector
    of other weights, no text vector. Returns (settings, fake, ids, vectors as published)."""
    shutil.copytree(multimodal_search_index["index"], tmp_path / "index")
    fake = market_fake(multimodal_search_index["index"])
    with make_client(tmp_path / "index", tmp_path / "state", fake) as client:
        auth = register(client)
        ids = [publish(client, auth, [jpeg_with_gps()], title="Zanzibar kettle",
                       description="barely used").json()["id"],
               publish(client, auth, title="Quince jam", description="homemade").json()["id"]]
    store = MarketStore.open(tmp_path / "state")
    as_published = {i: store.listing(i) for i in ids}
    db = sqlite3.connect(tmp_path / "state" / "market.db")
    db.execute("UPDATE listings SET model = 'weights-before-the-rebuild', text_vector = NULL, "
               "text_model = NULL")
    db.commit()
    db.close()
    fake.calls.clear()
    settings = Settings(key_file=tmp_path / "state" / "key_file.json",
                        search_index=tmp_path / "index", state_dir=tmp_path / "state")
    return settings, fake, ids, as_published


def run_reembed(settings: Settings, fake, dry_run: bool = False) -> Report:
    engine = SearchEngine.open(settings.search_index)
    return asyncio.run(reembed(Market(settings), engine, fake, engine.info.served_model, dry_run))


def test_listings_behind_the_index_get_the_vectors_publishing_gives(published):
    settings, fake, (with_photo, without), as_published = published

    report = run_reembed(settings, fake)

    # the photo listing gets both vectors; the one without a photo only the text vector (a
    # photo index has nothing of it to embed)
    assert (report.listings, report.behind, report.vectors, report.text_vectors,
            report.edited) == (2, 2, 1, 2, 0)
    store = MarketStore.open(settings.state_dir)
    for listing_id in (with_photo, without):
        again, first = store.listing(listing_id), as_published[listing_id]
        assert (again.text_vector, again.text_model) == (first.text_vector, first.text_model)
        assert again.version == first.version  # not an edit
    photo = store.listing(with_photo)
    assert (photo.vector, photo.model) == (as_published[with_photo].vector,
                                           as_published[with_photo].model)
    assert store.listing(without).vector is None

    fake.calls.clear()
    assert run_reembed(settings, fake).behind == 0 and fake.calls == []  # nothing left to do


def test_found_by_the_text_dense_list_once_re_embedded(published):
    settings, fake, (with_photo, _), _ = published
    query = {"q": "zanzibar kettle", "retriever": "text_dense", "k": 3}
    with make_client(settings.search_index, settings.state_dir, fake) as client:
        before = [hit["id"] for hit in client.get("/search", params=query).json()["results"]]
        run_reembed(settings, fake)
        after = [hit["id"] for hit in client.get("/search", params=query).json()["results"]]

    assert with_photo not in before and with_photo in after


def test_dry_run_counts_and_writes_nothing(published):
    settings, fake, _, _ = published
    head = MarketStore.open(settings.state_dir).head()

    report = run_reembed(settings, fake, dry_run=True)

    assert (report.behind, report.vectors, report.text_vectors) == (2, 0, 0)
    assert fake.calls == [] and MarketStore.open(settings.state_dir).head() == head


def test_an_edit_while_embedding_wins(published):
    settings, fake, (with_photo, without), _ = published
    store = MarketStore.open(settings.state_dir)
    answer = fake.answer

    def seller_edits_meanwhile(model, request):
        if request.title == "Quince jam":
            store.update_listing(without, {"description": "sold out"})
        return answer(model, request)

    fake.answer = seller_edits_meanwhile
    report = run_reembed(settings, fake)

    assert (report.vectors, report.text_vectors, report.edited) == (1, 1, 1)
    assert store.listing(without).text_vector is None  # its edit's (none here) stands
    assert store.listing(with_photo).text_vector is not None


def test_other_served_weights_stop_it_before_anything_is_written(published):
    settings, fake, _, _ = published
    fake.descriptions["query"] = fake.descriptions["query"].model_copy(
        update={"version": "20261201-0badf00d-onnx-int8"})
    head = MarketStore.open(settings.state_dir).head()

    with pytest.raises(UserError, match="nothing re-embedded: TorchServe serves 'query'"):
        run_reembed(settings, fake)
    assert MarketStore.open(settings.state_dir).head() == head


def test_torchserve_failing_midway_keeps_what_was_stored(published):
    settings, fake, (with_photo, without), _ = published
    first, second = sorted([with_photo, without])  # the order the job goes in
    title = {with_photo: "Zanzibar kettle", without: "Quince jam"}
    answer = fake.answer

    def down_for_the_second_listing(model, request):
        if request.title == title[second] or (request.image is not None and second == with_photo):
            raise NoWorkerReady("TorchServe has no worker for 'query'")
        return answer(model, request)

    fake.answer = down_for_the_second_listing
    vectors = int(first == with_photo)  # the photo listing's, if it went first
    with pytest.raises(UserError, match=rf"stopped at listing {second} \({vectors} vectors and 1 "
                                        r"text vectors stored before it, and kept\): TorchServe"):
        run_reembed(settings, fake)
    store = MarketStore.open(settings.state_dir)
    assert store.listing(first).text_vector is not None
    assert store.listing(second).text_vector is None

    fake.answer = answer
    assert run_reembed(settings, fake).text_vectors == 1  # the next run does the rest


def test_cli_without_an_index_says_what_to_run(tmp_path):
    args = get_args_parser().parse_args(["--index", str(tmp_path / "none"),
                                         "--state-dir", str(tmp_path / "state")])
    with pytest.raises(UserError, match="make index"):
        main(args)


def test_cli_without_a_store_has_nothing_to_do(multimodal_search_index, tmp_path, capsys):
    args = get_args_parser().parse_args(["--index", str(multimodal_search_index["index"]),
                                         "--state-dir", str(tmp_path / "state")])
    report = main(args)

    assert report == Report() and json.loads(capsys.readouterr().out)["listings"] == 0
    assert not (tmp_path / "state" / "market.db").exists()
