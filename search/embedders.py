"""How to embed a listing, and a query, for a trained run: the one place that knows model inputs.

Everything else in ``search`` sees unit vectors. An embedder says which query inputs it embeds
(``modalities``: a photo, text, or both), embeds every listing of a dataset for the index build,
and embeds one query in-process (``python -m search.query``; the proxy asks TorchServe instead,
with ``?embedding=true``, which runs the same :func:`aicore.models.embed`).

- image runs (``cnn``, ``resnet50``): a listing is the mean of its photos' embeddings, scaled back
  to unit length; a query photo is decoded and preprocessed exactly as the TorchServe handler does
  (:func:`aicore.presets.load_image` + :class:`aicore.presets.EvalPreset`).

A new kind of run (text, image + text) is one more class here and one line in
:data:`EMBEDDERS`: build, query, evaluation and the proxy take it unchanged.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from common.atomic import atomic_write_bytes
from common.cli import UserError
from search.errors import BadRequest
from search.listings import Listing
from search.vectors import normalise

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
            except (OSError, ValueError, KeyError):
                self.old = {}  # a damaged cache only costs a recomputation

    def get(self, key: str) -> np.ndarray | None:
        vector = self.old.get(key)
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
    """SHA-256 of the run's ``model.pt``: the archive version ends with its first 8 hex digits."""
    from aicore.models import MODEL_FILE

    digest = hashlib.sha256()
    with open(Path(run_dir) / MODEL_FILE, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ImageEmbedder:
    """Embeds listings by their photos with an image run (``cnn``, ``resnet50``)."""

    modalities = frozenset({IMAGE})

    def __init__(self, run_dir: Path) -> None:
        import torch

        from aicore.models import load_trained
        from aicore.presets import EvalPreset

        # One thread, as in the TorchServe workers: on the shared 2-core machine torch's default
        # (a thread per core) spun at ~3 photos/s under load; the CNN is decode-bound anyway.
        torch.set_num_threads(1)
        self.model, _, self.args = load_trained(run_dir)
        self.image_size = int(self.args["image_size"])
        self.preset = EvalPreset(self.image_size)
        self.fingerprint = model_fingerprint(run_dir)
        with torch.inference_mode():
            probe = torch.zeros(1, 3, self.image_size, self.image_size)
            self.dim = int(self._embed([probe[0]]).shape[1])

    def _embed(self, tensors: list) -> np.ndarray:
        import torch

        from aicore.models import embed

        with torch.inference_mode():
            return embed(self.model, torch.stack(tensors)).float().numpy()  # (B, D)

    def _tensor(self, data: bytes):
        from aicore.presets import load_image

        return self.preset(load_image(data, self.image_size))  # (3, S, S)

    def embed_listings(self, listings: Sequence[Listing], cache: EmbeddingCache,
                       progress: bool = True) -> np.ndarray:
        """``(N, D)`` unit rows: each listing's mean photo embedding, re-normalised."""
        from tqdm import tqdm

        paths = [path for listing in listings for path in listing.image_paths]
        keys = [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths]
        todo = [i for i, key in enumerate(keys) if cache.get(key) is None]
        bar = tqdm(total=len(paths), initial=len(paths) - len(todo), unit="image",
                   desc="embedding photos", disable=not progress)
        for start in range(0, len(todo), BATCH_SIZE):
            chunk = todo[start:start + BATCH_SIZE]
            vectors = self._embed([self._tensor(Path(paths[i]).read_bytes()) for i in chunk])
            for i, vector in zip(chunk, vectors, strict=True):
                cache.put(keys[i], vector)
            bar.update(len(chunk))
        bar.close()
        rows, start = [], 0
        for listing in listings:
            photos = [cache.used[keys[i]] for i in range(start, start + len(listing.image_paths))]
            start += len(listing.image_paths)
            rows.append(np.mean(photos, axis=0))  # (D,)
        return normalise(np.stack(rows))

    def embed_query(self, text: str | None = None, image: bytes | None = None) -> np.ndarray | None:
        """The unit vector of a query photo; ``None`` when there is no photo (text is lexical).

        Raises:
            BadRequest: if ``image`` cannot be decoded.
        """
        from aicore.presets import ImageDecodeError

        if image is None:
            return None
        try:
            tensor = self._tensor(image)
        except ImageDecodeError as exc:
            raise BadRequest(f"cannot use the query image: {exc}") from None
        return normalise(self._embed([tensor]))[0]


# model_args.json "arch" -> how to embed with it, and the TorchServe model that serves it.
EMBEDDERS = {"cnn": ImageEmbedder, "resnet50": ImageEmbedder}
SERVED_MODELS = {"cnn": "cnn", "resnet50": "resnet50"}


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
    """The embedder for ``run_dir`` (see :data:`EMBEDDERS`)."""
    arch = run_arch(run_dir)
    try:
        return EMBEDDERS[arch](Path(run_dir))
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(f"cannot load the model of {run_dir}: {exc}") from None
