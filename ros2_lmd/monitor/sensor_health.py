"""Per-sensor message bookkeeping for /diagnostics (rate, last stamp, last error, staleness and a
persistence count), without ROS: the node feeds it from its callbacks and its frames, and turns
`statuses(now)` into a DiagnosticArray with ros2_lmd.messages.outputs.diagnostic_array.

Levels (docs/architecture.md, conventions): STALE before a sensor's first message; WARN while it is stale (no
valid message for stale_timeout_s) or after a bad check; ERROR only once `persistence` consecutive
checks were bad. A check is each message from the sensor (bad: malformed) and each processed frame
(bad: the sensor was left out of it); a good message or a frame that includes the sensor resets the
count.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ros2_lmd.monitor.status import DIAG_ERROR, DIAG_OK, DIAG_STALE, DIAG_WARN, STATUS_PREFIX, StatusRecord


@dataclass(frozen=True)
class SensorInfo:
    """A monitored sensor: its name (diagnostics hardware id), main topic and modality."""

    name: str
    topic: str
    modality: str


class _SensorState:
    def __init__(self, rate_window: int) -> None:
        self.receive_times: deque[float] = deque(maxlen=rate_window)
        self.last_stamp: float | None = None
        self.last_receive: float | None = None
        self.last_error = ""
        self.last_problem = ""
        self.messages = 0
        self.errors = 0
        self.consecutive_bad = 0


class SensorHealthTracker:
    """Thread-safe: callbacks, the inference worker and the diagnostics timer all touch it.
    `now` is a monotonic receive time in seconds (time.monotonic() in the node)."""

    def __init__(
        self, sensors: Sequence[SensorInfo], stale_timeout_s: float, persistence: int, rate_window: int = 20
    ) -> None:
        if stale_timeout_s <= 0 or persistence < 1 or rate_window < 2:
            raise ValueError("need stale_timeout_s > 0, persistence >= 1, rate_window >= 2")
        self.sensors = {s.name: s for s in sensors}
        self.stale_timeout_s = stale_timeout_s
        self.persistence = persistence
        self._states = {s.name: _SensorState(rate_window) for s in sensors}
        self._lock = threading.Lock()

    def _state(self, sensor: str) -> _SensorState:
        try:
            return self._states[sensor]
        except KeyError:
            raise KeyError(f"unknown sensor {sensor!r}; known: {list(self._states)}") from None

    def message(self, sensor: str, stamp: float, now: float, ok: bool = True) -> None:
        """A usable message from `sensor` (header stamp `stamp`) arrived at `now`. `ok` False: it
        was used but had a problem already reported with `error` (the bad count stays)."""
        with self._lock:
            state = self._state(sensor)
            if ok:
                state.consecutive_bad = 0
            state.messages += 1
            state.last_stamp = stamp
            state.last_receive = now
            state.receive_times.append(now)

    def error(self, sensor: str, topic: str, reason: str, now: float) -> None:
        """A malformed message from `sensor` on `topic`: a bad check."""
        with self._lock:
            state = self._state(sensor)
            state.errors += 1
            state.consecutive_bad += 1
            state.last_error = f"{topic}: {reason}"
            state.last_problem = f"malformed message on {topic}: {reason}"

    def frame(self, included: Mapping[str, bool], reasons: Mapping[str, str] | None = None) -> None:
        """After a processed frame: `included[sensor]` says whether the sensor's data was in it;
        a sensor left out is a bad check (`reasons[sensor]` tells why, when known)."""
        reasons = reasons or {}
        with self._lock:
            for sensor, present in included.items():
                state = self._states.get(sensor)
                if state is None:
                    continue
                if present:
                    state.consecutive_bad = 0
                else:
                    state.consecutive_bad += 1
                    if reasons.get(sensor):
                        state.last_problem = f"missing from frame: {reasons[sensor]}"
                    elif not state.last_problem:
                        state.last_problem = "missing from frame"

    def stale(self, now: float) -> dict[str, str]:
        """sensor -> why it is stale, for sensors with no valid message for stale_timeout_s (a
        sensor that never sent anything is included once anything else has)."""
        with self._lock:
            return {
                name: reason
                for name in self._states
                if (reason := self._stale_reason(self._states[name], now))
            }

    def _stale_reason(self, state: _SensorState, now: float) -> str:
        if state.last_receive is None:
            return "no valid message yet" if state.errors else ""
        age = now - state.last_receive
        if age > self.stale_timeout_s:
            return f"no valid message for {age:.2f} s (stale_timeout_s {self.stale_timeout_s})"
        return ""

    def messages(self, sensor: str) -> int:
        """Usable messages received from `sensor` so far."""
        with self._lock:
            return self._state(sensor).messages

    def rate_hz(self, sensor: str) -> float:
        with self._lock:
            times = self._state(sensor).receive_times
            if len(times) < 2 or times[-1] <= times[0]:
                return 0.0
            return (len(times) - 1) / (times[-1] - times[0])

    def statuses(self, now: float) -> list[StatusRecord]:
        """One StatusRecord per sensor, in the order the sensors were given."""
        records = []
        for name, info in self.sensors.items():
            rate = self.rate_hz(name)
            with self._lock:
                state = self._states[name]
                level, message = self._level(state, now)
                values = {
                    "topic": info.topic,
                    "modality": info.modality,
                    "rate_hz": f"{rate:.2f}",
                    "last_stamp": "" if state.last_stamp is None else f"{state.last_stamp:.6f}",
                    "last_error": state.last_error,
                    "messages": str(state.messages),
                    "errors": str(state.errors),
                    "consecutive_bad": str(state.consecutive_bad),
                }
            records.append(StatusRecord(f"{STATUS_PREFIX}{name}", name, level, message, values))
        return records

    def _level(self, state: _SensorState, now: float) -> tuple[int, str]:
        if state.messages == 0 and state.errors == 0:
            return DIAG_STALE, "no data yet"
        problem = state.last_problem
        if state.last_error and state.last_error not in problem:
            problem += f"; last error {state.last_error}"
        if state.consecutive_bad >= self.persistence:
            return DIAG_ERROR, f"{problem} ({state.consecutive_bad} consecutive bad checks)"
        if state.consecutive_bad > 0:
            return DIAG_WARN, problem
        stale = self._stale_reason(state, now)
        if stale:
            return DIAG_WARN, f"stale: {stale}"
        return DIAG_OK, "ok"
