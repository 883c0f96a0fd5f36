"""Every malformed request gets a 4xx with a JSON body, whatever it contains.

Three things made a refused request a 500 (and, after the 500, a dropped kept-alive connection):

- FastAPI's 422 echoes the offending input, and ``NaN``, ``Infinity`` or a number beyond a float
  (``1e400`` parses as ``inf``) cannot be written as JSON;
- a lone UTF-16 surrogate (``"\\ud800"``) is a valid JSON escape and a valid Python ``str``;
  pydantic refuses it as a field, but no UTF-8 encoder can write the 422 that echoes it;
- a number with more than Python's 4,300 digits fails ``json.loads`` with a ``ValueError`` that is
  not a ``JSONDecodeError``.

:func:`safe_json` makes any echoed value writable; :func:`invalid_unicode` is the last line for a
surrogate that reaches an encoder another way.
"""

import logging
import math
from typing import Any

from fastapi import Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

logger = logging.getLogger(__name__)

MAX_ECHO_CHARS = 200  # an echoed input is for the caller to recognise, not a copy of the body


def safe_json(value: Any) -> Any:
    """``value`` with everything JSON cannot carry made printable: non-finite floats and huge
    numbers become strings, surrogates are escaped, long strings and containers are cut."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, int):
        text = str(value) if value.bit_length() < 1000 else f"<{value.bit_length()}-bit integer>"
        return value if abs(value) < 2**53 else text
    if isinstance(value, str):
        cut = value[:MAX_ECHO_CHARS] + ("..." if len(value) > MAX_ECHO_CHARS else "")
        return cut.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {str(safe_json(key)): safe_json(item)
                for key, item in list(value.items())[:50]}
    if isinstance(value, list | tuple):
        return [safe_json(item) for item in list(value)[:50]]
    return safe_json(str(value))


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 (``{"detail": [errors]}``), with every echoed input made writable."""
    assert isinstance(exc, RequestValidationError)
    errors = [{key: safe_json(value) for key, value in error.items() if key != "ctx"}
              | {"msg": safe_json(error.get("msg", ""))} for error in exc.errors()]
    return JSONResponse({"detail": errors}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


async def invalid_unicode(request: Request, exc: Exception) -> JSONResponse:
    """A surrogate that slipped past validation and reached an encoder: the caller's text, so 400."""
    logger.info("%s %s -> 400: %s", request.method, request.url.path, exc)
    return JSONResponse(
        {"detail": "the request holds text that is not valid Unicode (a lone UTF-16 surrogate "
                   "such as \\ud800): send valid UTF-8 text"},
        status_code=status.HTTP_400_BAD_REQUEST)
