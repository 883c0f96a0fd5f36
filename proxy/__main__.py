"""``python -m proxy``: serve the proxy with uvicorn, configured from ``AICORE_*`` variables."""

import argparse
import logging

import uvicorn
from pydantic import ValidationError

from proxy.app import create_app
from proxy.settings import Settings
from training.cli import CLIError, run

LOG_LEVELS = ("debug", "info", "warning", "error")


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m proxy",
        description="Run the AICore proxy in front of TorchServe. Everything else is set with "
        "AICORE_* environment variables (proxy/settings.py): AICORE_INFERENCE_URL, "
        "AICORE_MANAGEMENT_URL, AICORE_KEY_FILE, AICORE_MAX_UPLOAD_BYTES, AICORE_MODELS ...",
    )
    parser.add_argument("--host", help="address to listen on (default: AICORE_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default: AICORE_PORT or 8000)")
    parser.add_argument("--log-level", default="info", choices=LOG_LEVELS,
                        help="log level (default: %(default)s)")
    return parser


def load_settings(args: argparse.Namespace) -> Settings:
    overrides = {name: value for name, value in (("host", args.host), ("port", args.port))
                 if value is not None}
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"AICORE_{'_'.join(str(part) for part in error['loc']).upper() or 'SETTINGS'}: "
            f"{error['msg']}"
            for error in exc.errors()
        )
        raise CLIError(f"bad proxy settings: {problems}") from None


def main(args: argparse.Namespace) -> None:
    settings = load_settings(args)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # httpx logs every request at INFO: one line per TorchServe call is noise under load.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                log_level=args.log_level)


if __name__ == "__main__":
    run(main, get_args_parser())
