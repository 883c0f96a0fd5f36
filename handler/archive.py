"""Pack trained runs into TorchServe model archives: ``model_store/{cnn,resnet50,text,listing}.mar``.

``make archive`` calls :func:`main`; tests call :func:`build_archive`. Each ``.mar`` holds

- the handler TorchServe imports in the worker, by the kind of model the run holds
  (:data:`common.catalogue.ARCH_KINDS`): ``image_handler.py`` (:mod:`handler.image_handler`) for
  the image models, ``listing_handler.py`` (:mod:`handler.listing_handler`) for ``text`` and
  ``listing`` (the multimodal model), and the ``handler`` package holding only their shared base
  (:mod:`handler.base`);
- ``model.pt`` (the best-validation ``state_dict``), ``model_args.json`` and ``index_to_name.json``
  exactly as training wrote them;
- the ``aicore`` package, so the worker preprocesses and builds the model with the very code
  training used (the unpacked archive is on the worker's ``sys.path``);
- ``runtime.json`` and, for an ONNX runtime, ``model.onnx`` (``--runtime``; :mod:`handler.runtimes`
  exports, calibrates and checks the accuracy gate on the run's test split).

The archive version is ``<date>-<hash>-<runtime>`` (:func:`common.catalogue.format_version`):
the UTC date ``model.pt`` was written, the first 8 hex digits of its SHA-256 and the runtime,
so ``GET /models/<name>`` names the weights and the runtime being served (``?customized=true``
adds the whole ``runtime.json``). Archives are rebuilt on every call (a few seconds) and moved
into place atomically.
"""

import argparse
import logging
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aicore
import common
import handler
from aicore.categories import INDEX_TO_NAME_FILE
from aicore.models import MODEL_ARGS_FILE, MODEL_FILE, load_trained
from model_archiver.model_archiver_config import ModelArchiverConfig
from model_archiver.model_packaging import generate_model_archive
from common.catalogue import ARCHIVE_ARCHS, IMAGE, LISTING, TEXT, format_version, kind_of_arch
from common.cli import UserError, run
from aicore.runtime import EAGER
from handler.runtimes import AUTO, CHOICES, GateError, SplitError, prepare_runtime
from handler.split_images import run_data_dir

logger = logging.getLogger(__name__)

IMAGE_HANDLER_FILE = Path(__file__).with_name("image_handler.py")
LISTING_HANDLER_FILE = Path(__file__).with_name("listing_handler.py")
# The packages every worker imports besides the handler: the shared core and the small shared
# layer (the served-model contract, the TorchServe environment variable ...).
PACKED_PACKAGES = (Path(aicore.__file__).parent, Path(common.__file__).parent)
# ... and of this package only the handlers' shared base (the rest builds archives).
PACKED_HANDLER_FILES = ("__init__.py", "base.py")
HANDLER_PACKAGE = Path(handler.__file__).parent
RUN_FILES = (MODEL_FILE, MODEL_ARGS_FILE, INDEX_TO_NAME_FILE)
# Archive name -> the architecture its run must hold (model_args.json "arch").
ARCHIVES = ARCHIVE_ARCHS
# The text and listing archives run eager PyTorch: ONNX Runtime runs the exported EmbeddingBag
# ~1.5x slower than eager (`python -m bench.text_runtime`; docs/serving.md).
EAGER_ONLY = ("text", "listing")
# The handler file of each kind of model.
HANDLERS = {IMAGE: IMAGE_HANDLER_FILE, TEXT: LISTING_HANDLER_FILE, LISTING: LISTING_HANDLER_FILE}


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Build model_store/{cnn,resnet50,efficientnet_lite0,text,listing}.mar from "
                    "trained runs.")
    parser.add_argument("--cnn-run", type=Path, default=Path("runs/cnn"),
                        help="training run directory of the CNN (default: runs/cnn)")
    parser.add_argument("--resnet-run", type=Path, default=Path("runs/resnet50"),
                        help="training run directory of ResNet-50 (default: runs/resnet50)")
    parser.add_argument("--effnet-run", type=Path, default=Path("runs/efficientnet_lite0"),
                        help="training run directory of EfficientNet-Lite0 "
                             "(default: runs/efficientnet_lite0)")
    parser.add_argument("--text-run", type=Path, default=Path("runs/text"),
                        help="training run directory of the text model (default: runs/text)")
    parser.add_argument("--listing-run", type=Path, default=Path("runs/multimodal"),
                        help="training run directory of the multimodal model, served as "
                             "listing.mar (default: runs/multimodal)")
    parser.add_argument("--models", nargs="+", choices=tuple(ARCHIVES), default=tuple(ARCHIVES),
                        metavar="NAME", help="which archives to build, of "
                        f"{', '.join(ARCHIVES)} (default: all)")
    parser.add_argument("--out", type=Path, default=Path("model_store"),
                        help="model store the .mar files are written to (default: model_store)")
    parser.add_argument("--runtime", choices=CHOICES, default=AUTO,
                        help="inference runtime inside the archives; auto = the fastest that passes "
                             "the accuracy gate on the run's test split (default: auto)")
    parser.add_argument("--data", type=Path, default=None,
                        help="cleaned dataset the runs were trained on, for the accuracy gate and "
                             "int8 calibration (default: the 'data' of each run's config.json)")
    return parser


def main(args: argparse.Namespace) -> list[Path]:
    """Build the archives of ``args.models``; return their paths.

    Raises:
        UserError: if a run directory is missing or incomplete (nothing is written then).
    """
    all_runs = {"cnn": args.cnn_run, "resnet50": args.resnet_run,
                "efficientnet_lite0": args.effnet_run, "text": args.text_run,
                "listing": args.listing_run}
    runs = {name: run_dir for name, run_dir in all_runs.items() if name in args.models}
    for name, run_dir in runs.items():  # check both before writing anything
        check_run(run_dir, name)
    built = []
    for name, run_dir in runs.items():
        path, record = build_archive(run_dir, name, args.out, args.runtime, args.data)
        print(f"{path}  version {archive_version(run_dir, record['runtime'])}  from {run_dir}"
              f"{gate_summary(record)}")
        built.append(path)
    return built


def gate_summary(record: dict) -> str:
    gate = record.get("accuracy_gate")
    if not gate:
        return ""
    return (f"  (agreement with eager {gate['top1_agreement_with_eager']:.1%}, test accuracy "
            f"{gate['test_accuracy']:.3f} vs {gate['eager_test_accuracy']:.3f})")


def check_run(run_dir: Path, name: str) -> None:
    """Make sure ``run_dir`` is a finished training run of the architecture ``name`` serves.

    Raises:
        UserError: naming the missing directory or file and the command that makes it.
    """
    run_dir = Path(run_dir)
    arch = ARCHIVES.get(name, name)
    how = f"train it with `make train MODEL={arch}` (or pass another run directory)"
    if not run_dir.is_dir():
        raise UserError(f"run directory {run_dir} for {name}.mar does not exist: {how}")
    missing = [f for f in RUN_FILES if not (run_dir / f).is_file()]
    if missing:
        raise UserError(f"run directory {run_dir} lacks {', '.join(missing)} (an unfinished "
                       f"run?): {how}")
    try:
        _, _, model_args = load_trained(run_dir)
    except (ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise UserError(f"run directory {run_dir} does not hold a loadable model: {exc}") from None
    if model_args.get("arch") != arch:
        raise UserError(f"run directory {run_dir} holds a {model_args.get('arch')!r} model, but "
                       f"{name}.mar must hold {arch!r}")


def archive_version(run_dir: Path, runtime: str) -> str:
    """The archive version of the run's ``model.pt`` served with ``runtime``."""
    return format_version(Path(run_dir) / MODEL_FILE, runtime)


def build_archive(run_dir: Path, name: str, out_dir: Path, runtime: str = AUTO,
                  data_dir: Path | None = None) -> tuple[Path, dict]:
    """Pack the run in ``run_dir`` into ``out_dir/<name>.mar`` with ``runtime``.

    Args:
        data_dir: the cleaned dataset the run was trained on (default: its ``config.json``'s);
            not read for ``runtime="eager"``.

    Returns:
        The archive's path and its ``runtime.json`` record.

    Raises:
        UserError: if ``run_dir`` is not a finished run (see :func:`check_run`), its dataset cannot
            be read, or the runtime fails the accuracy gate (nothing is written then).
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    check_run(run_dir, name)
    if name in EAGER_ONLY:  # measured: no optimised runtime is faster for them (docs/serving.md)
        runtime = EAGER
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{name}-", dir=out_dir) as tmp:
        tmp = Path(tmp)
        extra = stage_extra_files(run_dir, tmp / "extra")
        try:
            data = data_dir if data_dir is not None or runtime == "eager" else run_data_dir(run_dir)
            record = prepare_runtime(runtime, run_dir, extra, data)
        except (GateError, SplitError) as exc:
            raise UserError(f"{name}.mar: {exc}") from None
        config = ModelArchiverConfig(
            model_name=name,
            handler=str(HANDLERS[kind_of_arch(ARCHIVES.get(name, name))]),
            version=archive_version(run_dir, record["runtime"]),
            serialized_file=str(run_dir / MODEL_FILE),
            extra_files=str(extra),
            export_path=str(tmp),
            force=True,
        )
        with private_tempdir(tmp / "staging"):
            generate_model_archive(config)
        target = out_dir / f"{name}.mar"
        (tmp / f"{name}.mar").replace(target)  # atomic: a reader never sees half an archive
    logger.info("wrote %s", target)
    return target, record


def stage_extra_files(run_dir: Path, extra: Path) -> Path:
    """Lay out the files the archiver copies into the archive root.

    ``--extra-files`` given a directory copies its *contents* flat into the archive, so the
    staged folder holds ``aicore/``, ``common/`` and ``handler/`` (packages again inside the
    archive) next to the labels.
    """
    extra.mkdir(parents=True)
    pack_shared_code(extra)
    for name in (MODEL_ARGS_FILE, INDEX_TO_NAME_FILE):
        shutil.copy2(run_dir / name, extra / name)
    return extra


def pack_shared_code(extra: Path) -> None:
    """Copy what every handler imports besides itself into ``extra`` (an archive's root): the
    ``aicore`` and ``common`` packages and the handlers' base (package ``handler``, base only)."""
    for package in PACKED_PACKAGES:
        shutil.copytree(package, extra / package.name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (extra / HANDLER_PACKAGE.name).mkdir()
    for name in PACKED_HANDLER_FILES:
        shutil.copy2(HANDLER_PACKAGE / name, extra / HANDLER_PACKAGE.name / name)


@contextmanager
def private_tempdir(path: Path) -> Iterator[None]:
    """Point :mod:`tempfile` at ``path`` while the archiver runs.

    The archiver stages files in ``<tempdir>/<model name>`` and deletes that folder first, so two
    builds of the same model at once (``make archive`` next to a test run) would wipe each other.
    """
    path.mkdir(parents=True, exist_ok=True)
    previous = tempfile.tempdir
    tempfile.tempdir = str(path)
    try:
        yield
    finally:
        tempfile.tempdir = previous


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    run(main, get_args_parser())
