"""Start, stop and inspect the local serving stack: TorchServe (both models) and the FastAPI proxy.

``make serve`` / ``make stop`` call ``python -m serving.ctl start`` / ``stop``; ``status`` reports.
Everything a running stack writes lives in ONE gitignored runtime directory (default ``.serve/``)::

    .serve/config.properties   the repository's config.properties with this run's addresses
    .serve/key_file.json       TorchServe's API keys (it writes them in its working directory)
    .serve/logs/               TorchServe's size-rotated logs (serving/log4j2.xml)
    .serve/tmp/                TMPDIR: TorchServe's pid file, worker sockets and unpacked archives
    .serve/torchserve.out      the JVM's console (warnings only)
    .serve/proxy.pid, proxy.log  the proxy (uvicorn proxy.main:app)
    .serve/state.json          what `start` launched and where, read by `stop` and `status`

``torchserve --stop`` finds the server through the pid file in ``$TMPDIR``, so start and stop use the
same ``TMPDIR`` (``.serve/tmp``). Ports can be moved (``--inference-port`` ...) so tests run a second
stack next to a running one.
"""

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil
import requests

from training.cli import CLIError, run

REPO_ROOT = Path(__file__).resolve().parents[1]
TS_MAIN_CLASS = "org.pytorch.serve.ModelServer"  # how the JVM's command line names TorchServe
TS_PID_FILE = ".model_server.pid"  # written by the torchserve launcher in $TMPDIR
KEY_FILE = "key_file.json"
READY = "READY"
POLL_S = 0.5
STOP_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Stack:
    """One serving stack: where its files are and which loopback ports it listens on."""

    runtime_dir: Path = Path(".serve")
    config: Path = Path("config.properties")
    model_store: Path = Path("model_store")
    log_config: Path = Path("serving/log4j2.xml")
    host: str = "127.0.0.1"
    inference_port: int = 8080
    management_port: int = 8081
    metrics_port: int = 8082
    proxy_port: int = 8000
    torch_threads: int = 1
    models: tuple[str, ...] = field(default=())  # filled from config.properties' model_snapshot

    def url(self, port: int) -> str:
        return f"http://{self.host}:{port}"

    @property
    def inference_url(self) -> str:
        return self.url(self.inference_port)

    @property
    def management_url(self) -> str:
        return self.url(self.management_port)

    @property
    def metrics_url(self) -> str:
        return self.url(self.metrics_port)

    @property
    def proxy_url(self) -> str:
        return self.url(self.proxy_port)

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
        return self.runtime_dir / "state.json"

    @property
    def proxy_pid_file(self) -> Path:
        return self.runtime_dir / "proxy.pid"

    @property
    def proxy_log(self) -> Path:
        return self.runtime_dir / "proxy.log"

    @property
    def torchserve_out(self) -> Path:
        return self.runtime_dir / "torchserve.out"


# --- config.properties ------------------------------------------------------------------------

def logical_lines(text: str) -> list[tuple[str, list[str]]]:
    """Split Java-properties text into ``(logical line, its physical lines)``.

    A line ending in an odd number of backslashes continues on the next one (``model_snapshot``
    spans several lines); continuation lines lose their leading whitespace, as in Java.
    """
    entries: list[tuple[str, list[str]]] = []
    logical, physical = "", []
    for line in text.splitlines():
        physical.append(line)
        part = line.lstrip() if len(physical) > 1 else line
        trailing = len(part) - len(part.rstrip("\\"))
        if trailing % 2 == 1:
            logical += part[:-1]
            continue
        entries.append((logical + part, physical))
        logical, physical = "", []
    if physical:
        entries.append((logical, physical))
    return entries


def _key_value(line: str) -> tuple[str, str] | None:
    stripped = line.strip()
    if not stripped or stripped[0] in "#!" or "=" not in stripped:
        return None
    key, value = stripped.split("=", 1)
    return key.strip(), value.strip()


def read_properties_text(text: str) -> dict[str, str]:
    """Parse TorchServe ``config.properties`` text (``key=value`` lines, ``#`` comments, ``\\``
    continuations)."""
    pairs = (_key_value(line) for line, _ in logical_lines(text))
    return dict(pair for pair in pairs if pair)


def read_properties(path: Path) -> dict[str, str]:
    """Read a TorchServe ``config.properties`` file (see :func:`read_properties_text`)."""
    return read_properties_text(Path(path).read_text(encoding="utf-8"))


def derive_config(text: str, overrides: dict[str, str]) -> str:
    """Return ``text`` with the values of ``overrides``' keys replaced (missing keys appended)."""
    out, done = [], set()
    for line, physical in logical_lines(text):
        pair = _key_value(line)
        if pair and pair[0] in overrides:
            out.append(f"{pair[0]}={overrides[pair[0]]}")
            done.add(pair[0])
        else:
            out.extend(physical)
    out.extend(f"{key}={value}" for key, value in overrides.items() if key not in done)
    return "\n".join(out) + "\n"


def snapshot_archives(properties: dict[str, str], config: Path) -> dict[str, str]:
    """Model name -> ``.mar`` file name, from the ``model_snapshot`` of ``config.properties``.

    Raises:
        CLIError: if the snapshot is missing or not the JSON TorchServe expects.
    """
    raw = properties.get("model_snapshot")
    if not raw:
        raise CLIError(f"{config} has no model_snapshot: it names the models to serve")
    try:
        models = json.loads(raw)["models"]
        return {name: next(iter(versions.values()))["marName"]
                for name, versions in models.items()}
    except (ValueError, KeyError, TypeError, AttributeError, StopIteration) as exc:
        raise CLIError(f"model_snapshot in {config} is not a TorchServe snapshot "
                       f"({exc!r}); see the comment above it") from None


# --- processes --------------------------------------------------------------------------------

def torchserve_process(stack: Stack) -> psutil.Process | None:
    """The running TorchServe JVM of ``stack`` (from the launcher's pid file), or None."""
    pid_file = stack.tmp_dir / TS_PID_FILE
    try:
        process = psutil.Process(int(pid_file.read_text().split()[0]))
        return process if TS_MAIN_CLASS in process.cmdline() else None
    except (OSError, ValueError, IndexError, psutil.Error):
        return None


def proxy_process(stack: Stack) -> psutil.Process | None:
    """The running proxy of ``stack`` (from ``proxy.pid``), or None."""
    try:
        process = psutil.Process(int(stack.proxy_pid_file.read_text().strip()))
        return process if "proxy.main:app" in process.cmdline() else None
    except (OSError, ValueError, psutil.Error):
        return None


def is_alive(process: psutil.Process) -> bool:
    """True while ``process`` runs (a child that exited but was not reaped yet counts as gone)."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def wait_gone(processes: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until ``processes`` have exited; kill what is left after ``timeout``; return those."""
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    for process in alive:
        with contextlib.suppress(psutil.Error):  # it may exit between the wait and the kill
            process.kill()
    psutil.wait_procs(alive, timeout=5)
    return alive


def check_port_free(host: str, port: int, what: str) -> None:
    """Raises CLIError if something already listens on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            raise CLIError(f"{what} port {host}:{port} is already in use (another TorchServe or "
                           f"proxy?): stop it, or choose another port with the --*-port flags"
                           ) from None


def child_env(stack: Stack) -> dict[str, str]:
    """Environment for TorchServe: its temp, pid and log files inside the runtime directory."""
    env = dict(os.environ)
    # An inherited PYTHONPATH comes before the unpacked archive on the workers' sys.path and could
    # shadow the archive's handler.py / aicore with other copies; the archive must win.
    env.pop("PYTHONPATH", None)
    env.update({
        "TMPDIR": str(stack.tmp_dir),  # launcher pid file + worker sockets
        "TEMP": str(stack.tmp_dir),  # the launcher passes it to the JVM: unpacked archives
        "LOG_LOCATION": str(stack.logs_dir),
        "METRICS_LOCATION": str(stack.logs_dir),
        "AICORE_TORCH_THREADS": str(stack.torch_threads),
    })
    return env


def start_torchserve(stack: Stack) -> psutil.Process:
    """Launch TorchServe in the background (returns at once; see :func:`wait_torchserve`).

    Raises:
        CLIError: if an archive is missing, a port is taken or the launcher fails.
    """
    archives = snapshot_archives(read_properties(stack.config), stack.config)
    missing = [mar for mar in archives.values() if not (stack.model_store / mar).is_file()]
    if missing:
        raise CLIError(f"{', '.join(missing)} not in {stack.model_store}: build the archives "
                       "with `make archive` (after `make train MODEL=cnn` and MODEL=resnet50)")
    for what, port in (("inference", stack.inference_port),
                       ("management", stack.management_port), ("metrics", stack.metrics_port)):
        check_port_free(stack.host, port, f"TorchServe {what}")
    for directory in (stack.tmp_dir, stack.logs_dir):
        directory.mkdir(parents=True, exist_ok=True)
    stack.key_file.unlink(missing_ok=True)  # a stale file would hand out dead keys
    derived = stack.runtime_dir / "config.properties"
    derived.write_text(derive_config(stack.config.read_text(encoding="utf-8"), {
        "inference_address": stack.inference_url,
        "management_address": stack.management_url,
        "metrics_address": stack.metrics_url,
        "model_store": str(stack.model_store),
    }), encoding="utf-8")
    command = [sys.executable, "-m", "ts.model_server", "--start", "--ncs",
               "--ts-config", str(derived), "--model-store", str(stack.model_store),
               "--log-config", str(stack.log_config)]
    with stack.torchserve_out.open("ab") as out:
        # The launcher starts the JVM and exits; the JVM keeps `out` as its console. A new
        # session keeps a Ctrl-C meant for the caller from reaching the server.
        launcher = subprocess.run(command, cwd=stack.runtime_dir, env=child_env(stack),
                                  stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                  timeout=60, check=False)
    process = torchserve_process(stack)
    if launcher.returncode != 0 or process is None:
        raise CLIError(f"TorchServe did not start (launcher exit code {launcher.returncode}); "
                       f"see {stack.torchserve_out}")
    return process


def start_proxy(stack: Stack) -> psutil.Process:
    """Launch the proxy (uvicorn proxy.main:app) in the background, pointed at ``stack``."""
    check_port_free(stack.host, stack.proxy_port, "proxy")
    env = dict(os.environ)
    env.update({
        "AICORE_INFERENCE_URL": stack.inference_url,
        "AICORE_MANAGEMENT_URL": stack.management_url,
        "AICORE_KEY_FILE": str(stack.key_file),
        "AICORE_MODELS": ",".join(stack.models),
    })
    command = [sys.executable, "-m", "uvicorn", "proxy.main:app",
               "--host", stack.host, "--port", str(stack.proxy_port)]
    with stack.proxy_log.open("ab") as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    stack.proxy_pid_file.write_text(f"{process.pid}\n")
    return psutil.Process(process.pid)


def stop_torchserve(stack: Stack) -> bool:
    """Stop TorchServe and its workers; return whether one was running.

    ``torchserve --stop`` (with the stack's TMPDIR, where its pid file is) asks the JVM to shut
    down; this then waits until the JVM and every worker it started have exited.
    """
    process = torchserve_process(stack)
    if process is None:
        return False
    try:
        family = [process, *process.children(recursive=True)]
    except psutil.Error:
        family = [process]
    subprocess.run([sys.executable, "-m", "ts.model_server", "--stop"], cwd=stack.runtime_dir,
                   env=child_env(stack), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                   timeout=60, check=False)
    killed = wait_gone(family, STOP_TIMEOUT_S)
    if killed:
        print(f"TorchServe did not exit within {STOP_TIMEOUT_S:.0f} s; killed "
              f"{', '.join(str(p.pid) for p in killed)}", file=sys.stderr)
    return True


def stop_proxy(stack: Stack) -> bool:
    """Stop the proxy; return whether one was running."""
    process = proxy_process(stack)
    stack.proxy_pid_file.unlink(missing_ok=True)
    if process is None:
        return False
    try:
        family = [process, *process.children(recursive=True)]
        process.terminate()  # uvicorn shuts down gracefully on SIGTERM
    except psutil.Error:
        return True
    wait_gone(family, 15.0)
    return True


# --- readiness --------------------------------------------------------------------------------

def http_session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # loopback services: never through an HTTP_PROXY from the env
    return session


def read_keys(stack: Stack) -> dict[str, str]:
    """``{"inference": key, "management": key, ...}`` from the stack's key file ({} if absent)."""
    try:
        raw = json.loads(stack.key_file.read_text(encoding="utf-8"))
        return {kind: entry["key"] for kind, entry in raw.items() if isinstance(entry, dict)}
    except (OSError, ValueError, KeyError, AttributeError):
        return {}


def model_status(stack: Stack, session: requests.Session, name: str) -> tuple[str, int, int]:
    """``(version, READY workers, minWorkers)`` of model ``name`` from the management API."""
    key = read_keys(stack).get("management", "")
    response = session.get(f"{stack.management_url}/models/{name}", timeout=5,
                           headers={"Authorization": f"Bearer {key}"})
    response.raise_for_status()
    description = response.json()[0]
    ready = sum(worker.get("status") == READY for worker in description.get("workers", []))
    return description.get("modelVersion", "?"), ready, int(description.get("minWorkers", 1))


def torchserve_ready(stack: Stack, session: requests.Session) -> str | None:
    """None when /ping is healthy and every model has its minWorkers READY, else what is not."""
    key = read_keys(stack).get("inference")
    if key is None:
        return f"no {stack.key_file} yet"
    try:
        ping = session.get(f"{stack.inference_url}/ping", timeout=5,
                           headers={"Authorization": f"Bearer {key}"})
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
        CLIError: if the process dies (``alive`` turns False) or ``timeout`` seconds pass; the
            message says what was not ready and which log to read.
    """
    deadline = time.monotonic() + timeout
    problem = "not checked yet"
    while time.monotonic() < deadline:
        if not alive():
            raise CLIError(f"{what} exited during start-up; see {log}")
        problem = check()
        if problem is None:
            return
        time.sleep(POLL_S)
    raise CLIError(f"{what} not ready after {timeout:.0f} s ({problem}); see {log}")


def wait_torchserve(stack: Stack, process: psutil.Process, timeout: float) -> None:
    with http_session() as session:
        wait_until(lambda: torchserve_ready(stack, session), lambda: is_alive(process), timeout,
                   "TorchServe", stack.logs_dir / "model_log.log")


def wait_proxy(stack: Stack, process: psutil.Process, timeout: float) -> None:
    with http_session() as session:
        wait_until(lambda: proxy_ready(stack, session), lambda: is_alive(process), timeout,
                   "the proxy", stack.proxy_log)


# --- commands ---------------------------------------------------------------------------------

def start(stack: Stack, timeout: float) -> None:
    """Start TorchServe and the proxy unless they run already; wait until both are ready.

    Raises:
        CLIError: with the log to read, after stopping whatever this call started.
    """
    torchserve, proxy = torchserve_process(stack), proxy_process(stack)
    if torchserve and proxy:
        print(f"already running (runtime files in {stack.runtime_dir}):")
        print_urls(stack)
        return
    stack.runtime_dir.mkdir(parents=True, exist_ok=True)
    stack.state_file.write_text(json.dumps(state_of(stack), indent=2) + "\n")
    started_here = []
    try:
        if torchserve is None:
            torchserve = start_torchserve(stack)
            started_here.append(stop_torchserve)
        if proxy is None:
            proxy = start_proxy(stack)
            started_here.append(stop_proxy)
        deadline = time.monotonic() + timeout
        wait_torchserve(stack, torchserve, timeout)
        wait_proxy(stack, proxy, max(deadline - time.monotonic(), 10.0))
    except BaseException:
        for stop_part in reversed(started_here):
            stop_part(stack)
        raise
    print(f"TorchServe ({', '.join(stack.models)}) and the proxy are ready "
          f"(runtime files in {stack.runtime_dir}):")
    print_urls(stack)


def stop(stack: Stack) -> None:
    """Stop TorchServe, then the proxy; safe to run when nothing runs."""
    stopped_ts = stop_torchserve(stack)
    stopped_proxy = stop_proxy(stack)
    if stopped_ts or stopped_proxy:
        what = " and ".join(n for n, s in (("TorchServe", stopped_ts), ("proxy", stopped_proxy)) if s)
        print(f"stopped {what}")
    else:
        print(f"nothing running for {stack.runtime_dir}")


def status(stack: Stack) -> bool:
    """Print what runs and whether it answers; return True when everything is ready."""
    torchserve, proxy = torchserve_process(stack), proxy_process(stack)
    ok = True
    with http_session() as session:
        if torchserve is None:
            print("TorchServe: not running")
            ok = False
        else:
            problem = torchserve_ready(stack, session)
            print(f"TorchServe: pid {torchserve.pid}, {problem or 'ready'} ({stack.inference_url})")
            ok &= problem is None
            for name in stack.models if problem is None else ():
                version, ready, wanted = model_status(stack, session, name)
                print(f"  {name}: version {version}, {ready}/{wanted} workers READY")
        if proxy is None:
            print("proxy: not running")
            ok = False
        else:
            problem = proxy_ready(stack, session)
            print(f"proxy: pid {proxy.pid}, {problem or 'ready'} ({stack.proxy_url})")
            ok &= problem is None
    return ok


def print_urls(stack: Stack) -> None:
    print(f"  inference   {stack.inference_url}/predictions/<model>  (models: "
          f"{', '.join(stack.models)}; GET /ping)\n"
          f"  management  {stack.management_url}/models/<model>\n"
          f"  metrics     {stack.metrics_url}/metrics  (Prometheus, no key)\n"
          f"  proxy       {stack.proxy_url}/predict/image  (GET /health)\n"
          f"  API docs    {stack.proxy_url}/docs\n"
          f"  keys        {stack.key_file}  (TorchServe calls need "
          "\"Authorization: Bearer <inference or management key>\")\n"
          f"  logs        {stack.logs_dir}/, {stack.proxy_log}")


def state_of(stack: Stack) -> dict:
    state = asdict(stack)
    return {key: str(value) if isinstance(value, Path) else value for key, value in state.items()}


def stack_from_state(runtime_dir: Path) -> Stack | None:
    """The stack `start` recorded in ``runtime_dir/state.json``, or None."""
    try:
        state = json.loads((runtime_dir / "state.json").read_text(encoding="utf-8"))
        paths = {"runtime_dir", "config", "model_store", "log_config"}
        values = {k: Path(v) if k in paths else v for k, v in state.items()}
        values["models"] = tuple(values.get("models", ()))
        return Stack(**values)
    except (OSError, ValueError, TypeError):
        return None


def stack_from_args(args: argparse.Namespace) -> Stack:
    """A :class:`Stack` from the flags; paths absolute, models read from the config."""
    runtime_dir = args.runtime_dir.resolve()
    recorded = stack_from_state(runtime_dir)
    # stop/status act on what `start` recorded; so does `start` while part of that stack runs.
    if recorded is not None and (args.command != "start" or torchserve_process(recorded)
                                 or proxy_process(recorded)):
        return recorded
    config = args.config.resolve()
    if not config.is_file():
        raise CLIError(f"TorchServe config {config} does not exist")
    models = tuple(snapshot_archives(read_properties(config), config))
    return Stack(runtime_dir=runtime_dir, config=config, model_store=args.model_store.resolve(),
                 log_config=args.log_config.resolve(), host=args.host,
                 inference_port=args.inference_port, management_port=args.management_port,
                 metrics_port=args.metrics_port, proxy_port=args.proxy_port,
                 torch_threads=args.torch_threads, models=models)


def get_args_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--runtime-dir", type=Path, default=Path(".serve"),
                        help="directory for every runtime file (default: .serve)")
    common.add_argument("--config", type=Path, default=Path("config.properties"),
                        help="TorchServe config to start from (default: config.properties)")
    common.add_argument("--model-store", type=Path, default=Path("model_store"),
                        help="directory holding the .mar archives (default: model_store)")
    common.add_argument("--log-config", type=Path, default=REPO_ROOT / "serving" / "log4j2.xml",
                        help="log4j2 config for TorchServe (default: serving/log4j2.xml)")
    common.add_argument("--host", default="127.0.0.1",
                        help="address every service binds (default: 127.0.0.1)")
    common.add_argument("--inference-port", type=int, default=8080,
                        help="TorchServe inference port (default: 8080)")
    common.add_argument("--management-port", type=int, default=8081,
                        help="TorchServe management port (default: 8081)")
    common.add_argument("--metrics-port", type=int, default=8082,
                        help="TorchServe metrics port (default: 8082)")
    common.add_argument("--proxy-port", type=int, default=8000,
                        help="proxy port (default: 8000)")
    common.add_argument("--torch-threads", type=int, default=1,
                        help="torch threads per TorchServe worker (default: 1; see "
                             "config.properties)")
    common.add_argument("--timeout", type=float, default=180.0,
                        help="seconds `start` waits for every model to be ready (default: 180)")
    parser = argparse.ArgumentParser(
        prog="python -m serving.ctl",
        description="Run TorchServe (cnn + resnet50) and the proxy in the background.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("start", parents=[common], help="start TorchServe and the proxy, wait ready")
    sub.add_parser("stop", parents=[common], help="stop everything `start` started")
    sub.add_parser("status", parents=[common], help="show what runs and whether it is ready")
    return parser


def main(args: argparse.Namespace) -> bool:
    """Run one command; return False when ``status`` finds the stack not ready."""
    if args.torch_threads < 1:
        raise CLIError(f"--torch-threads must be at least 1, got {args.torch_threads}")
    stack = stack_from_args(args)
    if args.command == "start":
        start(stack, args.timeout)
    elif args.command == "stop":
        stop(stack)
    else:
        return status(stack)
    return True


def cli(args: argparse.Namespace) -> None:
    """``main`` for the command line: exit code 1 when ``status`` finds the stack not ready."""
    if not main(args):
        sys.exit(1)


if __name__ == "__main__":
    run(cli, get_args_parser())
