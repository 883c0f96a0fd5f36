"""The served models, written once: what each one is, and what its archive version means.

``config.properties``' ``model_snapshot`` names the models TorchServe serves; each entry also
carries its ``"kind"`` (TorchServe reads the keys it knows and ignores this one). The catalogue
built from it is what the proxy (routes, admission, ``/models``, ``/capabilities``, the page),
``make serve``, the archive builder and the benchmarks read::

    catalogue = Catalogue.from_config(Path("config.properties"))
    catalogue["text"].kind            # "text"
    catalogue.names(IMAGE)            # ("cnn", "resnet50")

A kind says what a model reads and answers (:data:`KINDS`); how a request to it is encoded and
decoded is :mod:`common.codec`. Adding a kind: one :class:`Kind` here, one codec there, and its
test round-trip picks it up. The archive version ``<YYYYMMDD>-<sha8>-<runtime>`` is written by
:func:`format_version` (``handler.archive``) and read by :func:`parse_version` (the search index's
check that TorchServe serves the weights it was built with). Pure Python: the catalogue travels
inside every archive with the rest of ``common``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from common.cli import UserError
from common.properties import read_properties

IMAGE = "image"
TEXT = "text"
LISTING = "listing"
QUERY = "query"


@dataclass(frozen=True)
class Kind:
    """What a served model of this kind reads and answers."""

    name: str
    photo: bool  # reads a photo
    text: bool  # reads a listing's title and description
    classifies: bool  # answers {"category", "probabilities"}; False: an embedding only
    description: str  # for people: /models, the page's model list

    @property
    def embeds_only(self) -> bool:
        return not self.classifies


KINDS: dict[str, Kind] = {kind.name: kind for kind in (
    Kind(IMAGE, photo=True, text=False, classifies=True, description="photo"),
    Kind(TEXT, photo=False, text=True, classifies=True, description="title + description"),
    Kind(LISTING, photo=True, text=True, classifies=True,
         description="photo + title + description"),
    # A text/query encoder: the embedding of a search query, no category.
    Kind(QUERY, photo=False, text=True, classifies=False, description="search query text"),
)}

# The architecture a training run holds (model_args.json "arch") -> the kind its archive serves.
ARCH_KINDS: dict[str, str] = {"cnn": IMAGE, "resnet50": IMAGE, "text": TEXT, "multimodal": LISTING}
# The archives `make archive` builds (model_store/<name>.mar, the model's name in TorchServe) ->
# the architecture each holds; search indexes name the served model that embeds their queries
# from it (served_model_of_arch).
ARCHIVE_ARCHS: dict[str, str] = {"cnn": "cnn", "resnet50": "resnet50", "text": "text",
                                 "listing": "multimodal"}


def served_model_of_arch(arch: str) -> str:
    """The archive (served model) that serves runs of ``arch``.

    Raises:
        ValueError: when no archive holds ``arch``.
    """
    for name, archive_arch in ARCHIVE_ARCHS.items():
        if archive_arch == arch:
            return name
    raise ValueError(f"no archive serves architecture {arch!r}; archives: "
                     f"{', '.join(f'{n} ({a})' for n, a in ARCHIVE_ARCHS.items())}")


def kind_of_arch(arch: str) -> str:
    """The kind of model an architecture is served as.

    Raises:
        ValueError: for an architecture no kind serves, naming the known ones.
    """
    try:
        return ARCH_KINDS[arch]
    except KeyError:
        raise ValueError(f"architecture {arch!r} has no served kind; known: "
                         f"{', '.join(ARCH_KINDS)}") from None


@dataclass(frozen=True)
class ServedModel:
    """One model of the ``model_snapshot``: its archive, its kind and how TorchServe runs it."""

    name: str
    kind: str
    mar_name: str
    workers: int
    batch_size: int
    max_batch_delay_ms: int

    @property
    def spec(self) -> Kind:
        return KINDS[self.kind]


class Catalogue(Mapping[str, ServedModel]):
    """The served models by name, in the snapshot's order."""

    def __init__(self, models: list[ServedModel]) -> None:
        self._models = {model.name: model for model in models}

    def __getitem__(self, name: str) -> ServedModel:
        return self._models[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._models)

    def __len__(self) -> int:
        return len(self._models)

    def names(self, *kinds: str) -> tuple[str, ...]:
        """The served models of ``kinds`` (all without any), in the snapshot's order."""
        return tuple(m.name for m in self._models.values() if not kinds or m.kind in kinds)

    def kind(self, name: str) -> str | None:
        """``name``'s kind, or None when it is not in the catalogue."""
        model = self._models.get(name)
        return model.kind if model else None

    @classmethod
    def from_properties(cls, properties: dict[str, str], config: Path) -> Catalogue:
        """The catalogue of the ``model_snapshot`` in ``properties`` (read from ``config``).

        Raises:
            UserError: if the snapshot is missing, not the JSON TorchServe expects, or a model
                has no known ``kind``.
        """
        raw = properties.get("model_snapshot")
        if not raw:
            raise UserError(f"{config} has no model_snapshot: it names the models to serve")
        try:
            models = json.loads(raw)["models"]
            return cls([_served_model(name, versions, config) for name, versions in models.items()])
        except (ValueError, KeyError, TypeError, AttributeError, StopIteration) as exc:
            raise UserError(f"model_snapshot in {config} is not a TorchServe snapshot "
                            f"({exc!r}); see the comment above it") from None

    @classmethod
    def from_config(cls, config: Path) -> Catalogue:
        """The catalogue of the config file at ``config``."""
        return cls.from_properties(read_properties(config), config)


def _served_model(name: str, versions: dict, config: Path) -> ServedModel:
    entry = next(iter(versions.values()))  # one version per model: the archive's own
    kind = entry.get("kind")
    if kind not in KINDS:
        raise UserError(f"model {name!r} in {config}'s model_snapshot has kind {kind!r}: give it "
                        f"\"kind\": one of {', '.join(KINDS)}")
    return ServedModel(name, kind, entry["marName"], int(entry["minWorkers"]),
                       int(entry["batchSize"]), int(entry["maxBatchDelay"]))


def served_models(config: Path) -> Catalogue:
    """:meth:`Catalogue.from_config` (the name the serving stack and the benchmarks know)."""
    return Catalogue.from_config(config)


# --- the archive version ------------------------------------------------------------------------

_VERSION = re.compile(r"^(?P<date>\d{8})-(?P<sha8>[0-9a-f]{8})-(?P<runtime>[a-z0-9-]+)$")


@dataclass(frozen=True)
class ArchiveVersion:
    """``<YYYYMMDD>-<sha8>-<runtime>``: when ``model.pt`` was written (UTC), the first 8 hex
    digits of its SHA-256, and the runtime serving it."""

    date: str
    sha8: str
    runtime: str

    def __str__(self) -> str:
        return f"{self.date}-{self.sha8}-{self.runtime}"

    def same_weights(self, sha256: str) -> bool:
        """Do these weights have the full SHA-256 ``sha256``?"""
        return sha256[:8] == self.sha8


def weights_sha256(path: Path) -> str:
    """SHA-256 of a weights file (``model.pt``), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def format_version(weights: Path, runtime: str) -> str:
    """The archive version of the weights file ``weights`` served with ``runtime``."""
    written = datetime.fromtimestamp(Path(weights).stat().st_mtime, tz=UTC)
    return str(ArchiveVersion(f"{written:%Y%m%d}", weights_sha256(weights)[:8], runtime))


def parse_version(text: str) -> ArchiveVersion:
    """Read an archive version.

    Raises:
        ValueError: if ``text`` is not ``<YYYYMMDD>-<sha8>-<runtime>``.
    """
    match = _VERSION.match(text)
    if not match:
        raise ValueError(f"archive version {text!r} is not <YYYYMMDD>-<sha8>-<runtime>: rebuild "
                         "the archive with `make archive`")
    return ArchiveVersion(match["date"], match["sha8"], match["runtime"])
