"""Log lines a client cannot forge.

A request path is percent-decoded before anything logs it, so ``GET /%0D%0A127.0.0.1 - "GET
/admin" 200`` put a line of the client's choosing into the access log. :func:`install` makes every
log record escape control characters (CR, LF, ESC ...) in its arguments -- the values a format
string interpolates, which is where request data goes -- as ``\\x0d``-style text.
"""

import logging
import re
from typing import Any

CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def escape(text: str) -> str:
    return CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


def _safe(arg: Any) -> Any:
    return escape(arg) if isinstance(arg, str) else arg


def install() -> None:
    """Wrap the logging record factory (once per process)."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, "escapes_control_characters", False):
        return

    def make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        if isinstance(record.args, tuple):
            record.args = tuple(_safe(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: _safe(value) for key, value in record.args.items()}
        return record

    make_record.escapes_control_characters = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(make_record)
