"""``near``: which listings are near a place.

The export writes a listing's place as ``"Town, Region"`` (``"Leeds, West Yorkshire"``,
``"Hackney, London"``) and carries no coordinates, so ``near`` is a match on those names rather
than a distance. The rule:

- ``near=<town>`` keeps the listings of that town (``near=Leeds``);
- ``near=<region>`` keeps every listing of that region (``near=London`` keeps Hackney's);
- ``near=<town>, <region>`` keeps that town of that region;
- names compare case-, accent- and spacing-insensitively (``"west  yorkshire"`` = ``"West
  Yorkshire"``); a name that is both a town and a region (``"Bristol, Bristol"``) matches either.

A place that no listing of the index has is refused (HTTP 400) with the closest known names, so a
typo is never silently an empty result. A gazetteer with coordinates would turn this into a
radius search by adding a distance column; nothing else in the engine would change.
"""

from __future__ import annotations

import difflib
import re
import unicodedata

import numpy as np

from search.errors import BadRequest

MAX_SUGGESTIONS = 5


def place_key(name: str) -> str:
    """A place name as compared: accents removed, case folded, runs of spaces and punctuation
    squeezed to one space."""
    text = unicodedata.normalize("NFKD", name)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    return " ".join(re.findall(r"\w+", text))


def split_location(location: str) -> tuple[str, str]:
    """``"Hackney, London"`` -> ``("Hackney", "London")``; the text after the last comma is the
    region; a location without a comma is a town alone."""
    if "," not in location:
        return location.strip(), ""
    town, region = location.rsplit(",", 1)
    return town.strip(), region.strip()


class Places:
    """The towns and regions of an index, and the mask of the listings near a place."""

    def __init__(self, towns: np.ndarray, regions: np.ndarray) -> None:
        self.towns = towns  # (N,) place_key of each listing's town ('' when none)
        self.regions = regions  # (N,) place_key of its region
        # str(): numpy's own strings would show as np.str_('leeds') in the suggestions
        self.known = sorted({str(name) for name in (*towns, *regions)} - {""})

    def near(self, place: str) -> np.ndarray:
        """``(N,)`` bool: the listings near ``place`` (see the module docstring).

        Raises:
            BadRequest: when no listing of the index is in or near ``place``.
        """
        mask = self.match(place)
        if not mask.any():
            raise BadRequest(self._unknown(place))
        return mask

    def match(self, place: str) -> np.ndarray:
        """``(N,)`` bool: the listings near ``place``, all False when none is."""
        town, region = split_location(place)
        if region:  # "Town, Region"
            return (self.towns == place_key(town)) & (self.regions == place_key(region))
        key = place_key(town)
        if not key:
            return np.zeros(len(self.towns), bool)
        return (self.towns == key) | (self.regions == key)

    def knows(self, location: str) -> bool:
        """True when ``location`` names a town or region of the index (a listing's own place:
        ``"Town, Region"`` needs its town or its region known)."""
        town, region = split_location(location)
        return bool({place_key(town), place_key(region)} & set(self.known))

    def close(self, place: str) -> list[str]:
        """The known names closest to ``place`` (a typo's likely meaning)."""
        return difflib.get_close_matches(place_key(place), self.known, n=MAX_SUGGESTIONS,
                                         cutoff=0.6)

    def _unknown(self, place: str) -> str:
        close = self.close(place)
        hint = (f"did you mean {', '.join(repr(c) for c in close)}?" if close
                else f"known places include {', '.join(repr(c) for c in self.known[:10])}")
        return (f"unknown place near={place!r}: no listing is in a town or region of that name; "
                f"{hint}")
