"""The fakes of TorchServe, one per interface, and how TorchServe hands a request to a handler.

- :class:`FakeTorchServe` implements what the routes call on :class:`proxy.torchserve.TorchServeClient`
  (``predict(model, ModelRequest)``, ``ping``, ``model``, ``models``); a test overrides the
  ``get_torchserve`` dependency with it. What it answers is a function of the request
  (``answer``), so the search tests plug in an in-process embedder of the index's own run.
- :class:`TorchServeHTTP` is TorchServe 0.12's HTTP APIs as the real client meets them, for
  ``create_app(settings, transport=httpx.MockTransport(fake))``: scripted prediction answers,
  described workers, and (with a key file) its key handling.
- :func:`handler_row` turns an HTTP request the real client built into the dict TorchServe 0.12
  gives the handler for it (``{"body": ...}`` for a raw or JSON body, one key per multipart
  field), so codec and handler tests see what a worker sees.
"""

import json
import secrets
from collections.abc import Callable
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path

import httpx

from common.codec import ModelRequest
from proxy.errors import ModelNotFound, TorchServeError
from proxy.torchserve import ModelDescription, Prediction

PROBABILITIES = {"Appliances": 0.1, "Home & Garden": 0.7, "Video Games & Consoles": 0.2}
OK = {"category": "Home & Garden", "probabilities": PROBABILITIES}  # a handler's 200 body
# TorchServe's answer to a missing, wrong or expired key.
INVALID_KEY = {"code": 400, "type": "InvalidKeyException",
               "message": "Token Authorization failed. Token either incorrect, expired, or not "
                          "provided correctly"}
MANAGEMENT_PORT = 8081  # the default management address the Settings point at
Answer = Callable[[str, ModelRequest], Prediction]


def describe(name: str, statuses: list[str], version: str = "1.0") -> ModelDescription:
    return ModelDescription.model_validate({
        "modelName": name, "modelVersion": version,
        "workers": [{"id": str(9000 + i), "status": s} for i, s in enumerate(statuses)],
    })


def embedding_answer(embedder) -> Answer:
    """Answer like the served model of ``embedder``'s run would: its embedding of the request's
    title and photo, computed in-process (:meth:`search.embedders.Embedder.embed_query`). As
    TorchServe picks a handler by the model's name, the pretrained encoder's archive
    (:data:`search.encoder.SERVED_MODEL`) reads title and description as
    :class:`handler.query_handler` does (:func:`aicore.sentence.listing_text`), the others the
    title."""
    from aicore.sentence import listing_text
    from search.encoder import SERVED_MODEL as ENCODER_MODEL
    from search.errors import BadRequest

    from proxy.errors import InvalidImage

    def answer(model: str, request: ModelRequest) -> Prediction:
        text = request.title
        if model == ENCODER_MODEL:
            text = listing_text(request.title, request.description)
        try:
            vector = embedder.embed_query(text=text, image=request.image)
        except BadRequest as exc:
            raise InvalidImage(str(exc)) from None
        return Prediction(category="Appliances", probabilities={"Appliances": 1.0},
                          embedding=vector.tolist() if request.embedding else None)

    return answer


def embedding_answers(embedders: dict) -> Answer:
    """Answer each model of ``embedders`` (``{served model: embedder}``) as
    :func:`embedding_answer` does; any other model is not registered (TorchServe's 404, as
    :class:`proxy.torchserve.TorchServeClient` raises it)."""
    answers = {model: embedding_answer(embedder) for model, embedder in embedders.items()}

    def answer(model: str, request: ModelRequest) -> Prediction:
        if model not in answers:
            raise ModelNotFound(f"TorchServe has no model {model!r} registered")
        return answers[model](model, request)

    return answer


def canned(model: str, request: ModelRequest) -> Prediction:
    """The default answer: a fixed classification (+ a fixed unit embedding when asked)."""
    return Prediction(category="Home & Garden", probabilities=PROBABILITIES,
                      embedding=[1.0, 0.0] if request.embedding else None)


class FakeTorchServe:
    """Stands in for TorchServeClient: ``answer`` per request, or the error a test sets."""

    def __init__(self, answer: Answer = canned, version: str = "1.0") -> None:
        self.answer = answer
        self.calls: list[tuple[str, ModelRequest]] = []
        self.error: Exception | None = None
        self.ping_error: TorchServeError | None = None
        # The repository's catalogue (config.properties), each with its READY workers.
        self.descriptions = {"cnn": describe("cnn", ["READY"], version),
                             "resnet50": describe("resnet50", ["READY", "READY"], version),
                             "text": describe("text", ["READY"], version),
                             "listing": describe("listing", ["READY"], version),
                             "query": describe("query", ["READY"], version)}

    @property
    def version(self) -> str:
        """The archive version every model is served at (a test may change it)."""
        return next(iter(self.descriptions.values())).version

    @version.setter
    def version(self, version: str) -> None:
        self.descriptions = {name: d.model_copy(update={"version": version})
                             for name, d in self.descriptions.items()}

    async def predict(self, model: str, request: ModelRequest) -> Prediction:
        self.calls.append((model, request))
        if self.error is not None:
            raise self.error
        return self.answer(model, request)

    async def ping(self) -> str:
        if self.ping_error is not None:
            raise self.ping_error
        return "Healthy"

    async def model(self, name: str) -> ModelDescription:
        if name not in self.descriptions:
            raise ModelNotFound(f"TorchServe has no model {name!r} registered")
        return self.descriptions[name]

    async def models(self) -> dict[str, list[str]]:
        """Every described model's version, and one model ("old") this proxy does not serve."""
        served = {**{name: [d.version] for name, d in self.descriptions.items()},
                  "old": ["0.9", "1.0"]}
        return dict(sorted(served.items()))  # sorted by name, as TorchServeClient.models


def handler_row(request: httpx.Request) -> dict:
    """The dict TorchServe 0.12 hands a handler for ``request``.

    A JSON body arrives decoded (``{"body": {...}}``), any other raw body as bytes; a multipart
    body as one key per part, files and form fields alike as bytes.
    """
    content = request.read()
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        return {"body": json.loads(content)}
    if not content_type.startswith("multipart/form-data"):
        return {"body": content}
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + content)
    return {part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
            for part in message.iter_parts()}


# An answer of the prediction script: 200 (the OK body), a TorchServe error body {"code", ...},
# a ready response, or a function of the request (which may raise, as a dropped connection does).
ScriptedAnswer = int | dict | httpx.Response | Callable[[httpx.Request], httpx.Response]


class TorchServeHTTP:
    """TorchServe's inference and management APIs, as an ``httpx.MockTransport`` handler.

    Predictions are answered from ``answers`` (one per call, the last repeats); every model is
    described with ``statuses`` workers, its batch size (``batch_sizes``, else 4) and
    ``versions`` (the first is the default). With ``key_file``, it behaves like TorchServe's
    token authorization: new keys in the file at every (re)start, 400 InvalidKeyException for a
    wrong key, GET /token renewing a key when asked with the API key.
    """

    def __init__(self, *answers: ScriptedAnswer, statuses: tuple[str, ...] = ("READY", "READY"),
                 batch_sizes: dict[str, int] | None = None, versions: tuple[str, ...] = ("1.0",),
                 models: tuple[str, ...] = ("resnet50", "cnn"),
                 key_file: Path | None = None) -> None:
        self.answers: list[ScriptedAnswer] = list(answers) or [200]
        self.statuses = list(statuses)
        self.batch_sizes = batch_sizes or {}
        self.versions = versions
        self.models = models
        self.requests: list[httpx.Request] = []  # every call, in order
        self.predictions: list[httpx.Request] = []  # the POST /predictions/<model> calls
        self.key_file = key_file
        self.keys: dict[str, str] = {}
        if key_file is not None:
            self.restart()

    # --- keys ---------------------------------------------------------------------------------

    def restart(self) -> None:
        """TorchServe (re)started: new keys, written to the key file."""
        self.keys = {kind: secrets.token_urlsafe(6) for kind in ("management", "inference", "API")}
        self.write_key_file()

    def expire(self, kind: str) -> None:
        """The key in the file stops working, as when token_expiration_min has passed."""
        self.keys[kind] = "expired-" + secrets.token_urlsafe(6)

    def write_key_file(self) -> None:
        assert self.key_file is not None
        self.key_file.write_text(json.dumps({kind: {"key": key} for kind, key in self.keys.items()}))

    # --- the APIs -----------------------------------------------------------------------------

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        if self.key_file is not None and (refused := self._authorize(request)) is not None:
            return refused
        path = request.url.path
        if path == "/token":
            return httpx.Response(200)
        if path == "/ping":
            return httpx.Response(200, json={"status": "Healthy"})
        if path.startswith("/predictions/"):
            self.predictions.append(request)
            return self._answer(request)
        if path == "/models":
            return httpx.Response(200, json={"models": [{"modelName": m} for m in self.models]})
        return httpx.Response(200, json=self.describe(path.split("/")[2], path.endswith("/all")))

    def describe(self, name: str, all_versions: bool = False) -> list[dict]:
        """GET /models/<name>[/all]: the default version, or every version."""
        return [{"modelName": name, "modelVersion": version,
                 "batchSize": self.batch_sizes.get(name, 4), "minWorkers": len(self.statuses),
                 "workers": [{"id": str(9000 + i), "status": s} for i, s in enumerate(self.statuses)]}
                for version in (self.versions if all_versions else self.versions[:1])]

    def paths(self) -> list[str]:
        return [request.url.path for request in self.requests]

    def _authorize(self, request: httpx.Request) -> httpx.Response | None:
        auth = request.headers.get("authorization")
        if request.url.path == "/token":
            if auth != f"Bearer {self.keys['API']}":
                return httpx.Response(400, json=INVALID_KEY)
            self.keys[request.url.params["type"]] = secrets.token_urlsafe(6)
            self.write_key_file()
            return None
        api = "management" if request.url.port == MANAGEMENT_PORT else "inference"
        return None if auth == f"Bearer {self.keys[api]}" else httpx.Response(400, json=INVALID_KEY)

    def _answer(self, request: httpx.Request) -> httpx.Response:
        answer = self.answers[min(len(self.predictions), len(self.answers)) - 1]
        if isinstance(answer, httpx.Response):
            return answer
        if callable(answer):
            return answer(request)
        if answer == 200:
            return httpx.Response(200, json=OK)
        return httpx.Response(answer["code"], json=answer)
