"""How to embed a listing, and a query, for a trained run: the one place that knows model inputs.

Everything else in ``search`` sees unit vectors. An embedder says which query inputs it embeds
(``modalities``: a photo, text, or both), embeds every listing of a dataset for the index build,
and embeds one query in-process (``python -m search.query``; the proxy asks TorchServe instead,
with ``embedding=true``, which runs the same :func:`aicore.models.embed`).

- image runs (``cnn``, ``resnet50``): a listing is the mean of its photos' embeddings, scaled back
  to unit length; a query photo is decoded and preprocessed exactly as the TorchServe handler does
  (:func:`aicore.presets.load_image` + :class:`aicore.presets.EvalPreset`);
- text runs (``text``): a listing is the embedding of its title and description; a query is its
  text sent as a title (``{"title": q}`` to TorchServe's ``text`` model);
- image + text runs (``multimodal``, served as ``listing``): a listing is the mean over its photos
  of the embedding of (photo, its text), or of its text alone without a photo; a query is its
  photo, its text as a title, or both.

A new kind of run is one more class here and one line in :data:`EMBEDDERS`: build, query,
evaluation and the proxy take it unchanged.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from common.catalogue import weights_sha256
from common.atomic import atomic_write_bytes
from common.cli import UserError
from search.errors import BadRequest
from search.listings import Listing
from search.vectors import normalise

logger = logging.getLogger(__name__)

BATCH_SIZE = 32
IMAGE = "image"
TEXT = "text"


class EmbeddingCache:
    """Vectors already computed by one model, keyed by a hash of their input (an image file's
    bytes): a rebuild of an unchanged dataset embeds nothing. Holds only what the last build used."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.old: dict[str, np.ndarray] = {}
        self.used: dict[str, np.ndarray] = {}
        self.hits = 0
        if path is not None and path.is_file():
            try:
                with np.load(path, allow_pickle=False) as saved:
                    self.old = dict(zip(saved["keys"].tolist(), saved["vectors"], strict=True))
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
                logger.warning("embedding cache %s is damaged: its inputs are embedded again", path)
                self.old = {}  # a damaged cache only costs a recomputation

    def get(self, key: str) -> np.ndarray | None:
        vector = self.old.get(key)
        if vector is not None and not np.isfinite(vector).all():
            vector = None  # a damaged entry (NaN, Inf): embedded again, never indexed
        if vector is not None:
            self.used[key] = vector
            self.hits += 1
        return vector

    def put(self, key: str, vector: np.ndarray) -> None:
        self.used[key] = vector

    def save(self) -> None:
        if self.path is None or not self.used:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = np.array(list(self.used), dtype=str)
        buffer = io.BytesIO()
        np.savez(buffer, keys=keys, vectors=np.stack(list(self.used.values())).astype(np.float32))
        atomic_write_bytes(self.path, buffer.getvalue())


def model_fingerprint(run_dir: Path) -> str:
    """SHA-256 of the run's ``model.pt``: the archive version names its first 8 hex digits
    (:func:`common.catalogue.format_version`, :meth:`common.catalogue.ArchiveVersion.same_weights`)."""
    from aicore.models import MODEL_FILE

    return weights_sha256(Path(run_dir) / MODEL_FILE)


class Embedder:
    """What every embedder shares: the run's model on one thread, and the index build's loop.

    A listing is embedded as one or more *inputs* (a photo; the text; a photo with the text):
    its vector is the mean of its inputs' embeddings, scaled back to unit length. Subclasses say
    what a listing's inputs are (:meth:`_inputs`) and how a batch of them is embedded
    (:meth:`_embed`).
    """

    modalities: frozenset[str] = frozenset()

    def __init__(self, run_dir: Path) -> None:
        import torch

        from aicore.models import load_trained
        from aicore.presets import EvalPreset

        # One thread, as in the TorchServe workers: on the shared 2-core machine torch's default
        # (a thread per core) spun at ~3 photos/s under load; the CNN is decode-bound anyway.
        torch.set_num_threads(1)
        self.model, _, self.args = load_trained(run_dir)
        self.arch = str(self.args["arch"])
        self.image_size = int(self.args["image_size"])
        self.fingerprint = model_fingerprint(run_dir)
        self.preset = EvalPreset(self.image_size)

    def _inputs(self, listing: Listing) -> list[tuple[str, Callable[[], object]]]:
        """``(cache key, make the model input)`` of each of the listing's inputs."""
        raise NotImplementedError

    def _embed(self, items: list) -> np.ndarray:
        """``(B, D)`` unit rows for B inputs made by :meth:`_inputs`."""
        raise NotImplementedError

    def embed_listings(self, listings: Sequence[Listing], cache: EmbeddingCache,
                       progress: bool = True) -> np.ndarray:
        """``(N, D)`` unit rows: each listing's mean input embedding, re-normalised."""
        from tqdm import tqdm

        inputs = [self._inputs(listing) for listing in listings]
        makers = {key: make for group in inputs for key, make in group}
        todo = [key for key in makers if cache.get(key) is None]
        bar = tqdm(total=len(makers), initial=len(makers) - len(todo), unit="input",
                   desc=f"embedding listings ({self.arch})", disable=not progress)
        for start in range(0, len(todo), BATCH_SIZE):
            chunk = todo[start:start + BATCH_SIZE]
            for key, vector in zip(chunk, self._embed([makers[key]() for key in chunk]), strict=True):
                cache.put(key, vector)
            bar.update(len(chunk))
        bar.close()
        rows = [np.mean([cache.used[key] for key, _ in group], axis=0) for group in inputs]  # (D,)
        return normalise(np.stack(rows))

    def _photo(self, data: bytes):
        """A photo as the TorchServe handlers preprocess it, ``(3, S, S)``.

        Raises:
            BadRequest: if ``data`` cannot be decoded.
        """
        from aicore.presets import ImageDecodeError, load_image

        try:
            return self.preset(load_image(data, self.image_size))  # (3, S, S)
        except ImageDecodeError as exc:
            raise BadRequest(f"cannot use the query image: {exc}") from None

    def _probe_dim(self, item: object) -> int:
        return int(self._embed([item]).shape[1])


def _sha256(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "little"))  # framed: ("ab", "c") != ("a", "bc")
        digest.update(part)
    return digest.hexdigest()


def _no_photo(listing: Listing) -> UserError:
    return UserError(f"listing {listing.id!r} has no photo, and an image model embeds only "
                     "photos: index a text-only dataset with a text run (SEARCH_RUN=runs/text)")


class ImageEmbedder(Embedder):
    """Embeds listings by their photos with an image run (``cnn``, ``resnet50``)."""

    modalities = frozenset({IMAGE})

    def __init__(self, run_dir: Path) -> None:
        import torch

        super().__init__(run_dir)
        self.dim = self._probe_dim(torch.zeros(3, self.image_size, self.image_size))

    def _inputs(self, listing: Listing) -> list[tuple[str, Callable[[], object]]]:
        if not listing.image_paths:
            raise _no_photo(listing)
        return [(hashlib.sha256(Path(path).read_bytes()).hexdigest(),
                 lambda path=path: self._photo(Path(path).read_bytes()))
                for path in listing.image_paths]

    def _embed(self, items: list) -> np.ndarray:
        import torch

        from aicore.models import embed

        with torch.inference_mode():
            return embed(self.model, torch.stack(items)).float().numpy()  # (B, D)

    def embed_query(self, text: str | None = None, image: bytes | None = None) -> np.ndarray | None:
        """The unit vector of a query photo; ``None`` when there is no photo (text is lexical).

        Raises:
            BadRequest: if ``image`` cannot be decoded.
        """
        if image is None:
            return None
        return normalise(self._embed([self._photo(image)]))[0]


class TextEmbedder(Embedder):
    """Embeds listings by their title and description with a text run (``text``).

    The text is hashed by the run's own featuriser (:class:`aicore.text.TextFeaturizer`, rebuilt
    from ``model_args.json`` as the listing handler does). A query's text is sent as a listing's
    title with no description, in-process here and to TorchServe by the proxy.
    """

    modalities = frozenset({TEXT})

    def __init__(self, run_dir: Path) -> None:
        super().__init__(run_dir)
        self.featurizer = self.model.featurizer
        self.dim = self._probe_dim((self.featurizer.encode("probe", ""), None))

    def _text_input(self, listing: Listing) -> tuple[bytes, list[int]]:
        """The listing's text as a cache key part, and its feature ids."""
        key = f"{listing.title}\x1f{listing.description}".encode()
        return key, self.featurizer.encode(listing.title, listing.description)

    def _inputs(self, listing: Listing) -> list[tuple[str, Callable[[], object]]]:
        key, ids = self._text_input(listing)
        return [(_sha256(key), lambda: (ids, None))]

    def _embed(self, items: list) -> np.ndarray:
        """``items``: ``(feature ids, photo (3, S, S) or None)`` per input."""
        import torch

        from aicore.models import embed
        from aicore.text_models import model_input

        batch = model_input(self.arch, [ids for ids, _ in items], [image for _, image in items],
                            self.image_size)
        with torch.inference_mode():
            return embed(self.model, batch).float().numpy()  # (B, D)

    def embed_query(self, text: str | None = None, image: bytes | None = None) -> np.ndarray | None:
        """The unit vector of the query's text (and photo, for a multimodal run); ``None`` when
        there is nothing to embed (no words and no photo).

        Raises:
            BadRequest: if ``image`` cannot be decoded.
        """
        ids = self.featurizer.encode(text or "", "")
        photo = self._photo(image) if image is not None and IMAGE in self.modalities else None
        if not ids and photo is None:
            return None
        return normalise(self._embed([(ids, photo)]))[0]


class ListingEmbedder(TextEmbedder):
    """Embeds listings by photo and text together with an image + text run (``multimodal``):
    one input per photo, each with the listing's text (the text alone when it has no photo), as
    the listing handler embeds one request."""

    modalities = frozenset({IMAGE, TEXT})

    def _inputs(self, listing: Listing) -> list[tuple[str, Callable[[], object]]]:
        key, ids = self._text_input(listing)
        if not listing.image_paths:
            return [(_sha256(key), lambda: (ids, None))]
        return [(_sha256(key, Path(path).read_bytes()),
                 lambda path=path: (ids, self._photo(Path(path).read_bytes())))
                for path in listing.image_paths]


# model_args.json "arch" -> how to embed with it, and the TorchServe model that serves it.
EMBEDDERS = {"cnn": ImageEmbedder, "resnet50": ImageEmbedder, "text": TextEmbedder,
             "multimodal": ListingEmbedder}


def run_arch(run_dir: Path) -> str:
    """The architecture of a training run (``model_args.json``'s ``arch``).

    Raises:
        UserError: if ``run_dir`` is not a finished run, or search cannot embed with it.
    """
    from aicore.models import MODEL_ARGS_FILE, MODEL_FILE

    run_dir = Path(run_dir)
    for name in (MODEL_FILE, MODEL_ARGS_FILE):
        if not (run_dir / name).is_file():
            raise UserError(f"{run_dir} is not a finished training run: {name} is missing "
                            "(train one with `make train MODEL=cnn`)")
    try:
        arch = json.loads((run_dir / MODEL_ARGS_FILE).read_text(encoding="utf-8"))["arch"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"cannot read {run_dir / MODEL_ARGS_FILE}: {exc}") from None
    if arch not in EMBEDDERS:
        raise UserError(f"{run_dir} holds a {arch!r} model, which search cannot embed with yet; "
                        f"runs of {', '.join(sorted(EMBEDDERS))} work (add an embedder to "
                        "search/embedders.py)")
    return arch


def load_embedder(run_dir: Path):
    """The embedder for ``run_dir`` (see :data:`EMBEDDERS`), or for a pretrained encoder's model
    folder (an index built without ``--run`` records its folder as its ``run``)."""
    from aicore.sentence import TOKENIZER_FILE

    if (Path(run_dir) / TOKENIZER_FILE).is_file():
        from search.encoder import PretrainedTextEmbedder

        return PretrainedTextEmbedder(str(run_dir))
    arch = run_arch(run_dir)
    try:
        return EMBEDDERS[arch](Path(run_dir))
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(f"cannot load the model of {run_dir}: {exc}") from None
