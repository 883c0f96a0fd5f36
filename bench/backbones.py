"""Image backbones side by side, per runtime: the served archive's forward pass and handler.

    python -m bench.backbones --run efficientnet_lite0=runs/effnet --run resnet50=runs/resnet50

For each run and each runtime of ``--runtimes`` it builds the archive (``make archive RUNTIME=...``:
so the accuracy gate runs on the run's test split and its figures are reported), unpacks it and
measures, in one worker process with one torch thread as TorchServe runs it:

- **forward**: the runtime alone on ready tensors, images/s at the served batch size;
- **handler**: decode + preprocess + forward + JSON of the benchmark's photos (images/s).

The whole of ``make bench`` (TorchServe, the proxy, wrk) measures one model across layers; this
compares models cheaply. Writes ``--out/backbones.json`` and prints a table.
"""

import argparse
import json
import tempfile
from pathlib import Path

from aicore.runtime import RUNTIMES
from bench import raw
from bench.images import make_bench_images
from common.catalogue import Catalogue
from common.cli import UserError, run
from handler import archive

REPO_ROOT = Path(__file__).resolve().parents[1]


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.backbones",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="append", required=True, metavar="MODEL=RUN",
                        help="a served model name and its training run; repeat (required)")
    parser.add_argument("--runtimes", default=",".join(RUNTIMES),
                        help=f"comma-separated (default: {','.join(RUNTIMES)})")
    parser.add_argument("--duration", type=float, default=10.0,
                        help="seconds per measurement (default: 10)")
    parser.add_argument("--out", type=Path, default=Path("bench/out"),
                        help="where backbones.json goes (default: bench/out)")
    return parser


def measure(name: str, run_dir: Path, runtime: str, images: list[bytes], batch: int,
            duration: float, tmp: Path) -> dict:
    """The gate's and the speed figures of ``run_dir`` archived as ``name`` with ``runtime``."""
    mar, record = archive.build_archive(run_dir, name, tmp / runtime / name, runtime)
    model_dir = raw.unpack_archive(mar, tmp / "unpacked" / runtime / name)
    gate = record.get("accuracy_gate") or {}
    row = {"model": name, "runtime": record["runtime"], "batch": batch,
           "forward_ips": raw.throughput(model_dir, images, batch, 1, 1, duration, forward_only=True),
           "handler_ips": raw.throughput(model_dir, images, batch, 1, 1, duration),
           "agreement": gate.get("top1_agreement_with_eager"), "test_accuracy": gate.get("test_accuracy"),
           "eager_test_accuracy": gate.get("eager_test_accuracy"), "passed": gate.get("passed")}
    print(f"{name:20s} {row['runtime']:10s} forward {row['forward_ips']:7.1f} img/s  handler "
          f"{row['handler_ips']:6.1f} img/s  agreement {row['agreement']}  test acc "
          f"{row['test_accuracy']} (eager {row['eager_test_accuracy']})", flush=True)
    return row


def main(args: argparse.Namespace) -> list[dict]:
    runs = {}
    for item in args.run:
        name, sep, path = item.partition("=")
        if not sep or not Path(path).is_dir():
            raise UserError(f"--run {item!r}: expected MODEL=RUN with an existing run directory")
        runs[name] = Path(path)
    catalogue = Catalogue.from_config(REPO_ROOT / "config.properties")
    images = raw.read_images(make_bench_images(args.out / "images"))
    rows = []
    with tempfile.TemporaryDirectory(prefix="backbones-") as tmp:
        for runtime in args.runtimes.split(","):
            for name, run_dir in runs.items():
                rows.append(measure(name, run_dir, runtime, images, catalogue[name].batch_size,
                                    args.duration, Path(tmp)))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "backbones.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return rows


if __name__ == "__main__":
    run(main, get_args_parser())
