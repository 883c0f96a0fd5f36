"""One serving stack: where its runtime files are, which loopback ports it listens on, and the
``state.json`` that ``start`` records so ``stop`` and ``status`` act on the same stack.

Everything a running stack writes lives in ONE gitignored runtime directory (default ``.serve/``)::

    .serve/config.properties   the repository's config.properties with this run's addresses
    .serve/key_file.json       TorchServe's API keys (it writes them in its working directory)
    .serve/logs/               TorchServe's size-rotated logs (serving/log4j2.xml)
    .serve/tmp/                TMPDIR: TorchServe's pid file, worker sockets and unpacked archives
    .serve/torchserve.out      the JVM's console (warnings only)
    .serve/proxy.pid, proxy.log  the proxy (uvicorn proxy.main:app)
    .serve/state.json          what `start` launched and where, read by `stop` and `status`
"""

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from common.net import free_ports
from common.catalogue import served_models
from common.torchserve import (DEFAULT_GRPC_INFERENCE_PORT, DEFAULT_GRPC_MANAGEMENT_PORT,
                               DEFAULT_HOST, DEFAULT_INFERENCE_PORT, DEFAULT_MANAGEMENT_PORT,
                               DEFAULT_METRICS_PORT, DEFAULT_PROXY_PORT, KEY_FILE, RUNTIME_DIR)

REPO_ROOT = Path(__file__).resolve().parents[1]
STATE_FILE = "state.json"


@dataclass(frozen=True)
class Stack:
    """One serving stack: where its files are and which loopback ports it listens on."""

    runtime_dir: Path = RUNTIME_DIR
    config: Path = Path("config.properties")
    model_store: Path = Path("model_store")
    log_config: Path = REPO_ROOT / "serving" / "log4j2.xml"
    host: str = DEFAULT_HOST  # TorchServe's inference API (HTTP and gRPC)
    proxy_host: str = DEFAULT_HOST  # the proxy, the one service meant for clients
    inference_port: int = DEFAULT_INFERENCE_PORT
    management_port: int = DEFAULT_MANAGEMENT_PORT
    metrics_port: int = DEFAULT_METRICS_PORT
    grpc_inference_port: int = DEFAULT_GRPC_INFERENCE_PORT
    grpc_management_port: int = DEFAULT_GRPC_MANAGEMENT_PORT
    proxy_port: int = DEFAULT_PROXY_PORT
    torch_threads: int = 1  # per worker; see config.properties for why 1
    models: tuple[str, ...] = field(default=())  # filled from config.properties' model_snapshot

    def url(self, port: int, host: str | None = None) -> str:
        return f"http://{host or self.host}:{port}"

    @property
    def inference_url(self) -> str:
        return self.url(self.inference_port)

    # Management (register, scale, unregister models) and metrics stay on loopback whatever
    # --host says: only the inference API and the proxy are ever meant for other machines.
    @property
    def management_url(self) -> str:
        return self.url(self.management_port, DEFAULT_HOST)

    @property
    def metrics_url(self) -> str:
        return self.url(self.metrics_port, DEFAULT_HOST)

    @property
    def proxy_url(self) -> str:
        return self.url(self.proxy_port, self.proxy_host)

    @property
    def key_file(self) -> Path:
        return self.runtime_dir / KEY_FILE

    @property
    def tmp_dir(self) -> Path:
        return self.runtime_dir / "tmp"

    @property
    def logs_dir(self) -> Path:
        return self.runtime_dir / "logs"

    @property
    def state_file(self) -> Path:
        return self.runtime_dir / STATE_FILE

    @property
    def proxy_pid_file(self) -> Path:
        return self.runtime_dir / "proxy.pid"

    @property
    def proxy_log(self) -> Path:
        return self.runtime_dir / "proxy.log"

    @property
    def torchserve_out(self) -> Path:
        return self.runtime_dir / "torchserve.out"


def stack_on_free_ports(runtime_dir: Path, model_store: Path, config: Path = Stack.config,
                        torch_threads: int = Stack.torch_threads) -> Stack:
    """A stack of ``config``'s models on free loopback ports, beside any stack already running
    (tests and ``make bench`` start theirs this way)."""
    config = (REPO_ROOT / config).resolve()
    inference, management, metrics, proxy, grpc_inference, grpc_management = free_ports(6)
    return Stack(runtime_dir=Path(runtime_dir).resolve(), config=config,
                 model_store=Path(model_store).resolve(), inference_port=inference,
                 management_port=management, metrics_port=metrics, proxy_port=proxy,
                 grpc_inference_port=grpc_inference, grpc_management_port=grpc_management,
                 torch_threads=torch_threads, models=tuple(served_models(config)))


def state_of(stack: Stack) -> dict:
    state = asdict(stack)
    return {key: str(value) if isinstance(value, Path) else value for key, value in state.items()}


def stack_from_state(runtime_dir: Path) -> Stack | None:
    """The stack `start` recorded in ``runtime_dir/state.json``, or None."""
    try:
        state = json.loads((runtime_dir / STATE_FILE).read_text(encoding="utf-8"))
        paths = {"runtime_dir", "config", "model_store", "log_config"}
        values = {k: Path(v) if k in paths else v for k, v in state.items()}
        values["models"] = tuple(values.get("models", ()))
        return Stack(**values)
    except (OSError, ValueError, TypeError):
        return None
