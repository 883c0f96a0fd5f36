"""The one fake of TorchServe behind the client's interface, and how TorchServe hands a request
to a handler.

- :class:`FakeTorchServe` implements what the routes call on :class:`proxy.torchserve.TorchServeClient`
  (``predict(model, ModelRequest)``, ``ping``, ``model``, ``models``); a test overrides the
  ``get_torchserve`` dependency with it. What it answers is a function of the request
  (``answer``), so the search tests plug in an in-process embedder of the index's own run.
- :func:`handler_row` turns an HTTP request the real client built into the dict TorchServe 0.12
  gives the handler for it (``{"body": ...}`` for a raw or JSON body, one key per multipart
  field), so codec and handler tests see what a worker sees.
"""

import json
from collections.abc import Callable
from email.parser import BytesParser
from email.policy import HTTP

import httpx

from common.codec import ModelRequest
from proxy.errors import ModelNotFound, TorchServeError
from proxy.torchserve import ModelDescription, Prediction

PROBABILITIES = {"Appliances": 0.1, "Home & Garden": 0.7, "Video Games & Consoles": 0.2}
Answer = Callable[[str, ModelRequest], Prediction]


def describe(name: str, statuses: list[str], version: str = "1.0") -> ModelDescription:
    return ModelDescription.model_validate({
        "modelName": name, "modelVersion": version,
        "workers": [{"id": str(9000 + i), "status": s} for i, s in enumerate(statuses)],
    })


def embedding_answer(embedder) -> Answer:
    """Answer like the served model of ``embedder``'s run would: its embedding of the request's
    title and photo, computed in-process (:meth:`search.embedders.Embedder.embed_query`)."""
    from search.errors import BadRequest

    from proxy.errors import InvalidImage

    def answer(model: str, request: ModelRequest) -> Prediction:
        try:
            vector = embedder.embed_query(text=request.title, image=request.image)
        except BadRequest as exc:
            raise InvalidImage(str(exc)) from None
        return Prediction(category="Appliances", probabilities={"Appliances": 1.0},
                          embedding=vector.tolist() if request.embedding else None)

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
                             "listing": describe("listing", ["READY"], version)}

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
