"""The report of a ``training.prepare`` run: what was kept and what was dropped, by reason.

Written as ``report.json`` and ``report.txt`` into the cleaned directory and printed.
"""

from __future__ import annotations

import argparse
from collections import Counter
from typing import TYPE_CHECKING

from common.cli import UserError
from training.prepare_duplicates import Duplicates

if TYPE_CHECKING:  # prepare imports this module: only its types are needed here
    from training.prepare import Collected, Job
UNREADABLE = "unreadable image file"
SOURCE_NAMES = {"export": "export", "folder": "image folder", "products": "products table"}


def build_report(args: argparse.Namespace, collected: Collected, kept: list[Job],
                 statuses: Counter, failures: dict[str, str], duplicates: Duplicates,
                 seconds: float) -> dict:
    """Everything kept and dropped, by reason; ``total == kept + sum(dropped)`` in each section."""
    image_drops = Counter(collected.image_drops)
    if failures:
        image_drops[UNREADABLE] += len(failures)
    image_drops.update(duplicates.dropped.values())
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
        "duplicates": {"dropped": duplicates.drop, "copies": duplicates.copies,
                       "conflicts": duplicates.conflicts},
        "warnings": [],
        "seconds": round(seconds, 1),
    }
    if collected.source == "export":
        report["inputs"] = {"products": str(args.products), "images": str(args.images),
                            "image_dir": str(args.image_dir)}
        report["products"] = _product_section(collected, kept)
    else:
        report["inputs"] = {"image_folder": str(args.image_folder)}
        report["warnings"] += [_lost_category_warning(c, duplicates)
                               for c in _lost_categories(collected, kept)]
    return report


def _sorted_counts(counts: Counter) -> dict[str, int]:
    return {reason: n for reason, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if n}


def _lost_categories(collected: Collected, kept: list[Job]) -> list[str]:
    """Categories that had image files, none of them readable."""
    return sorted({j.category for j in collected.jobs} - {j.category for j in kept})


def _lost_category_warning(category: str, duplicates: Duplicates) -> str:
    if any(category in conflict["categories"] for conflict in duplicates.conflicts):
        why = "every image file is unreadable or the same picture as another category's"
    else:
        why = "every image file is unreadable"
    return f"category folder {category!r}: {why}; the category is left out"


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
             f"{size}x{size} px from the {SOURCE_NAMES[report['source']]} into {report['out']} "
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
    lines += _duplicate_lines(report["duplicates"])
    lines.append("kept images per category:")
    lines += [f"  {n:6d}  {name}" for name, n in report["categories"].items()]
    lines += [f"warning: {w}" for w in report["warnings"]]
    return "\n".join(lines) + "\n"


def _duplicate_lines(duplicates: dict, shown: int = 10) -> list[str]:
    """The pictures under several categories (a sign of mislabelled data), and an export's
    shared photos, which are kept."""
    lines = []
    conflicts = duplicates["conflicts"]
    if not duplicates["dropped"] and duplicates["copies"]:
        lines.append(f"photos shared by listings of one category, kept: "
                     f"{len(duplicates['copies'])} (report.json: duplicates)")
    if conflicts:
        fate = "every copy dropped" if duplicates["dropped"] else "kept"
        lines.append(f"the same picture under several categories, {fate} ({len(conflicts)}):")
        lines += [f"  {' = '.join(item['images'])}" for item in conflicts[:shown]]
        if len(conflicts) > shown:
            lines.append(f"  ... {len(conflicts) - shown} more in report.json")
    return lines


def nothing_usable(report: dict) -> UserError:
    reasons = ", ".join(f"{reason}: {n}" for reason, n in report["images"]["dropped"].items())
    hint = f" ({reasons})" if reasons else ""
    warnings = f"; {report['warnings'][0]}" if report["warnings"] else ""
    return UserError(f"no usable images: {report['images']['total']} image entries read, all "
                    f"dropped{hint}{warnings}")
