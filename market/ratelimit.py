"""Token buckets: at most ``rate`` actions per second per key, bursts up to ``burst``.

In-process: each proxy process keeps its own buckets, so N processes behind one address allow N
times the rate (docs/marketplace.md). A shared limit would live in the store or a Redis.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

MAX_KEYS = 100_000  # the oldest buckets are forgotten past this (a full bucket is no loss)


class RateLimiter:
    """``take(key)`` -> 0 when allowed, else the seconds until one more action is allowed."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                wait = 0.0
            else:
                self._buckets[key] = (tokens, now)
                wait = (1 - tokens) / self.rate
            while len(self._buckets) > MAX_KEYS:
                self._buckets.pop(next(iter(self._buckets)))
        return wait


def retry_after(wait_s: float) -> str:
    """The ``Retry-After`` header value: whole seconds, at least 1."""
    return str(max(1, math.ceil(wait_s)))
