"""The index directory: generations swapped atomically, the build lock, the embedding cache.

::

    INDEX_DIR/
      CURRENT               the live generation's name; replacing this file publishes a new index
      gen-<stamp>-<hex>/    one complete index: meta.json, listings.sqlite, vectors.faiss, vectors.npy
                            (+ text_vectors.faiss, text_vectors.npy: an image or multimodal run's
                            index also holds each listing's pretrained-text vector, meta.json's
                            "text_encoder")
                            (meta.json's "ranking": the fusion/BM25/personalisation weights that
                            `python -m search.tune` chose, see search.ranking)
      cache/<model>.npz     embeddings by input hash, reused by the next build of the same model
      eval.json             the last `python -m search.evaluate`
      .building             {"pid", "started"} while `python -m search.build` runs

A build writes a new generation next to the live one, fsyncs it, and only then rewrites
``CURRENT`` (an atomic rename), so a reader sees the old index or the new one, never a half-built
one, and an interrupted build (or a power cut) leaves the old one live. The previous generation
is kept as the fallback for a live one that cannot be read; older ones are deleted unless a
reader still uses them (:mod:`search.generations`: readers lease, the build lock is a flock).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from common.atomic import atomic_write_text
from search import generations

CURRENT_FILE = "CURRENT"
GENERATION_PREFIX = "gen-"
META_FILE = "meta.json"
RECORDS_FILE = "listings.sqlite"
FAISS_FILE = "vectors.faiss"
VECTORS_FILE = "vectors.npy"
TEXT_FAISS_FILE = "text_vectors.faiss"  # the second vector set: the pretrained text encoder's
TEXT_VECTORS_FILE = "text_vectors.npy"
CACHE_DIR = "cache"
EVAL_FILE = "eval.json"
LOCK_FILE = ".building"
FORMAT_VERSION = 2  # 2: common_words table
GENERATIONS_KEPT = 2  # the live one and the one before


def new_generation(index_dir: Path) -> Path:
    """A fresh, empty generation directory inside ``index_dir`` (not yet live)."""
    index_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    path = index_dir / f"{GENERATION_PREFIX}{stamp}-{secrets.token_hex(3)}"
    path.mkdir()
    return path


def current_generation(index_dir: Path) -> Path | None:
    """The live generation directory, or None when no index was published."""
    try:
        name = (Path(index_dir) / CURRENT_FILE).read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    path = Path(index_dir) / name
    return path if name.startswith(GENERATION_PREFIX) and path.is_dir() else None


def all_generations(index_dir: Path) -> list[Path]:
    """Every generation directory of ``index_dir``, newest first."""
    found = [p for p in Path(index_dir).iterdir()
             if p.is_dir() and p.name.startswith(GENERATION_PREFIX)]
    return sorted(found, key=lambda p: (p.stat().st_mtime, p.name), reverse=True)


def publish(index_dir: Path, generation: Path) -> None:
    """Make ``generation`` durable, then live (atomic); then delete the generations older than
    the last :data:`GENERATIONS_KEPT` that no reader uses."""
    generations.sync_tree(generation)
    atomic_write_text(index_dir / CURRENT_FILE, generation.name + "\n")
    for path in all_generations(index_dir)[GENERATIONS_KEPT:]:
        if path.name != generation.name:
            generations.delete_unused(path)


def derive_generation(index_dir: Path, source: Path, meta: dict) -> Path:
    """A new (not yet live) generation with ``source``'s files and ``meta`` as its meta.json.

    The files are hard links (the index is never written after its build, so sharing is safe and
    costs no copy), or copies where the file system has no links.
    """
    target = new_generation(index_dir)
    for path in Path(source).iterdir():
        if path.name == META_FILE or not path.is_file():
            continue
        try:
            os.link(path, target / path.name)
        except OSError:
            shutil.copy2(path, target / path.name)
    atomic_write_text(target / META_FILE, json.dumps(meta, indent=2) + "\n")
    return target


def read_meta(generation: Path) -> dict:
    return json.loads((generation / META_FILE).read_text(encoding="utf-8"))


@dataclass(frozen=True)
class IndexMeta:
    """What other packages read of a generation's ``meta.json`` (the proxy: which served model
    embeds the queries, with which weights), typed."""

    run: Path  # the training run whose model embedded the listings
    arch: str  # its architecture (model_args.json "arch")
    served_model: str  # the TorchServe model serving that architecture
    model_sha256: str  # of the run's model.pt: the served archive's version must name it
    modalities: frozenset[str]  # the query inputs the model embeds: "image", "text"
    # the second vector set of an image or multimodal index (None: none): the pretrained text
    # encoder's weights and the TorchServe model that embeds query text with them
    text_encoder: TextEncoderMeta | None = None

    @classmethod
    def from_dict(cls, meta: dict) -> IndexMeta:
        encoder = meta.get("text_encoder")
        return cls(Path(meta["run"]), meta["arch"], meta["served_model"], meta["model_sha256"],
                   frozenset(meta["modalities"]),
                   None if encoder is None else TextEncoderMeta(encoder["name"], encoder["sha256"],
                                                                encoder["served_model"]))


@dataclass(frozen=True)
class TextEncoderMeta:
    """``meta.json``'s ``"text_encoder"``: which encoder made the text vectors, which model
    serves it."""

    name: str
    sha256: str  # of its weights: the served archive's version must name it
    served_model: str  # "query"


def building_pid(index_dir: Path) -> int | None:
    """The pid of a build running on ``index_dir``, or None."""
    return generations.holder_pid(Path(index_dir) / LOCK_FILE)


def build_lock(index_dir: Path) -> generations.BuildLock:
    """Held while a build writes into ``index_dir``: one build at a time."""
    return generations.BuildLock(index_dir, LOCK_FILE)
