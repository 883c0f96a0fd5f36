"""Is the stack ready? TorchServe's /ping and every model's READY workers, then the proxy's /health.

``make serve`` waits on these; ``make status`` prints them.
"""

import time
from collections.abc import Callable
from pathlib import Path

import psutil
import requests

from common.cli import UserError
from common.torchserve import INFERENCE_KEY, MANAGEMENT_KEY, READY, bearer, read_key_file
from serving.process import is_alive
from serving.stack import Stack

POLL_S = 0.5


def http_session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # loopback services: never through an HTTP_PROXY from the env
    return session


def model_status(stack: Stack, session: requests.Session, name: str) -> tuple[str, int, int]:
    """``(version, READY workers, minWorkers)`` of model ``name`` from the management API."""
    key = read_key_file(stack.key_file).get(MANAGEMENT_KEY)
    response = session.get(f"{stack.management_url}/models/{name}", timeout=5, headers=bearer(key))
    response.raise_for_status()
    description = response.json()[0]
    ready = sum(worker.get("status") == READY for worker in description.get("workers", []))
    return description.get("modelVersion", "?"), ready, int(description.get("minWorkers", 1))


def torchserve_ready(stack: Stack, session: requests.Session) -> str | None:
    """None when /ping is healthy and every model has its minWorkers READY, else what is not."""
    key = read_key_file(stack.key_file).get(INFERENCE_KEY)
    if key is None:
        return f"no {stack.key_file} yet"
    try:
        ping = session.get(f"{stack.inference_url}/ping", timeout=5, headers=bearer(key))
        if ping.status_code != 200:
            return f"/ping answered {ping.status_code}"
        for name in stack.models:
            _, ready, wanted = model_status(stack, session, name)
            if ready < wanted:
                return f"model {name}: {ready} of {wanted} workers READY"
    except (requests.RequestException, ValueError, IndexError) as exc:
        return f"TorchServe not answering yet ({type(exc).__name__})"
    return None


def proxy_ready(stack: Stack, session: requests.Session) -> str | None:
    """None when the proxy's /health is 200 (it reaches TorchServe and every model is ready)."""
    try:
        response = session.get(f"{stack.proxy_url}/health", timeout=5)
    except requests.RequestException as exc:
        return f"proxy not answering yet ({type(exc).__name__})"
    return None if response.status_code == 200 else f"proxy /health answered {response.status_code}"


def wait_until(check: Callable[[], str | None], alive: Callable[[], bool], timeout: float,
               what: str, log: Path) -> None:
    """Poll ``check`` until it returns None.

    Raises:
        UserError: if the process dies (``alive`` turns False) or ``timeout`` seconds pass; the
            message says what was not ready and which log to read.
    """
    deadline = time.monotonic() + timeout
    problem = "not checked yet"
    while time.monotonic() < deadline:
        if not alive():
            raise UserError(f"{what} exited during start-up; see {log}")
        problem = check()
        if problem is None:
            return
        time.sleep(POLL_S)
    raise UserError(f"{what} not ready after {timeout:.0f} s ({problem}); see {log}")


def wait_torchserve(stack: Stack, process: psutil.Process, timeout: float) -> None:
    with http_session() as session:
        wait_until(lambda: torchserve_ready(stack, session), lambda: is_alive(process), timeout,
                   "TorchServe", stack.logs_dir / "model_log.log")


def wait_proxy(stack: Stack, process: psutil.Process, timeout: float) -> None:
    with http_session() as session:
        wait_until(lambda: proxy_ready(stack, session), lambda: is_alive(process), timeout,
                   "the proxy", stack.proxy_log)
