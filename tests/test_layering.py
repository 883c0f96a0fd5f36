"""The import rule of docs/architecture.md, checked on every source file.

``aicore`` (packed into archives) and ``common`` (the small shared layer) import nothing else of
ours; the application packages import those two and never each other, except where a package
drives another's public API (the proxy serves search and the market store; the benchmark drives
the handler and the serving stack; the data generators write the export format
``training.export`` reads). Nothing imports ``datagen`` but the tests.
"""

import ast
import subprocess
import sys

import pytest

from tests.support import REPO_ROOT

OURS = {"aicore", "common", "datagen", "training", "handler", "serving", "proxy", "search", "bench",
        "market"}
ALLOWED = {
    "aicore": {"aicore"},
    "common": {"common"},
    "datagen": {"aicore", "common", "training"},  # training.export: the export's columns
    "training": {"aicore", "common"},
    "handler": {"aicore", "common"},
    "serving": {"common"},
    "search": {"aicore", "common"},
    "market": {"aicore", "common"},  # the store knows nothing of search or HTTP
    "proxy": {"aicore", "common", "search", "market"},  # serves search and the write path
    "bench": {"aicore", "common", "handler", "serving", "search"},  # bench.search drives search
}


def imported_packages(path) -> set[str]:
    """Our top-level packages that ``path`` imports, anywhere in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & OURS


@pytest.mark.parametrize("package", sorted(p for p in ALLOWED if (REPO_ROOT / p).is_dir()))
def test_package_imports_only_the_layers_below_it(package: str) -> None:
    directory = REPO_ROOT / package
    bad = {}
    for path in sorted(directory.rglob("*.py")):
        extra = imported_packages(path) - ALLOWED[package] - {package}
        if extra:
            bad[str(path.relative_to(REPO_ROOT))] = sorted(extra)
    assert bad == {}


def test_every_package_has_a_rule() -> None:
    packages = {p.parent.name for p in REPO_ROOT.glob("*/__init__.py")} - {"tests"}
    assert packages <= set(ALLOWED), f"add {sorted(packages - set(ALLOWED))} to ALLOWED"


def test_common_imports_nothing_heavy() -> None:
    code = ("import sys, importlib, pkgutil, common\n"
            "for m in pkgutil.iter_modules(common.__path__): importlib.import_module('common.' + m.name)\n"
            "print(sorted({'torch', 'torchvision', 'pandas', 'numpy', 'PIL', 'fastapi', 'httpx'}"
            " & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"
