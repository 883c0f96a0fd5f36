"""The real proxy as its own process (``python -m proxy.server``) on a free loopback port, with
no TorchServe behind it: what a client on the network reaches, raw sockets included.

TorchServe's addresses point at a port nothing listens on, so every call the proxy makes to it
is the documented 503 ("not reachable"); the search index directory is empty (503 too).
"""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.support.e2e import free_ports

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ProxyProcess:
    url: str
    host: str
    port: int
    log: Path
    process: subprocess.Popen

    def connect(self, timeout: float = 10.0) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=timeout)
        return sock

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def proxy_process(tmp: Path, env: dict[str, str] | None = None,
                  start_timeout_s: float = 60.0) -> Iterator[ProxyProcess]:
    """Start the proxy, wait until it answers, stop it (SIGTERM, then SIGKILL) on exit."""
    port, dead = free_ports(2)
    child_env = {name: value for name, value in os.environ.items()
                 if not name.startswith("AICORE_")}
    child_env.update({
        "AICORE_INFERENCE_URL": f"http://127.0.0.1:{dead}",
        "AICORE_MANAGEMENT_URL": f"http://127.0.0.1:{dead}",
        "AICORE_KEY_FILE": str(tmp / "key_file.json"),
        "AICORE_SEARCH_INDEX": str(tmp / "no-index"),
        "AICORE_STATE_DIR": str(tmp / "state"),  # sellers' writes never reach the repository
        "AICORE_MODELS": "efficientnet_lite0,cnn,resnet50,text,listing",
        **(env or {}),
    })
    log = tmp / "proxy.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "proxy.server", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO_ROOT, env=child_env, stdout=out, stderr=subprocess.STDOUT)
    proxy = ProxyProcess(f"http://127.0.0.1:{port}", "127.0.0.1", port, log, process)
    try:
        _wait_ready(proxy, start_timeout_s)
        yield proxy
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _wait_ready(proxy: ProxyProcess, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proxy.process.poll() is not None:
            raise AssertionError(f"the proxy exited ({proxy.process.returncode}):\n"
                                 f"{proxy.log_text()}")
        try:
            if requests.get(f"{proxy.url}/capabilities", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the proxy did not answer within {timeout_s} s:\n{proxy.log_text()}")


def read_answer(sock: socket.socket, timeout_s: float) -> bytes:
    """Everything the server sends until it closes the connection or ``timeout_s`` passes."""
    sock.settimeout(timeout_s)
    received = b""
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return received
