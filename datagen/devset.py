"""Build a development set of real pictures from Debian's Open Clip Art package.

    python -m datagen.devset --out data/devset        # = make devset

The demo data is synthetic, and tuning a recipe on it alone hid that the original recipe
underfits real pictures. Debian ships ``openclipart-png`` (~130 MB): thousands of real drawings
sorted into topic folders (animals, food, people, transportation ...). This tool

1. fetches the package with ``apt-get download`` (unless ``--deb`` names a file already here),
2. unpacks it with ``dpkg-deb -x`` into ``OUT/pkg``,
3. copies a seeded random choice of at most ``--per-class`` PNGs of each of :data:`CLASSES`
   into ``OUT/raw/<class>/`` (every file under a topic folder, sub-folders included), chosen among
   the folder's distinct files (:func:`distinct_files`), and
4. cleans ``OUT/raw`` with ``python -m training.prepare --image-folder`` into ``OUT/clean``.

With the defaults: 13 classes, 1,449 files chosen (``buildings`` has 59 distinct ones,
``plants`` 61, ``geography`` 96, ``office`` 110, ``tools`` 123, the others 125 each), 1,439
cleaned. Everything lands under ``data/``, which git ignores; nothing here is committed.
"""

import argparse
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from common.cli import UserError, run
from training.prepare_duplicates import find_duplicates

PACKAGE = "openclipart-png"
PACKAGE_ROOT = Path("usr/share/openclipart/png")  # inside the unpacked package
# 13 topic folders with at least 70 pictures; "special", "unsorted" and the tiny folders are left
# out because their names say nothing about what is drawn.
CLASSES = ("animals", "buildings", "computer", "food", "geography", "office", "people", "plants",
           "recreation", "shapes", "signs_and_symbols", "tools", "transportation")
PER_CLASS = 125  # 13 x 125 ~ 1,600 images: a few CPU-minutes per CNN epoch budget


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m datagen.devset",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("data/devset"),
                        help="working folder: deb/, pkg/, raw/, clean/ (default: data/devset)")
    parser.add_argument("--deb", type=Path, default=None,
                        help=f"a downloaded {PACKAGE} .deb to use instead of apt-get download "
                             "(default: download it)")
    parser.add_argument("--per-class", type=int, default=PER_CLASS,
                        help=f"at most this many pictures per class (default: {PER_CLASS})")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the choice of pictures (default: 0)")
    parser.add_argument("--size", type=int, default=128,
                        help="side of the cleaned images in pixels (default: 128)")
    return parser


def main(args: argparse.Namespace) -> Path:
    """Fetch, unpack, choose and clean; return the cleaned directory."""
    if args.per_class < 3:
        raise UserError(f"--per-class must be at least 3 (one picture each for train, val and "
                       f"test), got {args.per_class}")
    deb = args.deb or download(args.out / "deb")
    tree = unpack(deb, args.out / "pkg")
    counts = choose(tree, args.out / "raw", args.per_class, args.seed)
    print("chosen: " + ", ".join(f"{name} {n}" for name, n in counts.items())
          + f" ({sum(counts.values())} images)", flush=True)
    clean = args.out / "clean"
    subprocess.run([sys.executable, "-m", "training.prepare", "--image-folder",
                    str(args.out / "raw"), "--out", str(clean), "--size", str(args.size)],
                   check=True)
    return clean


def download(folder: Path) -> Path:
    """``apt-get download`` the package into ``folder`` (reused when already there)."""
    folder.mkdir(parents=True, exist_ok=True)
    found = sorted(folder.glob(f"{PACKAGE}_*.deb"))
    if not found:
        if shutil.which("apt-get") is None:
            raise UserError(f"apt-get is not available: download the Debian package {PACKAGE} by "
                           "hand and pass it with --deb")
        result = subprocess.run(["apt-get", "download", PACKAGE], cwd=folder,
                                capture_output=True, text=True)
        found = sorted(folder.glob(f"{PACKAGE}_*.deb"))
        if result.returncode != 0 or not found:
            raise UserError(f"apt-get download {PACKAGE} failed ({result.stderr.strip()}); run "
                           "apt-get update first, or pass a downloaded .deb with --deb")
    return found[-1]


def unpack(deb: Path, folder: Path) -> Path:
    """``dpkg-deb -x`` the package into ``folder``; return its picture tree."""
    if not deb.is_file():
        raise UserError(f"--deb {deb} does not exist")
    tree = folder / PACKAGE_ROOT
    if not tree.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        try:
            subprocess.run(["dpkg-deb", "-x", str(deb), str(folder)], check=True,
                           capture_output=True, text=True)
        except FileNotFoundError:
            raise UserError("dpkg-deb is not available: unpack the package by hand") from None
        except subprocess.CalledProcessError as exc:
            raise UserError(f"dpkg-deb -x {deb} failed: {exc.stderr.strip()}") from None
    if not tree.is_dir():
        raise UserError(f"{deb} holds no {PACKAGE_ROOT}: is it the {PACKAGE} package?")
    return tree


def choose(tree: Path, raw: Path, per_class: int, seed: int) -> dict[str, int]:
    """Copy a seeded choice of at most ``per_class`` PNGs of each class folder into ``raw``.

    The choice is among the class's distinct pictures (:func:`distinct_files`). ``raw`` is
    rebuilt from scratch, so a different ``--per-class`` or ``--seed`` never mixes with an
    earlier choice. Returns the count per class.
    """
    missing = [name for name in CLASSES if not (tree / name).is_dir()]
    if missing:
        raise UserError(f"{tree} lacks the class folder(s) {missing}")
    if raw.exists():
        shutil.rmtree(raw)
    counts = {}
    for index, (name, files) in enumerate(distinct_files(tree).items()):
        rng = np.random.default_rng([seed, index])
        picked = sorted(files[i] for i in rng.permutation(len(files))[:per_class])
        for path in picked:
            # Flatten sub-folders into the file name: "birds__eagle_01.png" stays unique.
            target = raw / name / "__".join(path.relative_to(tree / name).parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        counts[name] = len(picked)
    return counts


def distinct_files(tree: Path) -> dict[str, list[Path]]:
    """Each class's PNG files, sorted, without the package's byte-identical copies.

    Open Clip Art files some drawings twice: 1,050 of the 7,572 files of :data:`CLASSES` copy
    another, 443 pictures sit in more than one class (a road sign in ``signs_and_symbols`` and
    ``transportation``). :func:`training.prepare_duplicates.find_duplicates`'s rule applies to
    the files' bytes here, before the choice, so that every class gets its ``--per-class``
    distinct pictures: a copy under another class is never chosen, of copies in one class the
    first is. ``training.prepare`` then applies it to the cleaned pixels.
    """
    files = {name: sorted((tree / name).rglob("*.png")) for name in CLASSES}
    dropped = find_duplicates((str(path), name, hashlib.sha256(path.read_bytes()).hexdigest())
                              for name, paths in files.items() for path in paths).dropped
    return {name: [path for path in paths if str(path) not in dropped]
            for name, paths in files.items()}


if __name__ == "__main__":
    run(main, get_args_parser())
