"""TorchServe handler for the marketplace image classifiers (the archives of kind ``image``).

``make archive`` packs this file into every image ``.mar`` together with the trained weights
(``model.pt``, a ``state_dict``), ``model_args.json``, ``index_to_name.json`` and the ``aicore``
and ``common`` packages, so the worker decodes, cleans and normalises an image with exactly the
code training used (:mod:`aicore.presets`). The stages are :class:`handler.base.ServedModelHandler`'s.

Per request (TorchServe hands the handler a batch of up to ``batchSize`` requests), as
:func:`common.codec.decode` reads it for the kind ``image``:

- input: the image bytes as the raw body (``curl -T photo.jpg``), a multipart field (``data``,
  ``image``, ``file`` or the first binary field) or base64 text, bare or as ``{"data": "<b64>"}``;
- output: ``{"category": <top name>, "probabilities": {<every category>: p}}`` as
  ``application/json``; the probabilities are a softmax over all categories and sum to 1;
- a multipart form field ``embedding=true`` beside the image (``curl -F data=@photo.jpg -F
  embedding=true``) adds ``"embedding": [floats]``, the image's L2-normalised embedding
  (:func:`aicore.models.embed`, the layer before the head) -- the vector listing search indexes
  and queries with. A URL query parameter ``?embedding=true`` does NOT work: TorchServe 0.12 does
  not hand URL query parameters to the handler (measured);
- a request that is not a usable image gets ``400 {"error": "<what is wrong>"}`` on its own.

Threads: each worker's torch uses ``AICORE_TORCH_THREADS`` (default 1). The default keeps one busy
worker on one core: the 2-core serving machine runs 2 ResNet-50 + 2 CNN workers
(config.properties), and torch's default (a thread per core in every worker) would put 8 threads
on 2 cores. Measured: a worker with 2 threads fell from ~24 to ~3 images/s whenever another
process took a core (its threads wait for each other), while single-threaded workers degrade
gracefully.

TorchServe's model loader requires exactly one class defined in this module.
"""

import torch

from aicore.presets import load_image
from common.catalogue import IMAGE
from common.codec import ModelRequest
from handler.base import ServedModelHandler


class ImageClassifierHandler(ServedModelHandler):
    """Classify listing photos into the categories of the archive's ``index_to_name.json``."""

    kinds = (IMAGE,)

    def prepare(self, request: ModelRequest) -> torch.Tensor:  # -> (3, S, S)
        """The decoded, cleaned and normalised photo (:mod:`aicore.presets`).

        Raises:
            ImageDecodeError: if the bytes are not an image.
        """
        return self.preset(load_image(request.image, self.image_size))

    def collate(self, items: list[torch.Tensor]) -> torch.Tensor:  # -> (B, 3, S, S)
        return torch.stack(items)
