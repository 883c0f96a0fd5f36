"""What every ``python -m training.<tool>`` entry point shares: one-line errors, clean exit codes."""

import argparse
import sys
from collections.abc import Callable


class CLIError(Exception):
    """A problem the user can fix (bad path, missing column, empty dataset ...).

    The message is printed as one line, naming the problem and what is expected; no traceback.
    """


def run(main: Callable[[argparse.Namespace], object], parser: argparse.ArgumentParser,
        argv: list[str] | None = None) -> None:
    """Parse ``argv``, call ``main(args)`` and turn expected failures into exit codes.

    Exit codes: 0 success, 2 a :class:`CLIError` (usage/data problem), 130 interrupted (Ctrl-C).
    """
    args = parser.parse_args(argv)
    try:
        main(args)
    except CLIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: everything written before now is intact", file=sys.stderr)
        sys.exit(130)
