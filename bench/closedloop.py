"""A closed-loop HTTP/1.1 load generator that counts answers by status, for overload and faults.

wrk (``bench/loadgen.py``) reports one latency histogram over every answer; under overload that
mixes fast 503s with the admitted requests. This client keeps the admitted (200) latencies apart,
counts every status, and behaves like a well-mannered client: after a 503 carrying
``Retry-After`` it waits that long before its next request (a client that hammers a refusing
server measures only how fast 503s can be written).

Pure asyncio on raw sockets with pre-built request bytes: ~0.1 ms of client CPU per request, so
the client does not steal the 2-core server's CPU. Loopback only, bounded by a duration.
"""

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import numpy as np

HEADER_END = b"\r\n\r\n"


@dataclass
class ClosedLoopResult:
    clients: int
    duration_s: float
    statuses: Counter = field(default_factory=Counter)
    ok_latencies_s: list[float] = field(default_factory=list)
    reject_latencies_s: list[float] = field(default_factory=list)
    connection_errors: int = 0

    @property
    def goodput_rps(self) -> float:
        return len(self.ok_latencies_s) / self.duration_s

    def summary(self) -> dict:
        def pct(values: list[float], q: float) -> float | None:
            return round(float(np.percentile(values, q)) * 1000, 1) if values else None

        return {
            "clients": self.clients, "duration_s": round(self.duration_s, 2),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "goodput_rps": round(self.goodput_rps, 2),
            "ok_p50_ms": pct(self.ok_latencies_s, 50), "ok_p99_ms": pct(self.ok_latencies_s, 99),
            "reject_p50_ms": pct(self.reject_latencies_s, 50),
            "reject_p99_ms": pct(self.reject_latencies_s, 99),
            "connection_errors": self.connection_errors,
        }


def build_request(url: str, body: bytes, content_type: str,
                  headers: dict[str, str] | None = None) -> bytes:
    """The bytes of one ``POST`` with a ``Content-Length`` body."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"POST {target} HTTP/1.1", f"Host: {parts.netloc}", f"Content-Type: {content_type}",
             f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(HEADER_END)
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split()[1])
    headers = {}
    for line in header_lines:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


async def _client(host: str, port: int, requests: list[bytes], offset: int, stop_at: float,
                  result: ClosedLoopResult, honour_retry_after: bool) -> None:
    reader = writer = None
    index = offset
    try:
        while time.monotonic() < stop_at:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            request = requests[index % len(requests)]
            index += 1
            started = time.perf_counter()
            try:
                writer.write(request)  # buffered: the answer may come before the body is sent
                status, headers, _ = await asyncio.wait_for(read_response(reader),
                                                            stop_at + 60 - time.monotonic())
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                result.connection_errors += 1
                writer.close()
                reader = writer = None
                continue
            elapsed = time.perf_counter() - started
            result.statuses[status] += 1
            if status == 200:
                result.ok_latencies_s.append(elapsed)
            elif status == 503:
                result.reject_latencies_s.append(elapsed)
            if headers.get("connection", "").lower() == "close":
                writer.close()
                reader = writer = None
            else:  # a refusal may come before the body is sent: the server drains the rest
                await asyncio.wait_for(writer.drain(), 60)
            if status == 503 and honour_retry_after and "retry-after" in headers:
                await asyncio.sleep(min(float(headers["retry-after"]), max(0.0, stop_at - time.monotonic())))
    except TimeoutError:
        result.connection_errors += 1
    finally:
        if writer is not None:
            writer.close()


async def _run(url: str, requests: list[bytes], clients: int, duration_s: float,
               honour_retry_after: bool) -> ClosedLoopResult:
    parts = urlsplit(url)
    result = ClosedLoopResult(clients=clients, duration_s=duration_s)
    started = time.monotonic()
    stop_at = started + duration_s
    await asyncio.gather(*(_client(parts.hostname or "", parts.port or 80, requests, i, stop_at,
                                   result, honour_retry_after) for i in range(clients)))
    result.duration_s = time.monotonic() - started
    return result


def closed_loop(url: str, requests: list[bytes], clients: int, duration_s: float,
                honour_retry_after: bool = True) -> ClosedLoopResult:
    """``clients`` closed-loop clients sending ``requests`` in turn to ``url`` for ``duration_s``.

    Raises:
        ValueError: if ``url`` is not on loopback.
    """
    host = urlsplit(url).hostname or ""
    if not (host == "localhost" or host.startswith("127.") or host == "::1"):
        raise ValueError(f"benchmarks only target loopback, not {host!r}")
    return asyncio.run(_run(url, requests, clients, duration_s, honour_retry_after))
