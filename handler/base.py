"""What every TorchServe handler of ours shares: load the archive's runtime, decode each request
with the served-model contract, run one pass for the batch, answer per request.

A handler for a kind of model (:mod:`common.catalogue`) subclasses :class:`ServedModelHandler` and
overrides two steps: :meth:`~ServedModelHandler.prepare` (one decoded
:class:`common.codec.ModelRequest` -> the model's input for it) and
:meth:`~ServedModelHandler.collate` (those inputs -> one batch). The rest is here:

- ``initialize``: :meth:`~ServedModelHandler.load` (by default :func:`aicore.runtime.load_runtime`,
  eager PyTorch or ONNX Runtime: one pass giving logits and embedding for every kind of trained
  run; the query encoder's handler loads its encoder instead and overrides ``run``);
- ``preprocess``: :func:`common.codec.decode` for the archive's kind, then ``prepare``; a request
  that cannot be served becomes its :class:`common.codec.RequestError` (answered 400 on its own:
  the rest of the batch is answered and the worker stays up; an exception out of ``handle``
  would make TorchServe answer 503 for the whole batch);
- ``inference``: one runtime call over the usable requests;
- ``postprocess``: ``{"category", "probabilities"}`` (+ ``"embedding"`` when asked; only the
  embedding for a query encoder) or ``{"error"}``, as JSON.

``make archive`` packs this module (as the package ``handler`` holding only it) into every
``.mar``, next to the handler file, ``aicore`` and ``common``.
"""

import json
import logging
from typing import Any

import torch
from ts.context import Context
from ts.torch_handler.base_handler import BaseHandler

from aicore.presets import EvalPreset, ImageDecodeError
from aicore.runtime import load_runtime
from common.catalogue import KINDS, kind_of_arch
from common.codec import ModelRequest, RequestError, decode
from common.handling import prediction, torch_threads_from_env

logger = logging.getLogger(__name__)

JSON_CONTENT_TYPE = "application/json"
OK = 200
BAD_REQUEST = 400


Refusal = RequestError | ImageDecodeError  # a request answered 400 with its message


class ServedModelHandler(BaseHandler):
    """The shared stages; subclasses say which kinds they serve and how to batch a request."""

    kinds: tuple[str, ...] = ()  # the kinds of model this handler serves

    def initialize(self, context: Context) -> None:
        """Load the archive's runtime and the eval preset.

        Args:
            context: TorchServe's context; ``system_properties["model_dir"]`` is the unpacked
                ``.mar`` holding ``model.pt``, ``model_args.json``, ``index_to_name.json`` (and
                ``runtime.json`` + ``model.onnx`` for an ONNX runtime).

        Raises:
            FileNotFoundError, ValueError: if the archive does not hold a trained model of a kind
                this handler serves; TorchServe then marks the worker failed.
        """
        self.context = context
        self.manifest = context.manifest
        threads = torch_threads_from_env()
        torch.set_num_threads(threads)
        properties = context.system_properties
        gpu_id = properties.get("gpu_id")
        use_cuda = torch.cuda.is_available() and gpu_id is not None
        self.device = torch.device(f"cuda:{gpu_id}" if use_cuda else "cpu")
        self.load(properties.get("model_dir"), threads)
        if self.kind not in self.kinds:
            raise ValueError(f"{type(self).__name__} serves models of kind {' or '.join(self.kinds)}, "
                             f"not {self.arch!r} (kind {self.kind}): archive it with the handler "
                             "of its kind (`make archive`)")
        self.initialized = True
        logger.info("loaded %s (%s, %d classes) with runtime %s on %s with %d thread(s)",
                    self.arch, self.kind, len(self.class_names),
                    self.runtime_record.get("runtime"), self.device, threads)

    def load(self, model_dir: str, threads: int) -> None:
        """Load the archive's model: a trained run in its runtime (:func:`aicore.runtime.load_runtime`).

        Sets ``runtime``, ``class_names``, ``model_args``, ``runtime_record``, ``arch``, ``kind``
        and the eval preset. A kind whose archive holds something else overrides this.
        """
        self.runtime, self.class_names, self.model_args, self.runtime_record = load_runtime(
            model_dir, threads, self.device)
        self.arch = self.model_args["arch"]
        self.kind = kind_of_arch(self.arch)
        self.image_size = int(self.model_args["image_size"])
        self.preset = EvalPreset(self.image_size)

    def describe_handle(self) -> dict:
        """What ``GET /models/<name>?customized=true`` shows as ``customizedMetadata``: the
        archive's ``runtime.json`` (runtime, engine version, calibration, accuracy gate)."""
        return self.runtime_record

    # --- the two steps a kind's handler defines ------------------------------------------------

    def prepare(self, request: ModelRequest) -> Any:
        """The model's input for one decoded request.

        Raises:
            RequestError, ImageDecodeError: saying what is wrong with the request.
        """
        raise NotImplementedError

    def collate(self, items: list[Any]) -> Any:
        """One batch of the model's input from :meth:`prepare`'s items, on ``self.device``."""
        raise NotImplementedError

    def run(self, batch: Any) -> tuple[torch.Tensor | None, Any]:
        """One pass over a batch: ``((B, C) probabilities or None for a kind that does not
        classify, (B, D) unit embeddings)``; the runtime gives logits and embedding together."""
        outputs = self.runtime(batch)
        return torch.softmax(outputs.logits.float(), dim=1), outputs.embedding

    # --- the shared stages ---------------------------------------------------------------------

    def preprocess(self, data: list[dict]) -> list[Any]:
        """Decode each request (:func:`common.codec.decode`) and prepare it, or keep its error.

        Also notes which requests ask for their embedding (``self.embedding_rows``, read by
        :meth:`inference`).

        Args:
            data: one dict per request, as TorchServe builds it (field name -> value).

        Returns:
            One entry per request, in order: :meth:`prepare`'s item, or the :data:`Refusal` to
            answer with. Bad input is returned per request, never raised.
        """
        prepared: list[Any] = []
        self.embedding_rows: set[int] = set()
        for idx, row in enumerate(data):
            try:
                request = decode(self.kind, row)
                prepared.append(self.prepare(request))
            except (RequestError, ImageDecodeError) as exc:
                logger.info("request %d of %d refused: %s", idx, len(data), exc)
                prepared.append(exc)
                continue
            if request.embedding:
                self.embedding_rows.add(idx)
        return prepared

    def inference(self, data: list, *args, **kwargs) -> list:
        """One runtime pass over the usable requests: logits and embeddings together.

        Returns:
            Per request: ``((C,) probabilities, (D,) unit embedding or None)``, or its error.
        """
        rows = [i for i, item in enumerate(data) if not isinstance(item, Refusal)]
        results = list(data)
        if not rows:
            return results
        wanted = getattr(self, "embedding_rows", set())
        probabilities, embeddings = self.run(self.collate([data[i] for i in rows]))
        for k, row in enumerate(rows):
            results[row] = (None if probabilities is None else probabilities[k],
                            embeddings[k] if row in wanted else None)
        return results

    def postprocess(self, data: list) -> list[str]:
        """One JSON body per request with its status code and content type.

        Returns:
            ``{"category", "probabilities"}`` (+ ``"embedding"`` when asked; a query encoder
            answers ``{"embedding"}`` alone) with 200, or ``{"error"}`` with 400.
        """
        classifies = KINDS[self.kind].classifies
        responses = []
        for idx, item in enumerate(data):
            if isinstance(item, Refusal):
                body = {"error": str(item)}
                self.context.set_response_status(BAD_REQUEST, "Bad Request", idx)
            else:
                probabilities, embedding = item
                body = prediction(probabilities, self.class_names) if classifies else {}
                if embedding is not None:
                    body["embedding"] = embedding.tolist()
                self.context.set_response_status(OK, "OK", idx)
            self.context.set_response_content_type(idx, JSON_CONTENT_TYPE)
            responses.append(json.dumps(body, ensure_ascii=False))
        return responses
