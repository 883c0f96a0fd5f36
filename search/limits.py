"""What one search query may ask of the index, checked before any work is done.

The proxy calls :func:`check_limits` before it asks TorchServe to embed the query, and the engine
calls it again before it scans anything: a query over a limit costs a few comparisons, never an
embedding or a scan. The bounds on the scan itself: at most ``MAX_K`` results, each retriever
reads at most the index's ranking depth (``FUSION_DEPTH`` untuned, at most
``MAX_FUSION_DEPTH`` when ``search.tune`` chose deeper), at most ``MAX_VIEWED`` viewed listings shape the
ranking, and a filtered dense search probes at most ``1 / MAX_PROBED_SHARE_FILTERED`` of the IVF
lists (``search.vectors``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from search.errors import BadRequest

if TYPE_CHECKING:
    from search.engine import SearchRequest

RETRIEVERS = ("fused", "dense", "lexical", "text_dense")  # text_dense: an index with text vectors
MAX_K = 100
FUSION_DEPTH = 100
MAX_FUSION_DEPTH = 400
MAX_VIEWED = 50
MAX_TEXT_CHARS = 500


def check_limits(request: SearchRequest, max_k: int = MAX_K) -> str:
    """Refuse a request over a limit; return its text stripped ('' when none).

    Raises:
        BadRequest: the text is too long, ``k`` is out of range, an unknown retriever, a price
            below 0, not finite or min above max, too many viewed listings.
    """
    text = (request.text or "").strip()
    if len(text) > MAX_TEXT_CHARS:
        raise BadRequest(f"the query text has {len(text)} characters; the limit is "
                         f"{MAX_TEXT_CHARS}")
    if not 1 <= request.k <= max_k:
        raise BadRequest(f"k={request.k} is out of range: ask for 1 to {max_k} results")
    if request.retriever not in RETRIEVERS:
        raise BadRequest(f"unknown retriever {request.retriever!r}: choose one of "
                         f"{', '.join(RETRIEVERS)}")
    for name in ("min_price", "max_price"):
        value = getattr(request, name)
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise BadRequest(f"{name}={value} must be a number >= 0")
    if request.min_price is not None and request.max_price is not None \
            and request.min_price > request.max_price:
        raise BadRequest(f"min_price={request.min_price:g} is above max_price="
                         f"{request.max_price:g}: swap them or widen the range")
    if len(request.viewed) > MAX_VIEWED:
        raise BadRequest(f"viewed lists {len(request.viewed)} listings; send the latest "
                         f"{MAX_VIEWED} at most")
    return text
