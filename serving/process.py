"""Launching and stopping the stack's processes: TorchServe (through its own launcher, with the
stack's TMPDIR so ``torchserve --stop`` finds its pid file) and the proxy (uvicorn).
"""

import contextlib
import os
import socket
import subprocess
import sys

import psutil

from common.cli import UserError
from common.catalogue import served_models
from common.properties import derive_config
from common.torchserve import (DEFAULT_HOST, ENV_INFERENCE_URL, ENV_KEY_FILE, ENV_MANAGEMENT_URL,
                               ENV_MODELS, ENV_TORCH_THREADS, ENV_TORCHSERVE_CONFIG, PROXY_APP)
from serving.stack import REPO_ROOT, Stack

TS_MAIN_CLASS = "org.pytorch.serve.ModelServer"  # how the JVM's command line names TorchServe
TS_PID_FILE = ".model_server.pid"  # written by the torchserve launcher in $TMPDIR
STOP_TIMEOUT_S = 60.0


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
        return process if PROXY_APP in process.cmdline() else None
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
    """Raises UserError if something already listens on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            raise UserError(f"{what} port {host}:{port} is already in use (another TorchServe or "
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
        ENV_TORCH_THREADS: str(stack.torch_threads),
    })
    return env


def start_torchserve(stack: Stack) -> psutil.Process:
    """Launch TorchServe in the background (returns at once; see :func:`wait_torchserve`).

    Raises:
        UserError: if an archive is missing, a port is taken or the launcher fails.
    """
    archives = [model.mar_name for model in served_models(stack.config).values()]
    missing = [mar for mar in archives if not (stack.model_store / mar).is_file()]
    if missing:
        raise UserError(f"{', '.join(missing)} not in {stack.model_store}: build the archives "
                       "with `make archive` (after `make train MODEL=cnn` and MODEL=resnet50)")
    for what, host, port in (("inference", stack.host, stack.inference_port),
                             ("management", DEFAULT_HOST, stack.management_port),
                             ("metrics", DEFAULT_HOST, stack.metrics_port),
                             ("gRPC inference", stack.host, stack.grpc_inference_port),
                             ("gRPC management", DEFAULT_HOST, stack.grpc_management_port)):
        check_port_free(host, port, f"TorchServe {what}")
    for directory in (stack.tmp_dir, stack.logs_dir):
        directory.mkdir(parents=True, exist_ok=True)
    stack.key_file.unlink(missing_ok=True)  # a stale file would hand out dead keys
    derived = stack.runtime_dir / "config.properties"
    derived.write_text(derive_config(stack.config.read_text(encoding="utf-8"), {
        "inference_address": stack.inference_url,
        "management_address": stack.management_url,
        "metrics_address": stack.metrics_url,
        "grpc_inference_address": stack.host,
        "grpc_inference_port": str(stack.grpc_inference_port),
        "grpc_management_address": DEFAULT_HOST,  # loopback, like the HTTP management API
        "grpc_management_port": str(stack.grpc_management_port),
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
        raise UserError(f"TorchServe did not start (launcher exit code {launcher.returncode}); "
                       f"see {stack.torchserve_out}")
    return process


def start_proxy(stack: Stack) -> psutil.Process:
    """Launch the proxy (``python -m proxy.server proxy.main:app``: uvicorn with header deadlines
    and caps) in the background, pointed at ``stack``."""
    check_port_free(stack.proxy_host, stack.proxy_port, "proxy")
    env = {**os.environ, **proxy_env(stack)}
    command = [sys.executable, "-m", "proxy.server", PROXY_APP,
               "--host", stack.proxy_host, "--port", str(stack.proxy_port)]
    with stack.proxy_log.open("ab") as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    stack.proxy_pid_file.write_text(f"{process.pid}\n")
    return psutil.Process(process.pid)


def proxy_env(stack: Stack) -> dict[str, str]:
    """The ``AICORE_*`` variables that point the proxy (and ``proxy.reembed``) at ``stack``."""
    return {
        ENV_INFERENCE_URL: stack.inference_url,
        ENV_MANAGEMENT_URL: stack.management_url,
        ENV_KEY_FILE: str(stack.key_file),
        ENV_MODELS: ",".join(stack.models),
        ENV_TORCHSERVE_CONFIG: str((REPO_ROOT / stack.config).resolve()),  # the catalogue
    }


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
