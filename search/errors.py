"""What a search can refuse, each with the HTTP status the proxy answers.

Every message names the bad value and what to send instead; the proxy passes it on as ``detail``.
"""

from common.cli import UserError


class SearchError(UserError):
    """A search problem the caller can act on; ``status_code`` is the proxy's answer."""

    status_code = 400


class BadRequest(SearchError):
    """The query itself is wrong: no text and no image, ``k`` out of range, min > max price ..."""

    status_code = 400


class NotFound(SearchError):
    """A listing id the index does not hold."""

    status_code = 404


class IndexUnavailable(SearchError):
    """No usable index: never built, being built, or built for another model. 503 + what to run."""

    status_code = 503

    def __init__(self, detail: str, retry_after_s: int | None = None) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s
