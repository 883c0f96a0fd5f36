"""The W3C ``Server-Timing`` header: how the proxy tells a client where a request's time went.

``proxy.search_routes`` writes it on ``GET /search`` (``embed;dur=8.100, search;dur=2.050, ...``,
milliseconds); ``bench.search_text`` reads it to break the latency down per step.
"""

HEADER = "Server-Timing"


def format_timing(stages_ms: dict[str, float]) -> str:
    """``{"embed": 8.1, ...}`` -> ``"embed;dur=8.100, ..."``."""
    return ", ".join(f"{name};dur={ms:.3f}" for name, ms in stages_ms.items())


def parse_timing(header: str) -> dict[str, float]:
    """``"embed;dur=8.1, search;dur=2.0"`` -> ``{"embed": 8.1, "search": 2.0}`` (entries
    without a duration are left out)."""
    stages = {}
    for part in header.split(","):
        name, _, rest = part.strip().partition(";")
        for param in rest.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "dur" and name:
                stages[name] = float(value)
    return stages
