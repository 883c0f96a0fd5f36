"""Classify listing photos through the running proxy.

    python -m proxy.client photo.jpg [more.jpg ...] | FOLDER [--url URL] [--model NAME] [--top 3]

A folder is searched recursively for images. A file that fails prints one line and the others go
on; the exit code is non-zero when any failed.
"""

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import requests
from urllib3.exceptions import NewConnectionError

from common.cli import UserError, positive_int, run
from common.dataset_format import IMAGE_SUFFIXES



class ProxyUnreachable(Exception):
    """Nothing answers at the proxy's URL: no point trying the other files."""


class FileFailed(Exception):
    """This file could not be classified; the message is the one line printed for it."""


@dataclass
class Result:
    category: str
    probabilities: dict[str, float]
    model: str


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m proxy.client",
        description="Classify listing photos with the AICore proxy (start it with `make serve`).",
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                        help=f"image files, or folders searched for {', '.join(IMAGE_SUFFIXES)}")
    parser.add_argument("--url", default="http://127.0.0.1:8000",
                        help="the proxy's address (default: %(default)s)")
    parser.add_argument("--model", default=None,
                        help="efficientnet_lite0, cnn or resnet50 (default: the proxy's default "
                             "model, efficientnet_lite0)")
    parser.add_argument("--top", type=positive_int, default=3,
                        help="how many categories to show per image (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds to wait for each answer (default: %(default)s)")
    return parser


def expand_paths(paths: list[Path]) -> list[Path]:
    """Files as given (even with another suffix: the proxy judges them) and, for each folder,
    its images, sorted.

    Raises:
        UserError: nothing to classify (only folders without images).
    """
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*")
                            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            files.append(path)
    if not files:
        folders = ", ".join(str(p) for p in paths)
        raise UserError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found in {folders}")
    return files


def error_detail(response: requests.Response) -> str:
    """The proxy's ``detail`` as one line (FastAPI's 422 gives a list of problems)."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, list):
        detail = "; ".join(f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg')}"
                           for d in detail if isinstance(d, dict))
    if not detail:
        detail = response.text.strip()[:200] or response.reason
    return f"{detail} (HTTP {response.status_code})"


def is_connect_failure(exc: requests.ConnectionError) -> bool:
    """True when no connection could be opened (refused, no route), not when one broke."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NewConnectionError)


def classify(session: requests.Session, url: str, path: Path, model: str | None,
             timeout: float) -> Result:
    """POST one file to ``{url}/predict/image``.

    Raises:
        FileFailed: the file cannot be read, or the proxy refused it.
        ProxyUnreachable: nothing answers at ``url``.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FileFailed(f"cannot read it: {exc.strerror or exc}") from None
    params = {"model": model} if model else {}
    try:
        response = session.post(f"{url.rstrip('/')}/predict/image", params=params,
                                files={"image": (path.name, data)}, timeout=timeout)
    except requests.ConnectionError as exc:
        if is_connect_failure(exc):
            raise ProxyUnreachable(
                f"the proxy is not running at {url}: start it with `make serve`"
            ) from None
        raise FileFailed(f"the proxy dropped the connection: {exc}") from None
    except requests.Timeout:
        raise FileFailed(f"no answer within {timeout:g} s (raise --timeout?)") from None
    if response.status_code != 200:
        raise FileFailed(error_detail(response))
    try:
        body = response.json()
        return Result(category=body["category"], probabilities=body["probabilities"],
                      model=body["model"])
    except (ValueError, TypeError, KeyError):
        raise FileFailed(f"unexpected answer: {response.text[:200]!r}") from None


def format_result(path: Path, result: Result, top: int) -> str:
    """``path: category (model)`` then the ``top`` most likely categories, one a line."""
    ranked = sorted(result.probabilities.items(), key=lambda item: item[1], reverse=True)[:top]
    lines = [f"{path}: {result.category} ({result.model})"]
    lines += [f"    {probability:6.1%}  {name}" for name, probability in ranked]
    return "\n".join(lines)


def main(args: argparse.Namespace) -> None:
    files = expand_paths(args.paths)
    failed = 0
    with requests.Session() as session:
        for path in files:
            try:
                result = classify(session, args.url, path, args.model, args.timeout)
            except ProxyUnreachable as exc:
                raise UserError(str(exc)) from None
            except FileFailed as exc:
                failed += 1
                print(f"{path}: error: {exc}", file=sys.stderr)
                continue
            print(format_result(path, result, args.top), flush=True)
    if failed:
        raise UserError(f"{failed} of {len(files)} files failed")


if __name__ == "__main__":
    run(main, get_args_parser())
