"""TorchServe's ``config.properties``: a Java-properties reader and an editor that keeps comments.

``make serve`` derives the running config from the repository's with other addresses; the
``model_snapshot`` it holds (the served models, their kinds and batching) is read by
:mod:`common.catalogue`: one parser for all of them.
"""

from pathlib import Path

from common.cli import UserError


def logical_lines(text: str) -> list[tuple[str, list[str]]]:
    """Split Java-properties text into ``(logical line, its physical lines)``.

    A line ending in an odd number of backslashes continues on the next one (``model_snapshot``
    spans several lines); continuation lines lose their leading whitespace, as in Java.
    """
    entries: list[tuple[str, list[str]]] = []
    logical, physical = "", []
    for line in text.splitlines():
        physical.append(line)
        part = line.lstrip() if len(physical) > 1 else line
        trailing = len(part) - len(part.rstrip("\\"))
        if trailing % 2 == 1:
            logical += part[:-1]
            continue
        entries.append((logical + part, physical))
        logical, physical = "", []
    if physical:
        entries.append((logical, physical))
    return entries


def _key_value(line: str) -> tuple[str, str] | None:
    stripped = line.strip()
    if not stripped or stripped[0] in "#!" or "=" not in stripped:
        return None
    key, value = stripped.split("=", 1)
    return key.strip(), value.strip()


def read_properties_text(text: str) -> dict[str, str]:
    """Parse TorchServe ``config.properties`` text (``key=value`` lines, ``#`` comments, ``\\``
    continuations)."""
    pairs = (_key_value(line) for line, _ in logical_lines(text))
    return dict(pair for pair in pairs if pair)


def read_properties(path: Path) -> dict[str, str]:
    """Read a TorchServe ``config.properties`` file (see :func:`read_properties_text`).

    Raises:
        UserError: if the file does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"TorchServe config {path} does not exist")
    return read_properties_text(path.read_text(encoding="utf-8"))


def derive_config(text: str, overrides: dict[str, str]) -> str:
    """Return ``text`` with the values of ``overrides``' keys replaced (missing keys appended)."""
    out, done = [], set()
    for line, physical in logical_lines(text):
        pair = _key_value(line)
        if pair and pair[0] in overrides:
            out.append(f"{pair[0]}={overrides[pair[0]]}")
            done.add(pair[0])
        else:
            out.extend(physical)
    out.extend(f"{key}={value}" for key, value in overrides.items() if key not in done)
    return "\n".join(out) + "\n"
