"""The proxy's only road to TorchServe: one shared ``httpx.AsyncClient`` behind ``TorchServeClient``.

TorchServe 0.12 enforces token authorization: every call carries a key from the ``key_file.json``
it writes at start-up. A restart writes new keys and keys expire, so a rejected key is re-read from
the file (and, if it did not change, renewed with the API key) and the call is tried once more.
"""

import asyncio
import logging
import time
from pathlib import Path
from typing import Literal
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from proxy.answers import error_message, prediction_error, unavailable, worker_died
from proxy.errors import (
    KeyRejected,
    ModelNotFound,
    TorchServeError,
    TorchServeTimeout,
    TorchServeUnreachable,
    UnexpectedAnswer,
    WorkerDied,
)
from common.catalogue import KINDS, Kind
from common.codec import ModelRequest, encode
from common.torchserve import API_KEY, READY, read_key_file
from proxy.retry import RetryBudget
from proxy.settings import Settings

logger = logging.getLogger(__name__)

Api = Literal["inference", "management"]
# TorchServe answers a missing, wrong or expired key with 400 and this exception type.
INVALID_KEY_TYPE = "InvalidKeyException"
# A kept-alive connection that TorchServe closed (it restarted, or idled it out) fails like this
# before any answer: safe to send once more on a fresh connection.
DROPPED_CONNECTION = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
# A retry needs at least this much of the request's deadline left to be worth sending.
MIN_RETRY_S = 0.5
MAX_MODEL_PAGES = 50  # GET /models pages of 100: bounds the loop, far above two models


class Prediction(BaseModel):
    """What the TorchServe handler answers for one request (a query encoder: the embedding only)."""

    category: str | None = None
    probabilities: dict[str, float] | None = None
    embedding: list[float] | None = None  # asked with embedding=true


def _prediction(model: str, kind: Kind, request: ModelRequest,
                response: httpx.Response) -> Prediction:
    """TorchServe's 200 answer, checked against what the kind answers and the request asked."""
    try:
        prediction = Prediction.model_validate_json(response.content)
    except ValidationError:
        prediction = None
    if prediction is None or (kind.classifies and (prediction.category is None
                                                   or prediction.probabilities is None)):
        raise UnexpectedAnswer(
            f"TorchServe answered 200 for model {model!r} without a category and "
            f"probabilities: {response.text[:300]!r}; is the model archived with the "
            "project's handler (`make archive`)?"
        )
    if (request.embedding or kind.embeds_only) and not prediction.embedding:
        raise UnexpectedAnswer(
            f"TorchServe's model {model!r} answered without the embedding search asked for: "
            "its archive predates the embedding field; rebuild it with `make archive` and "
            "restart with `make serve`"
        )
    return prediction


class ModelDescription(BaseModel):
    """One version of a model as TorchServe's describe API (``GET /models/<name>``) reports it."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(alias="modelName")
    version: str = Field(alias="modelVersion")
    batch_size: int = Field(1, alias="batchSize")
    min_workers: int = Field(0, alias="minWorkers")
    workers: list[dict[str, object]] = Field(default_factory=list)

    @property
    def worker_statuses(self) -> list[str]:
        return [str(worker.get("status", "UNKNOWN")) for worker in self.workers]

    @property
    def ready_workers(self) -> int:
        return self.worker_statuses.count(READY)


class ModelEntry(BaseModel):
    name: str = Field(alias="modelName")


class ModelList(BaseModel):
    """One page of TorchServe's ``GET /models``."""

    models: list[ModelEntry]
    next_page_token: str | None = Field(None, alias="nextPageToken")


_DESCRIPTIONS = TypeAdapter(list[ModelDescription])


class KeyFile:
    """TorchServe's keys, read on first use and re-read only when TorchServe rejects one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._keys: dict[str, str] | None = None

    def get(self, kind: str) -> str | None:
        if self._keys is None:
            self.reload()
        assert self._keys is not None
        return self._keys.get(kind)

    def reload(self) -> None:
        self._keys = read_key_file(self.path)


def is_key_rejected(response: httpx.Response) -> bool:
    if response.status_code == 401:
        return True
    if response.status_code != 400:
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("type") == INVALID_KEY_TYPE


class TorchServeClient:
    """Calls TorchServe's inference and management APIs over one shared connection pool.

    Every failure is raised as a :class:`proxy.errors.TorchServeError` whose ``detail`` tells the
    caller what to do and whose ``status_code`` is what the proxy answers.
    """

    def __init__(self, http: httpx.AsyncClient, settings: Settings,
                 budget: RetryBudget | None = None) -> None:
        self._http = http
        self._settings = settings
        self.budget = budget or RetryBudget(settings.retry_ratio, settings.retry_reserve)
        self._keys = KeyFile(settings.key_file)
        self._key_lock = asyncio.Lock()
        self._base: dict[Api, str] = {
            "inference": settings.inference_url,
            "management": settings.management_url,
        }

    # --- the API the routes use -------------------------------------------------------------

    async def predict(self, model: str, request: ModelRequest) -> Prediction:
        """Send ``request`` to ``model``, encoded for the model's kind (:func:`common.codec.encode`);
        a dead worker or a dropped connection is retried once, if the retry budget allows and the
        request's deadline leaves time.

        Raises:
            ModelNotFound: ``model`` is not in the proxy's catalogue (or TorchServe lacks it).
            InvalidImage: the handler refused the request (400, its message passed through).
            WorkerDied: the worker died (or the connection dropped) and the retry did not help.
            PayloadTooLarge, QueueFull, ModelLoading, NoWorkerReady, UnexpectedAnswer:
                TorchServe said so.
            TorchServeUnreachable, TorchServeTimeout, KeyRejected: see :meth:`_request`.
        """
        kind = self._settings.catalogue.kind(model)
        if kind is None:
            raise ModelNotFound(f"Unknown model {model!r}: this proxy serves "
                                f"{', '.join(self._settings.catalogue)}")
        body = encode(kind, request)
        self.budget.deposit()
        deadline = time.monotonic() + self._settings.read_timeout_s
        response = await self._try_predict(model, body)
        if isinstance(response, WorkerDied):
            remaining = deadline - time.monotonic()
            if remaining < MIN_RETRY_S or not self.budget.withdraw():
                raise response
            logger.warning("%s; retrying once (%.1f s left)", response.detail, remaining)
            response = await self._try_predict(
                model, body, httpx.Timeout(remaining, connect=self._settings.connect_timeout_s))
            if isinstance(response, WorkerDied):
                raise response
        if response.status_code != 200:
            raise await self._prediction_error(model, request.size, response)
        return _prediction(model, KINDS[kind], request, response)

    async def ping(self) -> str:
        """TorchServe's own health word (``"Healthy"`` when it is up)."""
        response = await self._request("GET", "inference", "/ping")
        try:
            status = response.json().get("status")
        except (ValueError, AttributeError):
            status = None
        if not isinstance(status, str):
            raise UnexpectedAnswer(
                f"TorchServe answered {response.status_code} to GET /ping without a status: "
                f"{error_message(response)}"
            )
        return status

    async def model(self, name: str) -> ModelDescription:
        """The default version of ``name`` with its workers.

        Raises:
            ModelNotFound: TorchServe has no model ``name`` registered.
        """
        return (await self._describe(name))[0]

    async def models(self) -> dict[str, list[str]]:
        """Every registered model and its versions, ``{"cnn": ["1.0"], ...}``."""
        names = await self._model_names()
        described = await asyncio.gather(*(self._describe(name, all_versions=True) for name in names))
        return {
            name: [entry.version for entry in entries]
            for name, entries in zip(names, described, strict=True)
        }

    async def _try_predict(self, model: str, body: dict[str, object],
                           timeout: httpx.Timeout | None = None) -> httpx.Response | WorkerDied:
        """One attempt: TorchServe's answer, or the :class:`WorkerDied` that may be retried."""
        extra = {} if timeout is None else {"timeout": timeout}
        try:
            response = await self._request(
                "POST", "inference", f"/predictions/{quote(model, safe='')}",
                retry_dropped=False, **body, **extra,
            )
        except WorkerDied as exc:
            return exc
        return worker_died(model, response) or response

    # --- management API helpers -------------------------------------------------------------

    async def _model_names(self) -> list[str]:
        names: list[str] = []
        params: dict[str, str | int] = {"limit": 100}
        for _ in range(MAX_MODEL_PAGES):
            response = await self._request("GET", "management", "/models", params=params)
            try:
                if response.status_code != 200:
                    raise ValueError(error_message(response))
                page = ModelList.model_validate_json(response.content)
            except ValueError as exc:  # pydantic's ValidationError is a ValueError too
                raise UnexpectedAnswer(
                    f"TorchServe answered {response.status_code} to GET /models: {exc}"
                ) from None
            names += [entry.name for entry in page.models]
            if not page.next_page_token:
                break
            params = {"limit": 100, "next_page_token": page.next_page_token}
        return sorted(names)

    async def _describe(self, name: str, all_versions: bool = False) -> list[ModelDescription]:
        path = f"/models/{quote(name, safe='')}" + ("/all" if all_versions else "")
        response = await self._request("GET", "management", path)
        if response.status_code == 404:
            raise ModelNotFound(
                f"TorchServe has no model {name!r} registered: {error_message(response)}"
            )
        try:
            if response.status_code != 200:
                raise ValueError(error_message(response))
            descriptions = _DESCRIPTIONS.validate_json(response.content)
            if not descriptions:
                raise ValueError("empty model description")
            return descriptions
        except ValueError as exc:  # pydantic's ValidationError is a ValueError too
            raise UnexpectedAnswer(
                f"TorchServe answered {response.status_code} to GET {path}: {exc}"
            ) from None

    # --- transport: keys, retries, error mapping ----------------------------------------------

    async def _request(
        self, method: str, api: Api, path: str, retry_dropped: bool = True, **kwargs: object
    ) -> httpx.Response:
        """Send one call with the right key; on a rejected key re-read the key file and retry once.

        Raises:
            TorchServeUnreachable: nothing listens at TorchServe's address.
            TorchServeTimeout: TorchServe did not answer within the read timeout.
            KeyRejected: the key is still rejected after re-reading (and renewing) it.
            WorkerDied: the connection dropped mid-call (after one budgeted retry when
                ``retry_dropped``).
        """
        key = self._keys.get(api)
        response = await self._send(method, api, path, key, retry_dropped, **kwargs)
        if not is_key_rejected(response):
            return response
        if await self._refresh_key(api, rejected=key):
            response = await self._send(method, api, path, self._keys.get(api), retry_dropped,
                                        **kwargs)
        if is_key_rejected(response):
            raise self._key_rejected(api)
        return response

    def _key_rejected(self, api: Api) -> KeyRejected:
        path = self._keys.path
        problem = (f"rejects the {api} key from {path}" if path.exists()
                   else f"wants an API key, but the key file {path} does not exist")
        return KeyRejected(
            f"TorchServe at {self._base[api]} {problem}: set AICORE_KEY_FILE to the "
            "key_file.json in TorchServe's working directory (`make serve` keeps it in .serve/), "
            "or restart with `make stop && make serve`"
        )

    async def _send(
        self, method: str, api: Api, path: str, key: str | None, retry_dropped: bool = True,
        headers: dict[str, str] | None = None, **kwargs: object,
    ) -> httpx.Response:
        headers = dict(headers or {})
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        url = self._base[api] + path
        try:
            return await self._send_once(method, api, url, headers, **kwargs)
        except WorkerDied:
            # A kept-alive connection TorchServe closed (restart, idle) fails before any answer.
            if not (retry_dropped and self.budget.withdraw()):
                raise
            logger.info("TorchServe dropped the connection; retrying %s %s once", method, url)
        return await self._send_once(method, api, url, headers, **kwargs)

    async def _send_once(
        self, method: str, api: Api, url: str, headers: dict[str, str], **kwargs: object
    ) -> httpx.Response:
        base = self._base[api]
        try:
            return await self._http.request(method, url, headers=headers, **kwargs)  # type: ignore[arg-type]
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            logger.warning("TorchServe not reachable at %s: %r", base, exc)
            raise TorchServeUnreachable(
                f"TorchServe is not reachable at {base}: start it with `make serve`"
            ) from None
        except DROPPED_CONNECTION as exc:
            logger.warning("TorchServe at %s dropped the connection: %r", base, exc)
            raise WorkerDied(
                f"TorchServe at {base} closed the connection before answering ({exc!r}): it or a "
                "worker may have restarted; retry"
            ) from None
        except httpx.TimeoutException as exc:
            logger.warning("TorchServe at %s timed out: %r", base, exc)
            raise TorchServeTimeout(
                f"TorchServe at {base} did not answer within {self._settings.read_timeout_s:g} s: "
                "it may be overloaded or a worker is stuck; retry, or raise AICORE_READ_TIMEOUT_S"
            ) from None

    async def _refresh_key(self, kind: str, rejected: str | None) -> bool:
        """Make a key other than ``rejected`` available; True when there is one to retry with."""
        async with self._key_lock:
            if self._keys.get(kind) != rejected:
                return True  # a concurrent call refreshed it while this one waited for the lock
            self._keys.reload()
            if self._keys.get(kind) not in (rejected, None):
                logger.info("TorchServe rejected the %s key: re-read %s", kind, self._keys.path)
                return True
            if rejected is None or not self._settings.renew_expired_keys:
                return False
            return await self._renew_key(kind, rejected)

    async def _renew_key(self, kind: str, rejected: str) -> bool:
        """The file still holds the rejected key, so it expired: TorchServe's token API writes a
        new one into the key file when asked with the API key."""
        api_key = self._keys.get(API_KEY)
        if api_key is None:
            return False
        response = await self._send("GET", "management", "/token", api_key,
                                    params={"type": kind})
        if response.status_code != 200:
            logger.warning("TorchServe refused to renew the %s key: %s", kind, error_message(response))
            return False
        self._keys.reload()
        renewed = self._keys.get(kind) not in (rejected, None)
        if renewed:
            logger.info("TorchServe's %s key had expired: renewed it with the API key", kind)
        return renewed

    async def _prediction_error(self, model: str, size: int,
                                response: httpx.Response) -> TorchServeError:
        if response.status_code != 503:
            return prediction_error(model, size, response)
        # TorchServe's one 503 ("has no worker to serve inference request") means a full job
        # queue as well as no worker: its workers tell which.
        try:
            statuses: list[str] | str = (await self.model(model)).worker_statuses
        except TorchServeError as exc:
            statuses = exc.detail
        return unavailable(model, error_message(response), statuses, self._settings.retry_after_s)
