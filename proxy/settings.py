"""The proxy's configuration: one typed ``Settings`` read from ``AICORE_*`` environment variables.

Nothing else in the proxy reads the environment; tests build a ``Settings(...)`` and pass it to
``create_app``.
"""

from pathlib import Path
from typing import Annotated, Self

from pydantic import Field, PrivateAttr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from common.catalogue import IMAGE, Catalogue
from common.cli import UserError
from common.torchserve import (DEFAULT_HOST, DEFAULT_INFERENCE_URL, DEFAULT_MANAGEMENT_URL,
                               DEFAULT_PROXY_PORT, ENV_PREFIX, KEY_FILE, RUNTIME_DIR)

# proxy/settings.py -> the repository root, where `make serve` keeps TorchServe's runtime files.
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_KEY_FILE = RUNTIME_DIR / KEY_FILE
MIB = 1024 * 1024


class Settings(BaseSettings):
    """Where TorchServe is, how long to wait for it, and what the proxy accepts.

    Every field can be set as ``AICORE_<FIELD>`` (e.g. ``AICORE_INFERENCE_URL``).
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    inference_url: str = Field(
        DEFAULT_INFERENCE_URL, description="TorchServe inference API (POST /predictions/<model>)"
    )
    management_url: str = Field(
        DEFAULT_MANAGEMENT_URL, description="TorchServe management API (GET /models)"
    )
    key_file: Path = Field(
        DEFAULT_KEY_FILE,
        description="key_file.json that TorchServe writes in its working directory; "
        "a relative path is taken from the repository root",
    )
    connect_timeout_s: float = Field(2.0, gt=0, description="seconds to open a connection")
    # Generous (the first request to a freshly started resnet50 worker on a CPU can take seconds)
    # but below TorchServe's responseTimeout (60 s in config.properties): a stuck worker is then the
    # proxy's 504, not TorchServe killing the worker ("Worker died") a moment later.
    read_timeout_s: float = Field(30.0, gt=0, description="seconds to wait for TorchServe's answer")
    max_upload_bytes: int = Field(10 * MIB, gt=0, description="largest image accepted, in bytes")
    torchserve_config: Path = Field(
        REPO_ROOT / "config.properties",
        description="TorchServe's config.properties: its model_snapshot is the catalogue of "
        "served models and their kinds (common/catalogue.py); a relative path is taken from the "
        "repository root",
    )
    # EfficientNet-Lite0 fine-tuned from ImageNet: the most accurate on real pictures, and cheaper
    # to serve than ResNet-50 (docs/transfer-learning.md).
    default_model: str = Field(
        "efficientnet_lite0", description="model POST /predict/image uses when a request names none "
        "(one of models; a proxy without image models names another, e.g. text)"
    )
    models: Annotated[list[str] | None, NoDecode] = Field(
        None,
        description="models the proxy serves, comma-separated in the env (default: every model "
        "of the catalogue); each model's kind comes from the catalogue",
    )
    renew_expired_keys: bool = Field(
        True,
        description="when TorchServe keeps rejecting a re-read key (its keys expire after "
        "token_expiration_min), ask it for a new one with the API key",
    )
    retry_ratio: float = Field(
        0.1, ge=0, le=1,
        description="retry budget: share of requests that may be retried after a worker died or "
        "a connection dropped (token bucket, see proxy/retry.py)",
    )
    retry_reserve: float = Field(
        10.0, ge=0, description="retry budget: retries allowed in a burst before the ratio applies"
    )
    admission: bool = Field(
        True, description="refuse predictions past each model's capacity with 503 + Retry-After "
        "before reading them (see proxy/admission.py)",
    )
    admission_in_flight_batches: float = Field(
        1.5, gt=0, description="requests in flight per model, in batches of workers x batchSize"
    )
    admission_waiting_batches: float = Field(
        0.5, ge=0, description="requests waiting in the proxy per model, in the same batches"
    )
    admission_max_wait_s: float = Field(
        10.0, gt=0, description="longest a request waits in the proxy for a slot before 503"
    )
    admission_default_slots: int = Field(
        8, gt=0, description="workers x batchSize assumed until TorchServe's describe API answers"
    )
    retry_after_s: int = Field(1, ge=1, description="the Retry-After of a busy 503, in seconds")
    search_index: Path = Field(
        Path("indexes") / "demo",
        description="the listing search index directory (`make index`); a relative path is "
        "taken from the repository root. A rebuilt index is picked up at the next request",
    )
    search_model: str | None = Field(
        None,
        description="the TorchServe model that embeds search queries (default: the model the "
        "index was built with, e.g. cnn)",
    )

    # --- server-side state (docs/marketplace.md): sellers, their listings and photos ---
    state_dir: Path = Field(
        Path("state"), description="where the proxy keeps server-side state (market.db: sellers, "
        "listings and the change feed; photos/: listing photos); a relative path is taken from "
        "the repository root")
    registrations_per_minute: float = Field(
        10.0, gt=0, description="POST /sellers per client address per minute (429 + Retry-After "
        "past it; each proxy process counts on its own)")
    registration_burst: int = Field(5, gt=0, description="POST /sellers allowed at once before "
                                    "the per-minute rate applies")
    writes_per_second: float = Field(
        5.0, gt=0, description="listing writes (POST/PATCH/DELETE, token rotation) per seller per "
        "second (429 + Retry-After past it)")
    write_burst: int = Field(30, gt=0, description="listing writes per seller allowed at once")
    photo_sweep_grace_s: float = Field(
        60.0, ge=0, description="at start, photo files no listing names are deleted once older "
        "than this (younger ones may belong to a listing another process is committing)")

    # --- what one client may cost (docs/limits.md lists every limit and the status of a breach) ---
    proxy_host: str = Field(DEFAULT_HOST, description="address `python -m proxy.server` binds")
    proxy_port: int = Field(DEFAULT_PROXY_PORT, gt=0, lt=65536, description="port it binds")
    header_timeout_s: float = Field(
        10.0, gt=0, description="seconds a client may take to send the request line and headers "
        "(408 and the connection closed past it)")
    body_timeout_s: float = Field(
        30.0, gt=0, description="seconds a client may take to send a whole request body (408 past "
        "it; no admission slot is held meanwhile)")
    keep_alive_timeout_s: int = Field(5, gt=0, description="seconds an idle kept-alive connection stays open")
    max_header_bytes: int = Field(16 * 1024, gt=0, description="request target + headers, in bytes (431)")
    max_headers: int = Field(100, gt=0, description="header lines per request (431)")
    receiving_bytes: int = Field(
        256 * MIB, gt=0, description="bytes of request bodies still arriving, across requests "
        "(503 past it): bounds the memory uploads in transit take; counts bytes, not requests, "
        "so stalled uploads cost what they sent")
    search_in_flight: int = Field(
        16, gt=0, description="GET/POST /search and GET /listings/* requests in flight at once "
        "(as many again may wait AICORE_ADMISSION_MAX_WAIT_S; 503 + Retry-After past that)")
    status_in_flight: int = Field(
        4, gt=0, description="GET /health and GET /models requests in flight at once (each asks "
        "TorchServe's management API; as many again may wait; 503 + Retry-After past that)")

    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        [], description="Host names the proxy answers besides the loopback ones and its bind "
        "address (comma-separated in the env; 400 for any other Host header, see proxy/headers.py)")

    @field_validator("inference_url", "management_url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {url!r}")
        return url.rstrip("/")

    _catalogue: Catalogue = PrivateAttr()

    @field_validator("key_file", "search_index", "torchserve_config", "state_dir")
    @classmethod
    def _resolve_key_file(cls, path: Path) -> Path:
        path = path.expanduser()
        return path if path.is_absolute() else REPO_ROOT / path

    @field_validator("models", "allowed_hosts", mode="before")
    @classmethod
    def _split_models(cls, value: object) -> object:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @property
    def catalogue(self) -> Catalogue:
        """The served models of :attr:`models`, each with its kind, in the catalogue's order."""
        return self._catalogue

    @property
    def image_models(self) -> tuple[str, ...]:
        """The served models POST /predict/image accepts: those of kind image."""
        return self._catalogue.names(IMAGE)

    def model_of_kind(self, kind: str) -> str | None:
        """The served model a kind's route sends to (the catalogue's first of that kind)."""
        names = self._catalogue.names(kind)
        return names[0] if names else None

    @model_validator(mode="after")
    def _check_models(self) -> Self:
        try:
            catalogue = Catalogue.from_config(self.torchserve_config)
        except UserError as exc:
            raise ValueError(str(exc)) from None
        if self.models is None:
            self.models = list(catalogue)
        if not self.models:
            raise ValueError("models is empty: name at least one model of the catalogue, "
                             f"e.g. {','.join(catalogue)}")
        unknown = [name for name in self.models if name not in catalogue]
        if unknown:
            raise ValueError(f"models {unknown} are not in the model_snapshot of "
                             f"{self.torchserve_config}: choose from {', '.join(catalogue)}")
        self._catalogue = Catalogue([catalogue[name] for name in catalogue if name in self.models])
        if self.default_model not in self.models:
            raise ValueError(
                f"default_model {self.default_model!r} is not one of models {self.models}"
            )
        return self
