"""HTTP metrics in the Prometheus text format, without extra dependencies.

``HttpMetrics`` counts requests by method, route template and status, and records latency
in a histogram; ``MetricsMiddleware`` (pure ASGI) feeds it. Route templates (not raw paths)
keep label values bounded; requests that match no route are labelled ``<unmatched>``.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import Any

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
Scope = dict[str, Any]


class HttpMetrics:
    """Request counter and latency histogram; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, str], int] = defaultdict(int)
        self._buckets: dict[tuple[str, str], list[int]] = {}
        self._sums: dict[tuple[str, str], float] = defaultdict(float)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self._requests[(method, route, str(status))] += 1
            counts = self._buckets.setdefault((method, route), [0] * (len(BUCKETS) + 1))
            for index, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    counts[index] += 1
            counts[-1] += 1  # +Inf
            self._sums[(method, route)] += seconds

    def render(self) -> str:
        """The exposition text (format version 0.0.4)."""
        lines = [
            "# HELP grait_http_requests_total HTTP requests by method, route and status.",
            "# TYPE grait_http_requests_total counter",
        ]
        with self._lock:
            for (method, route, status), count in sorted(self._requests.items()):
                labels = _labels(method=method, route=route, status=status)
                lines.append(f"grait_http_requests_total{{{labels}}} {count}")
            lines += [
                "# HELP grait_http_request_duration_seconds HTTP request latency.",
                "# TYPE grait_http_request_duration_seconds histogram",
            ]
            for (method, route), counts in sorted(self._buckets.items()):
                lines += _histogram(method, route, counts, self._sums[(method, route)])
        return "\n".join(lines) + "\n"


def _labels(**values: str) -> str:
    def escape(text: str) -> str:
        return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')

    return ",".join(f'{key}="{escape(value)}"' for key, value in values.items())


def _histogram(method: str, route: str, counts: list[int], total: float) -> list[str]:
    name = "grait_http_request_duration_seconds"
    bounds = [*(f"{bound:g}" for bound in BUCKETS), "+Inf"]
    lines = [
        f"{name}_bucket{{{_labels(method=method, route=route, le=le)}}} {count}"
        for le, count in zip(bounds, counts, strict=True)
    ]
    labels = _labels(method=method, route=route)
    lines.append(f"{name}_sum{{{labels}}} {total:.6f}")
    lines.append(f"{name}_count{{{labels}}} {counts[-1]}")
    return lines


class MetricsMiddleware:
    """ASGI middleware: time each HTTP request and record it once the response started."""

    def __init__(self, app: Any, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def send_wrapper(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = getattr(scope.get("route"), "path", None) or "<unmatched>"
            elapsed = time.perf_counter() - start
            self.metrics.observe(scope["method"], route, status, elapsed)
