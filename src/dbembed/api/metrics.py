"""In-process counters exposed at ``/metrics`` in the Prometheus text format (0.0.4).

Written by hand (a few counters and one histogram) rather than pulling in
prometheus_client: the API must stay light enough for AWS Lambda.  Labels are route
templates (``/v1/chats/{chat_id}/turns``), never raw paths, so ids cannot blow up the
series count or leak into monitoring.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = time.time()
        self.requests: dict[tuple[str, str, str], int] = defaultdict(int)
        self.durations: dict[str, list[float]] = {}  # route -> bucket counts + [sum, count]
        self.events: dict[str, int] = defaultdict(int)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(method, route, str(status))] += 1
            h = self.durations.setdefault(route, [0.0] * (len(BUCKETS) + 2))
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    h[i] += 1
            h[-2] += seconds
            h[-1] += 1

    def count(self, event: str, n: int = 1) -> None:
        with self._lock:
            self.events[event] += n

    def render(self) -> str:
        out = [
            "# HELP dbembed_up 1 while the API process serves requests.",
            "# TYPE dbembed_up gauge",
            "dbembed_up 1",
            "# HELP dbembed_process_start_time_seconds Start time of the API process (unix seconds).",
            "# TYPE dbembed_process_start_time_seconds gauge",
            f"dbembed_process_start_time_seconds {self.started:.3f}",
            "# HELP dbembed_http_requests_total HTTP requests by method, route template and status.",
            "# TYPE dbembed_http_requests_total counter",
        ]
        with self._lock:
            for (method, route, status), n in sorted(self.requests.items()):
                out.append(
                    f'dbembed_http_requests_total{{method="{_esc(method)}",route="{_esc(route)}",'
                    f'status="{status}"}} {n}'
                )
            out += [
                "# HELP dbembed_http_request_duration_seconds Request latency by route template.",
                "# TYPE dbembed_http_request_duration_seconds histogram",
            ]
            for route, h in sorted(self.durations.items()):
                r = _esc(route)
                for i, bound in enumerate(BUCKETS):
                    out.append(
                        f'dbembed_http_request_duration_seconds_bucket{{route="{r}",le="{bound}"}} {int(h[i])}'
                    )
                out.append(
                    f'dbembed_http_request_duration_seconds_bucket{{route="{r}",le="+Inf"}} {int(h[-1])}'
                )
                out.append(f'dbembed_http_request_duration_seconds_sum{{route="{r}"}} {h[-2]:.6f}')
                out.append(f'dbembed_http_request_duration_seconds_count{{route="{r}"}} {int(h[-1])}')
            out += [
                "# HELP dbembed_events_total Library events: turns written, searches, deletions.",
                "# TYPE dbembed_events_total counter",
            ]
            for event, n in sorted(self.events.items()):
                out.append(f'dbembed_events_total{{event="{_esc(event)}"}} {n}')
        return "\n".join(out) + "\n"
