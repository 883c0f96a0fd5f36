"""Start, stop and inspect the local serving stack: TorchServe (every model of the config's
``model_snapshot``) and the FastAPI proxy.

``make serve`` / ``make stop`` call ``python -m serving.ctl start`` / ``stop``; ``status`` reports.
Runtime files live in one directory (``.serve/``, see :mod:`serving.stack`). Ports can be moved
(``--inference-port`` ...) so tests run a second stack next to a running one.
"""

import argparse
import json
import sys
import time
from pathlib import Path

from common.cli import positive_int, run
from common.catalogue import served_models
from serving.process import (proxy_process, start_proxy, start_torchserve, stop_proxy,
                             stop_torchserve, torchserve_process)
from serving.ready import (http_session, model_status, proxy_ready, torchserve_ready, wait_proxy,
                           wait_torchserve)
from serving.stack import Stack, stack_from_state, state_of

DEFAULTS = Stack()  # the argparse defaults: written once, in the dataclass they fill


def start(stack: Stack, timeout: float) -> None:
    """Start TorchServe and the proxy unless they run already; wait until both are ready.

    Raises:
        UserError: with the log to read, after stopping whatever this call started.
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


def stack_from_args(args: argparse.Namespace) -> Stack:
    """A :class:`Stack` from the flags; paths absolute, models read from the config."""
    runtime_dir = args.runtime_dir.resolve()
    recorded = stack_from_state(runtime_dir)
    # stop/status act on what `start` recorded; so does `start` while part of that stack runs.
    if recorded is not None and (args.command != "start" or torchserve_process(recorded)
                                 or proxy_process(recorded)):
        return recorded
    config = args.config.resolve()
    models = tuple(served_models(config))
    return Stack(runtime_dir=runtime_dir, config=config, model_store=args.model_store.resolve(),
                 log_config=args.log_config.resolve(), host=args.host, proxy_host=args.proxy_host,
                 inference_port=args.inference_port, management_port=args.management_port,
                 metrics_port=args.metrics_port, proxy_port=args.proxy_port,
                 grpc_inference_port=args.grpc_inference_port,
                 grpc_management_port=args.grpc_management_port,
                 torch_threads=args.torch_threads, models=models)


def get_args_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    d = DEFAULTS
    common.add_argument("--runtime-dir", type=Path, default=d.runtime_dir,
                        help=f"directory for every runtime file (default: {d.runtime_dir})")
    common.add_argument("--config", type=Path, default=d.config,
                        help=f"TorchServe config to start from (default: {d.config})")
    common.add_argument("--model-store", type=Path, default=d.model_store,
                        help=f"directory holding the .mar archives (default: {d.model_store})")
    common.add_argument("--log-config", type=Path, default=d.log_config,
                        help="log4j2 config for TorchServe (default: serving/log4j2.xml)")
    common.add_argument("--host", default=d.host,
                        help="address TorchServe's inference API binds; its management and "
                             f"metrics APIs stay on {d.host} (default: {d.host})")
    common.add_argument("--proxy-host", default=d.proxy_host,
                        help=f"address the proxy binds (default: {d.proxy_host}; 0.0.0.0 for every "
                             "interface, then list its public names in AICORE_ALLOWED_HOSTS)")
    for flag, what in (("inference", "TorchServe inference"), ("management", "TorchServe management"),
                       ("metrics", "TorchServe metrics"), ("proxy", "proxy"),
                       ("grpc-inference", "TorchServe gRPC inference"),
                       ("grpc-management", "TorchServe gRPC management")):
        default = getattr(d, f"{flag.replace('-', '_')}_port")
        common.add_argument(f"--{flag}-port", type=int, default=default,
                            help=f"{what} port (default: {default})")
    common.add_argument("--torch-threads", type=positive_int, default=d.torch_threads,
                        help=f"torch threads per TorchServe worker (default: {d.torch_threads}; "
                             "see config.properties)")
    common.add_argument("--timeout", type=float, default=180.0,
                        help="seconds `start` waits for every model to be ready (default: 180)")
    parser = argparse.ArgumentParser(
        prog="python -m serving.ctl",
        description="Run TorchServe (the models of config.properties) and the proxy in the background.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("start", parents=[common], help="start TorchServe and the proxy, wait ready")
    sub.add_parser("stop", parents=[common], help="stop everything `start` started")
    sub.add_parser("status", parents=[common], help="show what runs and whether it is ready")
    return parser


def main(args: argparse.Namespace) -> bool:
    """Run one command; return False when ``status`` finds the stack not ready."""
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
