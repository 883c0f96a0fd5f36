"""The rest of the TorchServe contract, written once for ``serving``, ``proxy``, ``bench`` and tests.

TorchServe 0.12 writes its API keys to ``key_file.json`` in its working directory at every start
(``{"management": {"key": ...}, "inference": {"key": ...}, "API": {"key": ...}}``); every call
carries one as ``Authorization: Bearer <key>``. A worker that can serve reports ``READY``.
"""

import json
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

# --- addresses ----------------------------------------------------------------------------------
DEFAULT_HOST = "127.0.0.1"
DEFAULT_INFERENCE_PORT = 8080
DEFAULT_MANAGEMENT_PORT = 8081
DEFAULT_METRICS_PORT = 8082
DEFAULT_PROXY_PORT = 8000
# TorchServe always starts its gRPC servers too (0.12 has no switch to turn them off), on 7070/7071
# unless told otherwise: a second stack on the same machine must move them as well.
DEFAULT_GRPC_INFERENCE_PORT = 7070
DEFAULT_GRPC_MANAGEMENT_PORT = 7071
DEFAULT_INFERENCE_URL = f"http://{DEFAULT_HOST}:{DEFAULT_INFERENCE_PORT}"
DEFAULT_MANAGEMENT_URL = f"http://{DEFAULT_HOST}:{DEFAULT_MANAGEMENT_PORT}"

# --- files and processes ------------------------------------------------------------------------
KEY_FILE = "key_file.json"
RUNTIME_DIR = Path(".serve")  # where `make serve` keeps every runtime file, key file included
PROXY_APP = "proxy.main:app"  # the ASGI app uvicorn serves; also how a running proxy is recognised

# --- keys and workers ---------------------------------------------------------------------------
INFERENCE_KEY = "inference"
MANAGEMENT_KEY = "management"
API_KEY = "API"  # may only call GET /token, which renews one of the other two
READY = "READY"

# --- served models ------------------------------------------------------------------------------
QUERY_MODEL = "query"  # the pretrained query-text encoder (query.mar), kind "query"

# --- environment variables ----------------------------------------------------------------------
ENV_PREFIX = "AICORE_"  # the proxy's Settings read AICORE_<FIELD>
ENV_INFERENCE_URL = f"{ENV_PREFIX}INFERENCE_URL"
ENV_MANAGEMENT_URL = f"{ENV_PREFIX}MANAGEMENT_URL"
ENV_KEY_FILE = f"{ENV_PREFIX}KEY_FILE"
ENV_MODELS = f"{ENV_PREFIX}MODELS"
# the config.properties whose model_snapshot is the proxy's catalogue (common.catalogue)
ENV_TORCHSERVE_CONFIG = f"{ENV_PREFIX}TORCHSERVE_CONFIG"
ENV_TORCH_THREADS = f"{ENV_PREFIX}TORCH_THREADS"  # torch threads per worker, read by the handler


def read_key_file(path: Path) -> dict[str, str]:
    """Read TorchServe's keys.

    Args:
        path: the ``key_file.json`` TorchServe wrote in its working directory.

    Returns:
        ``{"inference": key, "management": key, "API": key}``; ``{}`` when the file is missing or
        unreadable, so calls go without a key (fine when token auth is disabled; otherwise the
        rejection names this file).
    """
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:  # ValueError: bad JSON or bad UTF-8, e.g. half-written
        logger.warning("cannot read TorchServe key file %s: %s", path, exc)
        return {}
    if not isinstance(raw, dict):
        return {}
    return {
        kind: entry["key"]
        for kind, entry in raw.items()
        if isinstance(entry, dict) and isinstance(entry.get("key"), str)
    }


def bearer(key: str | None) -> dict[str, str]:
    """The ``Authorization`` header for ``key`` (no header without a key)."""
    return {"Authorization": f"Bearer {key}"} if key else {}
