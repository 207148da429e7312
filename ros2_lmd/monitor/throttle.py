"""Rate limiting of repeated problem reports: a flood of malformed messages on one topic becomes one
log line every period, carrying the count of the lines held back. ROS-free, so it is unit-tested
without a node; rclpy's own `throttle_duration_sec` is per call site, not per topic, and has no
count of what it suppressed."""

from __future__ import annotations

import threading
from collections import Counter


class Throttle:
    """At most one report per key every `period_s` (in the caller's clock), with the count of the
    reports held back since the last one."""

    def __init__(self, period_s: float) -> None:
        if period_s < 0:
            raise ValueError(f"Throttle: period_s must be >= 0, got {period_s}")
        self.period_s = period_s
        self._last: dict[str, float] = {}
        self._held: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, key: str, now: float) -> int | None:
        """None: stay quiet; otherwise report now, mentioning the returned number held back."""
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.period_s:
                self._held[key] += 1
                return None
            self._last[key] = now
            return self._held.pop(key, 0)
