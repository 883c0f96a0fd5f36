"""The command-line client ``python -m proxy.client`` against a stub proxy (requests patched)."""

import json
import socket
from pathlib import Path

import pytest
import requests

from proxy import client as cli
from common.cli import run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PROBABILITIES = {"Appliances": 0.05, "Home & Garden": 0.7, "Other Goods": 0.15,
                 "Video Games & Consoles": 0.1}


def make_response(status: int, body: object) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.reason = {200: "OK", 400: "Bad Request", 422: "Unprocessable Entity"}.get(status, "")
    response._content = json.dumps(body).encode()
    response.headers["Content-Type"] = "application/json"
    return response


class StubProxy:
    """Answers like the proxy: PNG bytes classify, empty is 400, anything else 'not an image'."""

    def __init__(self) -> None:
        self.posts: list[dict] = []

    def post(self, url: str, params=None, files=None,
             timeout=None) -> requests.Response:
        name, data = files["image"]
        self.posts.append({"url": url, "params": params, "name": name, "timeout": timeout})
        if not data:
            return make_response(400, {"detail": f"The uploaded file {name!r} is empty"})
        if not data.startswith(PNG_MAGIC):
            return make_response(400, {"detail": "cannot decode the image"})
        return make_response(200, {"category": "Home & Garden", "probabilities": PROBABILITIES,
                                   "model": (params or {}).get("model", "resnet50")})


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> StubProxy:
    proxy = StubProxy()
    # Every Session.post in the client now goes to the stub (a bound method: no session argument).
    monkeypatch.setattr(requests.Session, "post", proxy.post)
    return proxy


def write(path: Path, data: bytes = PNG_MAGIC + b"rest") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def run_client(argv: list[str]) -> int:
    """Run the CLI as ``python -m proxy.client`` would; returns the exit code."""
    try:
        run(cli.main, cli.get_args_parser(), argv)
    except SystemExit as exc:
        return int(exc.code)
    return 0


def test_main_prints_category_and_top_k(stub, tmp_path, capsys):
    photo = write(tmp_path / "chair.png")
    assert run_client([str(photo), "--top", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"{photo}: Home & Garden (resnet50)",
                   "     70.0%  Home & Garden",
                   "     15.0%  Other Goods"]


def test_main_sends_model_url_and_timeout(stub, tmp_path, capsys):
    photo = write(tmp_path / "chair.png")
    assert run_client([str(photo), "--model", "cnn", "--url", "http://127.0.0.1:9999/",
                       "--timeout", "5"]) == 0
    assert stub.posts == [{"url": "http://127.0.0.1:9999/predict/image",
                           "params": {"model": "cnn"}, "name": "chair.png", "timeout": 5.0}]
    assert "(cnn)" in capsys.readouterr().out


def test_main_expands_folder_recursively_and_skips_non_images(stub, tmp_path):
    write(tmp_path / "shop" / "b.JPG")
    write(tmp_path / "shop" / "a.png")
    write(tmp_path / "shop" / "sub" / "c.webp")
    write(tmp_path / "shop" / "notes.txt", b"not an image")
    assert run_client([str(tmp_path / "shop")]) == 0
    assert [post["name"] for post in stub.posts] == ["a.png", "b.JPG", "c.webp"]


def test_main_bad_files_print_one_line_each_and_exit_nonzero(stub, tmp_path, capsys):
    good = write(tmp_path / "good.png")
    text = write(tmp_path / "bad.txt", b"hello")
    empty = write(tmp_path / "empty.png", b"")
    missing = tmp_path / "missing.png"
    code = run_client([str(text), str(good), str(missing), str(empty)])
    assert code == 2
    captured = capsys.readouterr()
    assert f"{good}: Home & Garden (resnet50)" in captured.out  # the good file still ran
    errors = captured.err.splitlines()
    assert errors == [
        f"{text}: error: cannot decode the image (HTTP 400)",
        f"{missing}: error: cannot read it: No such file or directory",
        f"{empty}: error: The uploaded file 'empty.png' is empty (HTTP 400)",
        "error: 3 of 4 files failed",
    ]


def test_main_folder_without_images_is_an_error(stub, tmp_path, capsys):
    write(tmp_path / "docs" / "readme.txt", b"text")
    assert run_client([str(tmp_path / "docs")]) == 2
    assert "no images" in capsys.readouterr().err
    assert stub.posts == []


def test_main_proxy_not_running_is_one_line(tmp_path, capsys):
    with socket.socket() as sock:  # a loopback port with nothing listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    photos = [str(write(tmp_path / f"{i}.png")) for i in range(3)]
    assert run_client([*photos, "--url", f"http://127.0.0.1:{port}"]) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        f"error: the proxy is not running at http://127.0.0.1:{port}: start it with `make serve`"
    ]
    assert captured.out == ""


def test_error_detail_joins_validation_errors():
    response = make_response(422, {"detail": [{"loc": ["body", "image"], "msg": "Field required"}]})
    assert cli.error_detail(response) == "body.image: Field required (HTTP 422)"


def test_top_must_be_positive(capsys):
    with pytest.raises(SystemExit):
        cli.get_args_parser().parse_args(["x.png", "--top", "0"])
    assert "must be a positive integer, got 0" in capsys.readouterr().err
