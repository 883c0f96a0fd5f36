"""Admission control: per model, a bounded number of requests in flight and a bounded queue.

Past both bounds a prediction is refused with 503 + ``Retry-After`` *before* its upload is read
(``proxy.middleware.GateMiddleware``, outside FastAPI's multipart parsing) and before TorchServe
sees it, so an overloaded proxy spends well under a millisecond on each request it cannot serve.
An admitted request's body is read in full before it takes its slot, so a slow upload never
holds one. TorchServe's ``job_queue_size`` stays the second line. Routes that serve no one model
but cost work (search, listings, status) have fixed-size route gates (``route_gates``).

Sizing, per model, from TorchServe's describe API (``GET /models/<name>``: workers x batchSize):

- in flight = ``admission_in_flight_batches`` (1.5) x workers x batchSize: every worker computes
  a batch while the next one forms in TorchServe's queue, so the workers do not idle;
- waiting = ``admission_waiting_batches`` (0.5) x workers x batchSize: requests held in the proxy
  (their bodies unread) for at most ``admission_max_wait_s``, to absorb bursts.

An admitted request has at most 2 rounds of batches ahead of it: twice the work in the system at
the saturating concurrency (workers x batchSize), so its latency stays within ~2x the latency at
saturation however many clients push; everything beyond is refused at once.

Every prediction route has its model's gate: ``/predict/image`` the model its ``?model=`` names
(default ``AICORE_DEFAULT_MODEL``), ``/predict/text`` and ``/predict/listing`` the one model each
serves (the catalogue's model of kind text and listing, :mod:`common.catalogue`). With
config.properties' workers and batch sizes: resnet50 2 x 4 -> 12 in flight + 4 waiting,
cnn 2 x 8 -> 24 + 8, text 1 x 16 -> 24 + 8, listing 1 x 8 -> 12 + 4.
"""

import asyncio
import logging
import math
from collections import deque
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Capacity:
    """How much of one model's traffic the proxy lets through at once."""

    in_flight: int
    waiting: int
    source: str  # where the sizes came from, for logs and /health

    @classmethod
    def from_workers(cls, workers: int, batch_size: int, in_flight_batches: float,
                     waiting_batches: float) -> "Capacity":
        slots = max(1, workers) * max(1, batch_size)
        return cls(in_flight=max(1, math.ceil(in_flight_batches * slots)),
                   waiting=max(0, math.ceil(waiting_batches * slots)),
                   source=f"{workers} worker(s) x batch {batch_size}")


class Gate:
    """One model's admission: a counter of requests in flight and a FIFO of waiting ones.

    A finishing request hands its slot straight to the oldest waiter, so a waiter never races a
    newcomer for it.
    """

    def __init__(self, model: str, capacity: Capacity, max_wait_s: float) -> None:
        self.model = model
        self.capacity = capacity
        self.max_wait_s = max_wait_s
        self.in_flight = 0
        self.rejected = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @property
    def full(self) -> bool:
        """No slot free and no room to wait: :meth:`enter` would refuse at once."""
        busy = self.in_flight >= self.capacity.in_flight or bool(self._waiters)
        return busy and len(self._waiters) >= self.capacity.waiting

    def resize(self, capacity: Capacity) -> None:
        """New bounds; requests already admitted or waiting keep their place."""
        if capacity != self.capacity:
            logger.info("admission for %r: %d in flight, %d waiting (%s)", self.model,
                        capacity.in_flight, capacity.waiting, capacity.source)
        self.capacity = capacity
        while self._waiters and self.in_flight < capacity.in_flight:
            self.in_flight += 1
            self._wake_next()

    async def enter(self) -> bool:
        """Take a slot, waiting for one if the queue has room; False when refused."""
        if self.in_flight < self.capacity.in_flight and not self._waiters:
            self.in_flight += 1
            return True
        if len(self._waiters) >= self.capacity.waiting:
            self.rejected += 1
            return False
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self.max_wait_s)
        except (TimeoutError, asyncio.CancelledError):
            if waiter.done() and not waiter.cancelled():
                self.leave()  # the slot arrived just as the wait ended: pass it on
            else:
                waiter.cancel()
                self._waiters.remove(waiter)
            if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                raise
            self.rejected += 1
            return False
        return True  # leave() handed this waiter its slot (in_flight already counts it)

    def leave(self) -> None:
        """Give the slot back: to the oldest waiter if there is one."""
        if self._waiters and self.in_flight <= self.capacity.in_flight:
            self._wake_next()
        else:
            self.in_flight -= 1

    def _wake_next(self) -> None:
        self._waiters.popleft().set_result(None)


class Admission:
    """The gates of every served model, created at a default size and resized from TorchServe's
    workers x batchSize when the proxy learns them (start-up, then every GET /health)."""

    def __init__(self, models: list[str], in_flight_batches: float, waiting_batches: float,
                 default_slots: int, max_wait_s: float, retry_after_s: int,
                 route_gates: dict[str, int] | None = None) -> None:
        self.in_flight_batches = in_flight_batches
        self.waiting_batches = waiting_batches
        self.retry_after_s = retry_after_s
        default = self.capacity(1, default_slots)
        self.gates = {name: Gate(name, default, max_wait_s) for name in models}
        # Routes that cost the proxy (an index scan, a TorchServe call) but serve no one model:
        # a fixed bound, as many again may wait.
        self.route_gates = {
            name: Gate(name, Capacity(in_flight, in_flight, "AICORE_ROUTE_IN_FLIGHT"), max_wait_s)
            for name, in_flight in (route_gates or {}).items()}

    def capacity(self, workers: int, batch_size: int) -> Capacity:
        return Capacity.from_workers(workers, batch_size, self.in_flight_batches,
                                     self.waiting_batches)

    def size(self, model: str, workers: int, batch_size: int) -> None:
        if model in self.gates:
            self.gates[model].resize(self.capacity(workers, batch_size))

    def refusal_text(self, gate: Gate) -> tuple[str, dict[str, str]]:
        """The busy 503's detail and headers for ``gate``."""
        capacity = gate.capacity
        what = f"model {gate.model!r}" if gate.model in self.gates else f"{gate.model} requests"
        return (f"The proxy is at capacity for {what} ({capacity.in_flight} requests in flight "
                f"and {capacity.waiting} waiting): retry after {self.retry_after_s} s",
                {"Retry-After": str(self.retry_after_s)})
