"""The images of one split of a training run, read from its cleaned dataset.

The archive build needs the run's test split (the accuracy gate) and training split (int8
calibration). The cleaned dataset's ``manifest.csv`` is :mod:`common.dataset_format`'s; the split
file is written by ``training.split`` (``split.json``: ``{"seed", "train", "val", "test"}`` lists of
image ids), which ``handler`` may not import, so its name and shape are read here. Both the split
format and a manifest lookup by image id belong in :mod:`common` (next to the dataset format).
"""

import csv
import json
from pathlib import Path

from aicore.categories import INDEX_TO_NAME_FILE, read_index_to_name
from common.dataset_format import SPLIT_FILE, MANIFEST_FILE
from common.runs import read_run_config


class SplitError(ValueError):
    """The run's dataset or split cannot be read; the message names the file and the fix."""


def run_data_dir(run_dir: Path) -> Path:
    """The cleaned dataset a run was trained on, from its ``config.json`` (``"data"``)."""
    try:
        return read_run_config(run_dir).data
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SplitError(f"cannot tell which dataset {run_dir} was trained on ({exc}); "
                         "pass it with --data (DATA=)") from None


def read_split_images(run_dir: Path, data_dir: Path, split: str, limit: int | None = None
                      ) -> tuple[list[Path], list[int]]:
    """Paths of the cleaned images of ``split`` and their label indices in the run's labels.

    Args:
        limit: keep at most this many, evenly spaced over the split (deterministic).

    Raises:
        SplitError: if a file is missing or the split is empty.
    """
    run_dir, data_dir = Path(run_dir), Path(data_dir)
    manifest = data_dir / MANIFEST_FILE
    if not manifest.is_file():
        raise SplitError(f"{manifest} is missing: the archive build reads the run's {split} images "
                         f"from its dataset; pass the cleaned dataset {run_dir} was trained on with "
                         "--data (DATA=)")
    try:
        ids = json.loads((run_dir / SPLIT_FILE).read_text(encoding="utf-8"))[split]
    except (OSError, ValueError, KeyError) as exc:
        raise SplitError(f"cannot read the {split} split of {run_dir / SPLIT_FILE}: {exc}") from None
    with manifest.open(newline="", encoding="utf-8") as f:
        rows = {row["image_id"]: row for row in csv.DictReader(f)}
    index = {name: i for i, name in enumerate(read_index_to_name(run_dir / INDEX_TO_NAME_FILE))}
    missing = [i for i in ids if i not in rows or rows[i]["category"] not in index]
    if missing:
        raise SplitError(f"{manifest} does not fit {run_dir}: {len(missing)} {split} image(s) such as "
                         f"{missing[0]!r} are missing or have an unknown category; pass the dataset the "
                         "run was trained on with --data (DATA=)")
    if not ids:
        raise SplitError(f"{run_dir / SPLIT_FILE} has no {split} images: the archive build needs them")
    if limit is not None and len(ids) > limit:
        step = len(ids) / limit
        ids = [ids[int(k * step)] for k in range(limit)]
    return [data_dir / rows[i]["path"] for i in ids], [index[rows[i]["category"]] for i in ids]
