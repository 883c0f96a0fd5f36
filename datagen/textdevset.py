"""Build a development set of real labelled text from Debian's package index on this machine.

    python -m datagen.textdevset --out data/textdev        # = make textdevset

The demo listings are generated, so a text model tuned on them alone proves little. Every Debian
machine holds real, human-written, labelled short texts: apt's package index
(``/var/lib/apt/lists/*Packages.lz4``), where each package has a one-line ``Description`` (a
synopsis, about as long as a listing title: "Real-time strategy game of ancient warfare") and a
``Section`` (games, sound, mail ...). This tool

1. reads the index files (LZ4-compressed as apt keeps them, or plain text),
2. keeps the packages of :data:`SECTIONS` -- 13 sections named after what the software is *for*,
   each with 320+ distinct synopses; the sections named after a language or a packaging role
   (python, libs, doc ...) are left out, their synopses say the answer ("Python 3 module for") --
   with a synopsis seen once only (the same text under two packages is dropped entirely, so no
   test listing has a twin in training),
3. picks a seeded random ``--per-class`` of each section (balanced classes),
4. writes them as the marketplace export's ``OUT/raw/Products.csv`` (``product_name`` = the
   synopsis, ``product_description`` empty: the long descriptions live in apt's translation files,
   which this machine does not keep; ``category`` = the section; price and location fixed), and
5. cleans it with ``python -m training.prepare --products`` into the text-only ``OUT/clean``.

Deterministic for a given index and ``--seed``. Everything lands under ``data/``, which git
ignores; nothing here is committed.
"""

import argparse
import glob
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from aicore.text import clean_text
from common.cli import UserError, run

DEFAULT_LISTS = "/var/lib/apt/lists/*Packages.lz4"
SECTIONS = ("admin", "editors", "fonts", "games", "graphics", "mail", "math", "net", "science",
            "sound", "text", "utils", "web")
PER_CLASS = 320  # the smallest of the 13 (editors) has 327 synopses no other package shares (bookworm)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m datagen.textdevset",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("data/textdev"),
                        help="working folder: raw/Products.csv, clean/ (default: data/textdev)")
    parser.add_argument("--lists", default=DEFAULT_LISTS,
                        help=f"glob of apt Packages files, .lz4 or plain (default: {DEFAULT_LISTS})")
    parser.add_argument("--per-class", type=int, default=PER_CLASS,
                        help=f"listings per section; a section with fewer is refused "
                             f"(default: {PER_CLASS})")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the choice of packages (default: 0)")
    return parser


def main(args: argparse.Namespace) -> Path:
    """Read, choose, write the export and clean it; return the cleaned directory."""
    if args.per_class < 3:
        raise UserError(f"--per-class must be at least 3 (one listing each for train, val and "
                       f"test), got {args.per_class}")
    files = sorted(glob.glob(args.lists))
    if not files:
        raise UserError(f"no apt package index matches {args.lists!r}: run apt-get update, or "
                        "pass --lists")
    packages = distinct_synopses(read_packages(files))
    chosen = choose(packages, args.per_class, args.seed)
    raw = args.out / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    export(chosen).to_csv(raw / "Products.csv", index=False)
    print(f"chosen: {args.per_class} listings x {len(SECTIONS)} sections from {len(files)} "
          f"index file(s) -> {raw / 'Products.csv'}", flush=True)
    clean = args.out / "clean"
    subprocess.run([sys.executable, "-m", "training.prepare", "--products",
                    str(raw / "Products.csv"), "--out", str(clean)], check=True)
    return clean


def read_text(path: Path) -> str:
    data = Path(path).read_bytes()
    if str(path).endswith(".lz4"):
        import lz4.frame  # only here: the rest of training does not need it

        data = lz4.frame.decompress(data)
    return data.decode("utf-8", errors="replace")


def read_packages(files: list[str]) -> pd.DataFrame:
    """package, section (its last part: "non-free/games" -> "games"), synopsis; first file wins."""
    rows: dict[str, tuple[str, str]] = {}
    for path in files:
        for stanza in read_text(Path(path)).split("\n\n"):
            fields = dict(line.split(":", 1) for line in stanza.splitlines()
                          if ":" in line and not line[:1].isspace())
            name = fields.get("Package", "").strip()
            section = fields.get("Section", "").strip().rsplit("/", 1)[-1]
            synopsis = fields.get("Description", "").strip()
            if name and section and synopsis and name not in rows:
                rows[name] = (section, synopsis)
    return pd.DataFrame([(n, s, d) for n, (s, d) in sorted(rows.items())],
                        columns=["package", "section", "synopsis"])


def distinct_synopses(packages: pd.DataFrame) -> pd.DataFrame:
    """The packages of :data:`SECTIONS` whose cleaned synopsis no other package shares."""
    packages = packages[packages["section"].isin(SECTIONS)]
    cleaned = packages["synopsis"].map(clean_text)
    return packages[~cleaned.duplicated(keep=False)].reset_index(drop=True)


def choose(packages: pd.DataFrame, per_class: int, seed: int) -> pd.DataFrame:
    """A seeded random ``per_class`` packages of every section, in name order.

    Raises:
        UserError: if a section has fewer than ``per_class``.
    """
    rng = np.random.default_rng(seed)
    picked = []
    for section in SECTIONS:
        rows = packages[packages["section"] == section]
        if len(rows) < per_class:
            raise UserError(f"section {section!r} has {len(rows)} distinct synopses, fewer than "
                            f"--per-class {per_class}")
        picked.append(rows.iloc[np.sort(rng.choice(len(rows), per_class, replace=False))])
    return pd.concat(picked, ignore_index=True)


def export(chosen: pd.DataFrame) -> pd.DataFrame:
    """The chosen packages in the export's ``Products.csv`` columns."""
    return pd.DataFrame({"id": chosen["package"], "product_name": chosen["synopsis"],
                         "category": chosen["section"], "product_description": "",
                         "price": "£0", "location": "Debian"})


if __name__ == "__main__":
    run(main, get_args_parser())
