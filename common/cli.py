"""What every ``python -m <package>.<tool>`` entry point shares: one-line errors, clean exit codes."""

import argparse
import sys
from collections.abc import Callable


class UserError(Exception):
    """A problem the user can fix (bad path, missing column, empty dataset, busy port ...).

    Raised by library code as well as by command-line tools; :func:`run` prints the message as one
    line naming the problem and what is expected, with no traceback.
    """


def run(main: Callable[[argparse.Namespace], object], parser: argparse.ArgumentParser,
        argv: list[str] | None = None) -> None:
    """Parse ``argv``, call ``main(args)`` and turn expected failures into exit codes.

    Exit codes: 0 success, 2 a :class:`UserError` (usage/data problem), 130 interrupted (Ctrl-C).
    """
    args = parser.parse_args(argv)
    try:
        main(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: everything written before now is intact", file=sys.stderr)
        sys.exit(130)


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a number of at least 0."""
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value
