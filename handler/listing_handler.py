"""TorchServe handler for listings: the text model (``text.mar``, kind ``text``) and image + text
(``listing.mar``, kind ``listing``).

``make archive`` packs this file with the run's ``model.pt``, ``model_args.json``,
``index_to_name.json`` and the ``aicore`` and ``common`` packages; the worker cleans and hashes
text with the featuriser rebuilt from ``model_args.json`` (:mod:`aicore.text`, exactly as in
training) and, for the multimodal model, decodes the photo with :mod:`aicore.presets`. The stages
are :class:`handler.base.ServedModelHandler`'s.

Per request (TorchServe hands over a batch of up to ``batchSize``), as :func:`common.codec.decode`
reads it:

- ``text.mar``: a JSON body ``{"title": "...", "description": "..."}`` (either may be left out),
  or the same two as form fields;
- ``listing.mar``: multipart form fields ``title``, ``description`` and an optional ``image`` file
  (or the JSON body above, for a listing without a photo);
- ``"embedding": true`` in the JSON body, or a form field ``embedding=true``, adds
  ``"embedding": [floats]``, the listing's L2-normalised embedding (:func:`aicore.models.embed`, the
  layer before the head; TorchServe 0.12 does not pass URL query parameters to handlers);
- output: ``{"category", "probabilities"}`` as JSON; a request that is empty (no text and no photo),
  has a non-string field, a field over its cap (:data:`common.codec.MAX_TITLE_CHARS`,
  :data:`common.codec.MAX_DESCRIPTION_CHARS`) or a photo that cannot be decoded gets
  ``400 {"error": ...}`` on its own; the rest of the batch is answered and the worker stays up.

TorchServe's model loader requires exactly one class defined in this module.
"""

from aicore.presets import ImageDecodeError, load_image
from aicore.text import TextBatch
from aicore.text_models import ListingBatch, model_input
from common.catalogue import LISTING, TEXT
from common.codec import ModelRequest, RequestError
from common.handling import Listing
from handler.base import ServedModelHandler


class ListingClassifierHandler(ServedModelHandler):
    """Classify listings (text, or photo + text) into the categories of ``index_to_name.json``."""

    kinds = (TEXT, LISTING)

    def prepare(self, request: ModelRequest) -> Listing:
        """The listing's feature ids and preprocessed photo.

        Raises:
            RequestError: for an undecodable photo or a listing with nothing to read.
        """
        image = None
        if request.image is not None:
            try:
                image = self.preset(load_image(request.image, self.image_size))  # (3, S, S)
            except ImageDecodeError as exc:
                raise RequestError(f"field 'image': {exc}") from None
        ids = self.runtime.model.featurizer.encode(request.title, request.description)
        if not ids and image is None:
            wanted = "a title or a description" + (" or a photo" if self.kind != TEXT else "")
            raise RequestError(f"empty listing: it has no words to read; send {wanted}")
        return Listing(ids, image, request.embedding)

    def collate(self, items: list[Listing]) -> TextBatch | ListingBatch:
        """The model's input for the listings (a missing photo is a zero image, flagged)."""
        return model_input(self.arch, [item.ids for item in items],
                           [item.image for item in items], self.image_size).to(self.device)
