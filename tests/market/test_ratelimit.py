"""market.ratelimit: a token bucket per key."""

from market.ratelimit import RateLimiter, retry_after


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_the_rate():
    clock = Clock()
    limiter = RateLimiter(rate=2.0, burst=3, clock=clock)

    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == 0.5  # one more token in 1/2 s
    assert limiter.take("b") == 0.0  # keys are separate
    clock.now = 0.5
    assert limiter.take("a") == 0.0


def test_retry_after_is_whole_seconds_at_least_one():
    assert retry_after(0.01) == "1" and retry_after(1.2) == "2"
