"""The retry budget: retries stay a bounded share of the traffic, so they never amplify overload.

A token bucket (the scheme of Finagle's and gRPC's retry budgets): every request deposits
``ratio`` of a token, every retry withdraws a whole one, and the bucket holds at most ``reserve``
tokens (it starts full, so a burst of failures on a quiet proxy is still retried). Over any
stretch of traffic, retries <= reserve + ratio x requests: with the defaults (10, 0.1) a dead
worker's batch is retried, while a TorchServe failing every request costs at most ~10 % more
calls instead of 2x.
"""

import threading


class RetryBudget:
    """Token bucket of retries; thread-safe, O(1) per call."""

    def __init__(self, ratio: float, reserve: float) -> None:
        if not 0 <= ratio <= 1:
            raise ValueError(f"retry ratio must be within [0, 1], got {ratio}")
        self.ratio = ratio
        self.reserve = reserve
        self._tokens = reserve
        self._lock = threading.Lock()
        self.retries = 0
        self.refused = 0

    def deposit(self) -> None:
        """One request was made."""
        with self._lock:
            self._tokens = min(self.reserve, self._tokens + self.ratio)

    def withdraw(self) -> bool:
        """True when a retry is allowed now (and counts it); False when the budget is spent."""
        with self._lock:
            if self._tokens >= 1:
                self._tokens -= 1
                self.retries += 1
                return True
            self.refused += 1
            return False
