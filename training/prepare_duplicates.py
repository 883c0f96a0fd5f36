"""Pictures that occur more than once in a dataset being prepared: one copy kept, conflicts dropped.

The split keeps a product's images together so that no test picture was seen in training
(:mod:`training.split`). The same picture under two products breaks that: two listings with one
photo, one drawing filed in two topic folders. A copy in training and one in test is a test
picture the model has already seen, and it flatters whichever model memorises best; a copy under
another category is a test picture no model can get right. So:

- copies within one category: the first image (by id) is kept, the others are dropped;
- the same picture under several categories: every copy is dropped, since its label is unknown.

That is for a folder of pictures, where a copy is nothing but a copy. In a marketplace export
two listings that share a photo are still two listings, which search must find, so an export
keeps them and the report only lists them (:func:`drops_copies`).

Pictures are compared by :func:`picture_digest` of what training reads (the cleaned pixels), so a
file re-encoded or saved with other metadata is the same picture. A resized, cropped or
recoloured variant is not: a perceptual hash would find those too, but it also joins different
drawings of simple shapes, and nothing is dropped on a guess.
"""

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from PIL import Image

COPY = "the same picture as a kept image"
CONFLICT = "the same picture under several categories"


def picture_digest(picture: Image.Image) -> str:
    """A digest of a picture's pixels (mode and size included), not of its file's bytes."""
    digest = hashlib.sha256(f"{picture.mode} {picture.size}\n".encode())
    digest.update(picture.tobytes())
    return digest.hexdigest()


def drops_copies(source: str) -> bool:
    """Whether a dataset from ``source`` ("folder" or "export") drops copies or only lists them."""
    return source == "folder"


@dataclass(frozen=True)
class Duplicates:
    """What :func:`find_duplicates` found, and what it drops and why."""

    drop: bool  # False: the groups are only listed
    dropped: dict[str, str]  # image id -> COPY or CONFLICT; empty unless drop
    copies: list[list[str]]  # per picture kept once: [the kept id, the dropped ids ...]
    conflicts: list[dict[str, list[str]]]  # per picture: {"categories": [...], "images": [...]}


def find_duplicates(images: Iterable[tuple[str, str, str]], drop: bool = True) -> Duplicates:
    """Group ``(image_id, category, digest)`` by digest; with ``drop``, decide which ids to drop.

    Deterministic: ids are sorted within a group and groups by their first id, so the kept copy
    and the report do not depend on the order the images were read in.
    """
    groups: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for image_id, category, digest in images:
        groups[digest].append((image_id, category))
    dropped: dict[str, str] = {}
    copies, conflicts = [], []
    for members in sorted((sorted(g) for g in groups.values() if len(g) > 1), key=lambda g: g[0]):
        ids = [image_id for image_id, _ in members]
        categories = sorted({category for _, category in members})
        if len(categories) > 1:
            dropped.update(dict.fromkeys(ids, CONFLICT))
            conflicts.append({"categories": categories, "images": ids})
        else:
            dropped.update(dict.fromkeys(ids[1:], COPY))
            copies.append(ids)
    return Duplicates(drop, dropped if drop else {}, copies, conflicts)
