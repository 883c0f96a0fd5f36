"""A lean load generator: wrk (C, one thread) driven by a small Lua script.

On a 2-core machine the client must not steal the server's CPU, so the load comes from wrk rather
than a Python client; its own CPU time is measured (``os.wait4`` rusage) and reported.
Every run is bounded by a duration *and* a request cap, and targets loopback only.
"""

import json
import resource
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

WRK_MISSING = "wrk is not installed: `apt-get install -y wrk` (Debian package) is the load generator"

# wrk calls request() for every request: rotate through pre-built bodies so the server sees
# different images. Percentiles are written as JSON by done(); latencies are in microseconds.
_LUA = r"""
local bodies = {}
local content_types = {}
local n_bodies = 0
local responses = 0
local max_requests = %(max_requests)d
local next_body = 0
local extra_headers = %(headers)s

for line in io.lines("%(listing)s") do
  local ctype, path = line:match("^([^\t]+)\t(.+)$")
  local f = assert(io.open(path, "rb"))
  n_bodies = n_bodies + 1
  bodies[n_bodies] = f:read("*all")
  content_types[n_bodies] = ctype
  f:close()
end

function request()
  next_body = next_body %% n_bodies + 1
  local headers = {}
  for k, v in pairs(extra_headers) do headers[k] = v end
  headers["Content-Type"] = content_types[next_body]
  return wrk.format("POST", nil, headers, bodies[next_body])
end

function response(status, headers, body)
  responses = responses + 1
  if status ~= 200 then
    io.stderr:write("non-200 status " .. status .. ": " .. string.sub(body, 1, 200) .. "\n")
  end
  if responses >= max_requests then wrk.thread:stop() end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\nWRK_JSON {"requests": %%d, "duration_us": %%d, "errors": {"connect": %%d, "read": %%d, ' ..
    '"write": %%d, "status": %%d, "timeout": %%d}, "latency_us": {"p50": %%d, "p95": %%d, "p99": %%d, ' ..
    '"max": %%d, "mean": %%.1f}}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max, latency.mean))
end
"""


@dataclass
class Body:
    """One request body: its bytes on disk and its Content-Type."""

    path: Path
    content_type: str


@dataclass
class LoadResult:
    concurrency: int
    requests: int
    duration_s: float
    throughput_rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    hit_request_cap: bool
    client_cpu_s: float
    client_cpu_pct_of_one_core: float

    def as_dict(self) -> dict:
        return asdict(self)


def require_wrk() -> str:
    """Return the wrk executable or raise with how to install it."""
    exe = shutil.which("wrk")
    if exe is None:
        raise RuntimeError(WRK_MISSING)
    return exe


def _lua_table(headers: dict[str, str]) -> str:
    items = ", ".join(f'["{k}"] = {json.dumps(v)}' for k, v in headers.items())
    return "{" + items + "}"


def run_wrk(url: str, bodies: list[Body], concurrency: int, duration_s: float,
            max_requests: int, headers: dict[str, str] | None = None,
            timeout_s: float = 30.0) -> LoadResult:
    """Run one wrk measurement against ``url`` (loopback only) and parse its JSON summary.

    Raises:
        ValueError: if ``url`` is not on loopback.
        RuntimeError: if wrk is missing or its output has no summary.
    """
    host = urlsplit(url).hostname or ""
    if not (host == "localhost" or host.startswith("127.") or host == "::1"):
        raise ValueError(f"benchmarks only target loopback, not {host!r}")
    exe = require_wrk()
    with tempfile.TemporaryDirectory(prefix="aicore-wrk-") as tmp:
        listing = Path(tmp) / "bodies.txt"
        listing.write_text("".join(f"{b.content_type}\t{Path(b.path).resolve()}\n" for b in bodies))
        script = Path(tmp) / "bench.lua"
        script.write_text(_LUA % {"listing": listing, "max_requests": max(1, max_requests),
                                  "headers": _lua_table(headers or {})})
        # One wrk thread: enough for c<=8 on loopback, and the lightest client there is.
        cmd = [exe, "-t1", f"-c{concurrency}", f"-d{max(1, round(duration_s))}s",
               f"--timeout={int(timeout_s)}s", "-s", str(script), url]
        before = _reaped_children_cpu()
        started = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + timeout_s + 30)
        wall = time.perf_counter() - started
        # wrk is the only child reaped during this window (servers stay running), so the delta
        # of RUSAGE_CHILDREN is wrk's own CPU time.
        cpu_s = _reaped_children_cpu() - before
    return _parse(proc.stdout, proc.stderr, concurrency, max_requests, cpu_s, wall)


def _reaped_children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _parse(stdout: str, stderr: str, concurrency: int, max_requests: int,
           cpu_s: float, wall_s: float) -> LoadResult:
    line = next((ln for ln in stdout.splitlines() if ln.startswith("WRK_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk produced no summary:\n{stdout[-2000:]}\n{stderr[-2000:]}")
    data = json.loads(line.removeprefix("WRK_JSON "))
    requests, duration_s = data["requests"], data["duration_us"] / 1e6
    lat = data["latency_us"]
    errors = sum(data["errors"].values())
    return LoadResult(
        concurrency=concurrency, requests=requests, duration_s=round(duration_s, 3),
        throughput_rps=round(requests / duration_s, 2) if duration_s else 0.0,
        p50_ms=lat["p50"] / 1000, p95_ms=lat["p95"] / 1000, p99_ms=lat["p99"] / 1000,
        max_ms=lat["max"] / 1000, errors=errors,
        hit_request_cap=requests >= max_requests,
        client_cpu_s=round(cpu_s, 3),
        client_cpu_pct_of_one_core=round(100 * cpu_s / wall_s, 1) if wall_s else 0.0,
    )
