"""Clean a marketplace export, or a folder tree of images, into the dataset that training reads.

    python -m training.prepare --products Products.csv --images Images.csv --image-dir images/ --out CLEAN
    python -m training.prepare --image-folder ROOT --out CLEAN
    python -m training.prepare --products Products.csv --out CLEAN     (text only, no images)

The export's tables are cleaned by :mod:`training.export`; ``--image-folder`` reads torchvision's
ImageFolder layout (``ROOT/<category>/**/<image>``, the folder name is the category). Every image
goes through :func:`aicore.presets.load_image` -- the very function the TorchServe handler calls
-- in parallel over the cores, and is saved as a lossless PNG. Writes into CLEAN:

- ``images/<image_id>.png``: size x size RGB (folder mode: ``images/<relative path>.png``);
- ``manifest.csv``: ``image_id, product_id, category, path`` (path relative to CLEAN; in folder
  mode ``product_id == image_id`` = the file's path relative to ROOT);
- ``dataset.json``: ``{"image_size", "source", "num_images", "categories"}``;
- ``products.csv`` (export only): the cleaned products, ``price`` as float64, ``root_category``;
- ``report.json`` and ``report.txt``: rows kept and dropped by reason (also printed).

Re-running is cheap: a PNG already in CLEAN is reused (PNGs appear atomically, so one that exists
is complete). The tables and the report are written at the end, each via a temporary file and a
rename, so a failed or interrupted run leaves an earlier run's output intact. CLEAN never mixes
image sizes or sources: a different ``--size`` stops the run. An unreadable image is reported and
skipped. A category folder without image files stops the run; one whose files are all unreadable
is a warning in the report. The run fails if no image at all is usable. In folder mode a picture
that occurs more than once (equal cleaned pixels) is kept once, and one filed under several
categories is dropped, so that the split cannot put a copy of a test picture into training; an
export's listings that share a photo are kept and listed (:mod:`training.prepare_duplicates`).
"""

import argparse
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from PIL import Image
from tqdm import tqdm

from aicore.presets import IMAGE_SIZE, MAX_IMAGE_PIXELS, ImageDecodeError, load_image
from common.atomic import atomic_write
from common.cli import UserError, run
from common.dataset_format import (DATASET_FILE, IMAGE_SUFFIXES, IMAGES_DIR, PRODUCTS_FILE,
                                   REPORT_JSON, REPORT_TXT, image_path, write_clean_dir)
from training.prepare_duplicates import drops_copies, find_duplicates, picture_digest
from training.prepare_report import SOURCE_NAMES, build_report, format_report, nothing_usable
from training.prepare_text import prepare_products
from training.export import (IMAGE_COLUMNS, PRODUCT_COLUMNS, REQUIRED_IMAGE_COLUMNS,
                             REQUIRED_PRODUCT_COLUMNS, clean_image_rows, clean_products,
                             read_export_csv)



@dataclass
class Job:
    """One image to clean: where it comes from, where its PNG goes (relative to CLEAN)."""

    image_id: str
    product_id: str
    category: str
    source: Path
    path: str


@dataclass
class Collected:
    """What a source yields before any image is decoded."""

    source: str  # "export" or "folder"
    jobs: list[Job]
    image_total: int  # image rows (export) or files (folder) read
    image_drops: Counter  # reason -> count, before decoding
    # export only: the cleaned products (before image checks) and the product rows' drops
    products: pd.DataFrame | None = None
    product_total: int = 0
    product_drops: Counter = field(default_factory=Counter)
    products_with_image_rows: set[str] = field(default_factory=set)


def _default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.prepare",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--products", type=Path, metavar="CSV", help="the export's Products.csv")
    source.add_argument("--image-folder", type=Path, metavar="ROOT",
                        help="a folder tree ROOT/<category>/<image files> instead of an export")
    parser.add_argument("--images", type=Path, metavar="CSV",
                        help="the export's Images.csv (with --products; without it and "
                             "--image-dir, a text-only dataset of the products is written: "
                             "training.prepare_text)")
    parser.add_argument("--image-dir", type=Path, metavar="DIR",
                        help="the export's folder of <Images.id>.jpg files (with --products)")
    parser.add_argument("--out", type=Path, required=True, metavar="CLEAN",
                        help="the cleaned dataset directory")
    parser.add_argument("--size", type=int, default=IMAGE_SIZE, metavar="PX",
                        help=f"side of the square cleaned images, in pixels (default: {IMAGE_SIZE})")
    workers = _default_workers()
    parser.add_argument("--workers", type=int, default=workers, metavar="N",
                        help=f"processes decoding images (default: the usable cores, {workers})")
    parser.add_argument("--max-pixels", type=int, default=MAX_IMAGE_PIXELS, metavar="N",
                        help="refuse images with more pixels than this, as the handler does "
                             f"(default: {MAX_IMAGE_PIXELS})")
    return parser


def _check_args(args: argparse.Namespace) -> None:
    if args.products is not None and (args.images is None) != (args.image_dir is None):
        raise UserError("--products needs both --images (Images.csv) and --image-dir (the folder "
                        "of <id>.jpg files), or neither for a text-only dataset")
    if args.image_folder is not None and (args.images is not None or args.image_dir is not None):
        raise UserError("--images and --image-dir belong to an export (--products); "
                       "--image-folder reads categories from folder names alone")
    if not 16 <= args.size <= 2048:
        raise UserError(f"--size must be between 16 and 2048 pixels, got {args.size}")
    if args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")
    if args.max_pixels < 1:
        raise UserError(f"--max-pixels must be at least 1, got {args.max_pixels}")


def check_existing_output(out: Path, size: int, source: str) -> None:
    """Refuse to add images of another size (or from another kind of source) to ``out``.

    Raises:
        UserError: if ``out`` already holds a dataset of a different size or source.
    """
    meta_path = out / DATASET_FILE
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            existing_size, existing_source = int(meta["image_size"]), str(meta["source"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{meta_path} is unreadable ({exc}); delete {out} or choose another "
                           "--out") from None
    else:  # an earlier run may have been interrupted before writing dataset.json
        images = out / IMAGES_DIR
        first_png = next(images.rglob("*.png"), None) if images.is_dir() else None
        if first_png is None:
            return
        with Image.open(first_png) as img:
            existing_size, existing_source = img.width, source
    if existing_size != size:
        raise UserError(f"{out} already holds images cleaned at {existing_size} px; --size {size} "
                       f"would mix sizes: use --size {existing_size} or another --out")
    if existing_source != source:
        raise UserError(f"{out} already holds a dataset prepared from the "
                       f"{SOURCE_NAMES.get(existing_source, existing_source)}; this run reads the "
                       f"{SOURCE_NAMES[source]}: choose another --out")


def collect_export(products_csv: Path, images_csv: Path, image_dir: Path) -> Collected:
    """Read and clean the export's tables; one :class:`Job` per image row with a file on disk."""
    products_raw, product_bad_lines = read_export_csv(products_csv, PRODUCT_COLUMNS,
                                                      REQUIRED_PRODUCT_COLUMNS)
    images_raw, image_bad_lines = read_export_csv(images_csv, IMAGE_COLUMNS,
                                                  REQUIRED_IMAGE_COLUMNS)
    if not Path(image_dir).is_dir():
        raise UserError(f"--image-dir {image_dir} is not a directory: expected the export's "
                       "folder of <Images.id>.jpg files")
    products, product_drops = clean_products(products_raw)
    rows, image_drops = clean_image_rows(images_raw, set(products_raw["id"]), products)
    for drops, bad_lines in ((product_drops, product_bad_lines), (image_drops, image_bad_lines)):
        if bad_lines:
            drops["malformed CSV line"] += bad_lines
    files = _files_by_stem(Path(image_dir))
    jobs = []
    for row in rows.itertuples(index=False):
        source = files.get(row.image_id)
        if source is None:
            image_drops["missing image file"] += 1
            continue
        jobs.append(Job(row.image_id, row.product_id, row.category, source,
                        image_path(row.image_id)))
    return Collected(
        source="export", jobs=jobs, image_total=len(images_raw) + image_bad_lines,
        image_drops=image_drops, products=products,
        product_total=len(products_raw) + product_bad_lines, product_drops=product_drops,
        products_with_image_rows=set(rows["product_id"]))


def _files_by_stem(image_dir: Path) -> dict[str, Path]:
    """Map file name without extension -> path; ``<id>.jpg`` wins over other extensions."""
    files: dict[str, Path] = {}
    with os.scandir(image_dir) as entries:
        for entry in entries:
            if not entry.is_file():
                continue
            stem, ext = os.path.splitext(entry.name)
            if stem not in files or ext.lower() == ".jpg":
                files[stem] = Path(entry.path)
    return files


def collect_folder(root: Path) -> Collected:
    """Read an ImageFolder tree: one :class:`Job` per image file under a category folder."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"--image-folder {root} is not a directory: expected ROOT/<category>/"
                       "<image files>")
    dropped: Counter = Counter()
    categories = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    dropped["outside a category folder"] = sum(
        1 for p in root.iterdir() if p.is_file() and not p.name.startswith("."))
    if not categories:
        raise UserError(f"--image-folder {root} has no category folders: expected ROOT/<category>/"
                       f"<image files> with extensions {', '.join(IMAGE_SUFFIXES)}")
    jobs = []
    for folder in categories:
        found = 0
        for path in _walk_files(folder):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                dropped["not an image extension"] += 1
                continue
            image_id = path.relative_to(root).as_posix()
            jobs.append(Job(image_id, image_id, folder.name, path, image_path(image_id)))
            found += 1
        if not found:
            # A category without pictures is almost always a copy gone wrong; training on the
            # others would silently drop a class, so stop and say which folder.
            raise UserError(f"category folder {folder} holds no image files (expected "
                           f"{', '.join(IMAGE_SUFFIXES)}): add images or remove the folder")
    total = len(jobs) + sum(dropped.values())
    return Collected(source="folder", jobs=jobs, image_total=total, image_drops=dropped)


def _walk_files(folder: Path) -> Iterator[Path]:
    """Files under ``folder``, recursively, in a stable order, skipping hidden ones.

    Symlinked sub-folders are not followed: a link cycle would make the walk endless.
    """
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name


def clean_one(task: tuple[str, str, int, int]) -> tuple[str, str | None, str | None]:
    """Clean one image file into a PNG (runs in a worker process).

    Args:
        task: (source file, target PNG, size, max pixels).

    Returns:
        ``(status, error, digest)``: ``("done", None, digest)`` if the PNG already existed,
        ``("cleaned", None, digest)``, or ``("failed", message, None)`` when the file cannot be
        read or decoded; the digest is :func:`~training.prepare_duplicates.picture_digest` of
        the cleaned picture, so that copies can be found.
    """
    source, target, size, max_pixels = task
    if os.path.exists(target):
        with Image.open(target) as png:
            return "done", None, picture_digest(png.convert("RGB"))
    try:
        picture = load_image(Path(source).read_bytes(), size, max_pixels)
    except (ImageDecodeError, OSError) as exc:
        return "failed", str(exc), None
    except Exception as exc:  # noqa: BLE001 -- a decoder can raise anything on a crafted file;
        return "failed", f"{type(exc).__name__}: {exc}", None  # one bad file must not stop the run
    atomic_write(Path(target), lambda f: picture.save(f, format="PNG"))  # a PNG that exists is complete
    return "cleaned", None, picture_digest(picture.convert("RGB"))


def _map_in_processes(fn: Callable, tasks: list, workers: int) -> Iterator:
    """``map(fn, tasks)`` in order, over ``workers`` processes when that pays off."""
    workers = min(workers, len(tasks))
    if workers <= 1:
        yield from map(fn, tasks)
        return
    # Chunks amortise the inter-process round trip; ~8 per worker keep the progress bar moving.
    chunksize = max(1, min(64, len(tasks) // (workers * 8)))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(fn, tasks, chunksize=chunksize)


def clean_images(jobs: list[Job], out: Path, size: int, max_pixels: int,
                 workers: int) -> tuple[Counter, dict[str, str], dict[str, str]]:
    """Clean every job's image into ``out``.

    Returns:
        Status counts, image_id -> error message of the failures, and image_id -> picture
        digest of the others.
    """
    for parent in {(out / job.path).parent for job in jobs}:
        parent.mkdir(parents=True, exist_ok=True)
    for stale in (out / IMAGES_DIR).rglob(".*.png.*.tmp"):
        stale.unlink()  # left by a run that was killed mid-write
    tasks = [(str(job.source), str(out / job.path), size, max_pixels) for job in jobs]
    statuses: Counter = Counter()
    failures: dict[str, str] = {}
    digests: dict[str, str] = {}
    results = _map_in_processes(clean_one, tasks, workers)
    for job, (status, error, digest) in tqdm(zip(jobs, results, strict=True), total=len(jobs),
                                             desc="cleaning images", unit="img", disable=None):
        statuses[status] += 1
        if error is not None:
            failures[job.image_id] = error
        else:
            digests[job.image_id] = digest
    return statuses, failures, digests


def write_outputs(out: Path, kept: list[Job], collected: Collected, report: dict,
                  image_size: int) -> None:
    """The tables and the report, published by :func:`common.dataset_format.write_clean_dir`."""
    info = {"image_size": image_size, "source": collected.source, "num_images": len(kept),
            "categories": sorted({job.category for job in kept})}
    extra = {}
    if collected.products is not None:
        kept_products = {job.product_id for job in kept}
        products = collected.products[collected.products["id"].isin(kept_products)]
        extra[PRODUCTS_FILE] = products.to_csv(index=False, lineterminator="\n")
    extra[REPORT_JSON] = json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    extra[REPORT_TXT] = format_report(report)
    write_clean_dir(out, [(j.image_id, j.product_id, j.category, j.path) for j in kept], info, extra)


def main(args: argparse.Namespace) -> dict:
    """Clean the source into ``args.out``; return the report (also written and printed).

    Raises:
        UserError: on a missing file or column, a size mismatch with ``args.out``, or when no
            image at all is usable.
    """
    start = time.perf_counter()
    _check_args(args)
    out = Path(args.out)
    source = "folder" if args.products is None else "export" if args.images else "products"
    check_existing_output(out, args.size, source)
    if source == "products":
        return prepare_products(args.products, out, args.size)
    collected = collect_export(args.products, args.images, args.image_dir) \
        if source == "export" else collect_folder(args.image_folder)
    statuses, failures, digests = clean_images(collected.jobs, out, args.size, args.max_pixels,
                                               args.workers)
    readable = [job for job in collected.jobs if job.image_id not in failures]
    duplicates = find_duplicates(((job.image_id, job.category, digests[job.image_id])
                                  for job in readable), drop=drops_copies(collected.source))
    kept = [job for job in readable if job.image_id not in duplicates.dropped]
    report = build_report(args, collected, kept, statuses, failures, duplicates,
                          time.perf_counter() - start)
    if not kept:
        raise nothing_usable(report)
    write_outputs(out, kept, collected, report, args.size)
    print(format_report(report), end="")
    return report


if __name__ == "__main__":
    run(main, get_args_parser())
