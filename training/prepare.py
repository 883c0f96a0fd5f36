"""Clean a marketplace export, or a folder tree of images, into the dataset that training reads.

    python -m training.prepare --products Products.csv --images Images.csv --image-dir images/ --out CLEAN
    python -m training.prepare --image-folder ROOT --out CLEAN

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
is a warning in the report. The run fails if no image at all is usable.
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
from training.checkpoint import atomic_write_text
from training.cli import CLIError, run
from training.export import (IMAGE_COLUMNS, PRODUCT_COLUMNS, REQUIRED_IMAGE_COLUMNS,
                             REQUIRED_PRODUCT_COLUMNS, clean_image_rows, clean_products,
                             read_export_csv)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")
IMAGES_DIR = "images"
MANIFEST_FILE = "manifest.csv"
DATASET_FILE = "dataset.json"
PRODUCTS_FILE = "products.csv"
REPORT_JSON = "report.json"
REPORT_TXT = "report.txt"
MANIFEST_COLUMNS = ("image_id", "product_id", "category", "path")
UNREADABLE = "unreadable image file"
_TEMP_SUFFIX = ".tmp"
_SOURCE_NAMES = {"export": "export", "folder": "image folder"}


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
    warnings: list[str] = field(default_factory=list)
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
                        help="the export's Images.csv (with --products)")
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
    if args.products is not None and (args.images is None or args.image_dir is None):
        raise CLIError("--products needs --images (Images.csv) and --image-dir (the folder of "
                       "<id>.jpg files) as well")
    if args.image_folder is not None and (args.images is not None or args.image_dir is not None):
        raise CLIError("--images and --image-dir belong to an export (--products); "
                       "--image-folder reads categories from folder names alone")
    if not 16 <= args.size <= 2048:
        raise CLIError(f"--size must be between 16 and 2048 pixels, got {args.size}")
    if args.workers < 1:
        raise CLIError(f"--workers must be at least 1, got {args.workers}")
    if args.max_pixels < 1:
        raise CLIError(f"--max-pixels must be at least 1, got {args.max_pixels}")


def check_existing_output(out: Path, size: int, source: str) -> None:
    """Refuse to add images of another size (or from another kind of source) to ``out``.

    Raises:
        CLIError: if ``out`` already holds a dataset of a different size or source.
    """
    meta_path = out / DATASET_FILE
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            existing_size, existing_source = int(meta["image_size"]), str(meta["source"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CLIError(f"{meta_path} is unreadable ({exc}); delete {out} or choose another "
                           "--out") from None
    else:  # an earlier run may have been interrupted before writing dataset.json
        images = out / IMAGES_DIR
        first_png = next(images.rglob("*.png"), None) if images.is_dir() else None
        if first_png is None:
            return
        with Image.open(first_png) as img:
            existing_size, existing_source = img.width, source
    if existing_size != size:
        raise CLIError(f"{out} already holds images cleaned at {existing_size} px; --size {size} "
                       f"would mix sizes: use --size {existing_size} or another --out")
    if existing_source != source:
        raise CLIError(f"{out} already holds a dataset prepared from the "
                       f"{_SOURCE_NAMES.get(existing_source, existing_source)}; this run reads the "
                       f"{_SOURCE_NAMES[source]}: choose another --out")


def collect_export(products_csv: Path, images_csv: Path, image_dir: Path) -> Collected:
    """Read and clean the export's tables; one :class:`Job` per image row with a file on disk."""
    products_raw, product_bad_lines = read_export_csv(products_csv, PRODUCT_COLUMNS,
                                                      REQUIRED_PRODUCT_COLUMNS)
    images_raw, image_bad_lines = read_export_csv(images_csv, IMAGE_COLUMNS,
                                                  REQUIRED_IMAGE_COLUMNS)
    if not Path(image_dir).is_dir():
        raise CLIError(f"--image-dir {image_dir} is not a directory: expected the export's "
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
                        f"{IMAGES_DIR}/{row.image_id}.png"))
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
        raise CLIError(f"--image-folder {root} is not a directory: expected ROOT/<category>/"
                       "<image files>")
    dropped: Counter = Counter()
    categories = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    dropped["outside a category folder"] = sum(
        1 for p in root.iterdir() if p.is_file() and not p.name.startswith("."))
    if not categories:
        raise CLIError(f"--image-folder {root} has no category folders: expected ROOT/<category>/"
                       f"<image files> with extensions {', '.join(IMAGE_EXTENSIONS)}")
    jobs, warnings = [], []
    for folder in categories:
        found = 0
        for path in _walk_files(folder):
            if path.suffix.lower() not in IMAGE_EXTENSIONS:
                dropped["not an image extension"] += 1
                continue
            image_id = path.relative_to(root).as_posix()
            jobs.append(Job(image_id, image_id, folder.name, path, f"{IMAGES_DIR}/{image_id}.png"))
            found += 1
        if not found:
            # A category without pictures is almost always a copy gone wrong; training on the
            # others would silently drop a class, so stop and say which folder.
            raise CLIError(f"category folder {folder} holds no image files (expected "
                           f"{', '.join(IMAGE_EXTENSIONS)}): add images or remove the folder")
    total = len(jobs) + sum(dropped.values())
    return Collected(source="folder", jobs=jobs, image_total=total, image_drops=dropped,
                     warnings=warnings)


def _walk_files(folder: Path) -> Iterator[Path]:
    """Files under ``folder``, recursively, in a stable order, skipping hidden ones.

    Symlinked sub-folders are not followed: a link cycle would make the walk endless.
    """
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name


def clean_one(task: tuple[str, str, int, int]) -> tuple[str, str | None]:
    """Clean one image file into a PNG (runs in a worker process).

    Args:
        task: (source file, target PNG, size, max pixels).

    Returns:
        ``("done", None)`` if the PNG already existed, ``("cleaned", None)``, or
        ``("failed", message)`` when the file cannot be read or decoded.
    """
    source, target, size, max_pixels = task
    if os.path.exists(target):
        return "done", None
    try:
        picture = load_image(Path(source).read_bytes(), size, max_pixels)
    except (ImageDecodeError, OSError) as exc:
        return "failed", str(exc)
    except Exception as exc:  # noqa: BLE001 -- a decoder can raise anything on a crafted file;
        return "failed", f"{type(exc).__name__}: {exc}"  # one bad file must not stop the run
    temp = f"{target}.{os.getpid()}{_TEMP_SUFFIX}"
    picture.save(temp, format="PNG")
    os.replace(temp, target)  # atomic: a PNG that exists is complete
    return "cleaned", None


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
                 workers: int) -> tuple[Counter, dict[str, str]]:
    """Clean every job's image into ``out``; return status counts and image_id -> error message."""
    for parent in {(out / job.path).parent for job in jobs}:
        parent.mkdir(parents=True, exist_ok=True)
    for stale in (out / IMAGES_DIR).rglob(f"*.png.*{_TEMP_SUFFIX}"):
        stale.unlink()  # left by a run that was killed mid-write
    tasks = [(str(job.source), str(out / job.path), size, max_pixels) for job in jobs]
    statuses: Counter = Counter()
    failures: dict[str, str] = {}
    results = _map_in_processes(clean_one, tasks, workers)
    for job, (status, error) in tqdm(zip(jobs, results, strict=True), total=len(jobs),
                                     desc="cleaning images", unit="img", disable=None):
        statuses[status] += 1
        if error is not None:
            failures[job.image_id] = error
    return statuses, failures


def build_report(args: argparse.Namespace, collected: Collected, kept: list[Job],
                 statuses: Counter, failures: dict[str, str], seconds: float) -> dict:
    """Everything kept and dropped, by reason; ``total == kept + sum(dropped)`` in each section."""
    image_drops = Counter(collected.image_drops)
    if failures:
        image_drops[UNREADABLE] += len(failures)
    by_id = {job.image_id: job for job in collected.jobs}
    report = {
        "source": collected.source,
        "out": str(args.out),
        "image_size": args.size,
        "images": {"total": collected.image_total, "kept": len(kept),
                   "dropped": _sorted_counts(image_drops)},
        "categories": dict(sorted(Counter(job.category for job in kept).items())),
        "cleaned_now": statuses["cleaned"],
        "already_clean": statuses["done"],
        "unreadable": [{"image_id": i, "file": str(by_id[i].source), "error": e}
                       for i, e in sorted(failures.items())],
        "warnings": list(collected.warnings),
        "seconds": round(seconds, 1),
    }
    if collected.source == "export":
        report["inputs"] = {"products": str(args.products), "images": str(args.images),
                            "image_dir": str(args.image_dir)}
        report["products"] = _product_section(collected, kept)
    else:
        report["inputs"] = {"image_folder": str(args.image_folder)}
        report["warnings"] += [f"category folder {c!r}: every image file is unreadable; the "
                               "category is left out" for c in _lost_categories(collected, kept)]
    return report


def _sorted_counts(counts: Counter) -> dict[str, int]:
    return {reason: n for reason, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if n}


def _lost_categories(collected: Collected, kept: list[Job]) -> list[str]:
    """Categories that had image files, none of them readable."""
    return sorted({j.category for j in collected.jobs} - {j.category for j in kept})


def _product_section(collected: Collected, kept: list[Job]) -> dict:
    """Products: the table's drops plus products left without any usable image."""
    drops = Counter(collected.product_drops)
    with_rows = collected.products_with_image_rows
    with_kept = {job.product_id for job in kept}
    ids = collected.products["id"]
    drops["no usable image"] += int((ids.isin(with_rows) & ~ids.isin(with_kept)).sum())
    drops["no image row"] += int((~ids.isin(with_rows)).sum())
    return {"total": collected.product_total, "kept": len(with_kept),
            "dropped": _sorted_counts(drops)}


def format_report(report: dict) -> str:
    """The report as text: a headline, then kept/dropped by reason, unreadable files, warnings."""
    images, size = report["images"], report["image_size"]
    lines = [f"prepared {images['kept']} images in {len(report['categories'])} categories at "
             f"{size}x{size} px from the {_SOURCE_NAMES[report['source']]} into {report['out']} "
             f"({report['cleaned_now']} cleaned now, {report['already_clean']} already clean, "
             f"{report['seconds']} s)"]
    sections = [("products", "product rows"), ("images", "image rows")] \
        if report["source"] == "export" else [("images", "files")]
    for key, noun in sections:
        section = report[key]
        lines.append(f"{key}: {section['total']} {noun}, {section['kept']} kept, "
                     f"{section['total'] - section['kept']} dropped")
        lines += [f"  {n:6d}  {reason}" for reason, n in section["dropped"].items()]
    if report["unreadable"]:
        lines.append(f"unreadable image files ({len(report['unreadable'])}):")
        lines += [f"  {item['file']}: {item['error']}" for item in report["unreadable"]]
    lines.append("kept images per category:")
    lines += [f"  {n:6d}  {name}" for name, n in report["categories"].items()]
    lines += [f"warning: {w}" for w in report["warnings"]]
    return "\n".join(lines) + "\n"


def _publish(out: Path, contents: dict[str, str]) -> None:
    """Write every file atomically, in order (dataset.json last: it marks the set complete)."""
    for name, text in contents.items():
        atomic_write_text(out / name, text)


def write_outputs(out: Path, kept: list[Job], collected: Collected, report: dict,
                  image_size: int) -> None:
    manifest = pd.DataFrame([(j.image_id, j.product_id, j.category, j.path) for j in kept],
                            columns=list(MANIFEST_COLUMNS)).sort_values("image_id")
    dataset = {"image_size": image_size, "source": collected.source, "num_images": len(kept),
               "categories": sorted({job.category for job in kept})}
    contents = {MANIFEST_FILE: manifest.to_csv(index=False, lineterminator="\n")}
    if collected.products is not None:
        products = collected.products[collected.products["id"].isin(manifest["product_id"])]
        contents[PRODUCTS_FILE] = products.to_csv(index=False, lineterminator="\n")
    contents[REPORT_JSON] = json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    contents[REPORT_TXT] = format_report(report)
    contents[DATASET_FILE] = json.dumps(dataset, indent=2, ensure_ascii=False) + "\n"
    _publish(out, contents)


def _nothing_usable(report: dict) -> CLIError:
    reasons = ", ".join(f"{reason}: {n}" for reason, n in report["images"]["dropped"].items())
    hint = f" ({reasons})" if reasons else ""
    warnings = f"; {report['warnings'][0]}" if report["warnings"] else ""
    return CLIError(f"no usable images: {report['images']['total']} image entries read, all "
                    f"dropped{hint}{warnings}")


def main(args: argparse.Namespace) -> dict:
    """Clean the source into ``args.out``; return the report (also written and printed).

    Raises:
        CLIError: on a missing file or column, a size mismatch with ``args.out``, or when no
            image at all is usable.
    """
    start = time.perf_counter()
    _check_args(args)
    out = Path(args.out)
    source = "export" if args.products is not None else "folder"
    check_existing_output(out, args.size, source)
    collected = collect_export(args.products, args.images, args.image_dir) \
        if source == "export" else collect_folder(args.image_folder)
    statuses, failures = clean_images(collected.jobs, out, args.size, args.max_pixels,
                                      args.workers)
    kept = [job for job in collected.jobs if job.image_id not in failures]
    report = build_report(args, collected, kept, statuses, failures,
                          time.perf_counter() - start)
    if not kept:
        raise _nothing_usable(report)
    write_outputs(out, kept, collected, report, args.size)
    print(format_report(report), end="")
    return report


if __name__ == "__main__":
    run(main, get_args_parser())
