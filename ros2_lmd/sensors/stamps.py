"""Header stamps: read exactly (integer nanoseconds; float seconds lose up to ~240 ns at today's
epoch), checked for plausibility, and used to count the messages a sensor lost on the way.

`StampGuard` decides, per message, whether its stamp can be trusted, as ROS 2 tools do with time:
against a reference clock (the arrival time live, the bag's log time offline) and against the
sensor's own recent stamps. One wild stamp (+1 h, 0, +1e6 s) is rejected and named instead of
blinding the time sync; a lasting jump of every stamp relative to the reference (a bag replayed
in a loop, a /clock reset, a sim-time restart) is a time jump, after which the time sync and the
health baselines start over, as tf2 clears its buffer when time jumps back.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass
from typing import Any

NS_PER_S = 1_000_000_000


def stamp_ns(stamp: Any) -> int:
    """Integer nanoseconds of a builtin_interfaces/Time (or of a Header, via its `stamp`)."""
    stamp = getattr(stamp, "stamp", stamp)
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def stamp_seconds(stamp: Any) -> float:
    """Seconds of a builtin_interfaces/Time (or of a Header, via its `stamp`)."""
    return stamp_ns(stamp) / NS_PER_S


def header_stamp_or_nan(msg: Any) -> float:
    """The header stamp of `msg` in seconds, NaN when it has no readable one."""
    try:
        return stamp_seconds(msg.header)
    except (AttributeError, TypeError, ValueError, OverflowError):
        return math.nan


def seconds_to_ns(seconds: float) -> int:
    """Nanoseconds of a stamp in seconds, rounded; split before scaling (seconds * 1e9 near
    1.7e18 ns is off by up to 128 ns in float64)."""
    if not math.isfinite(seconds):
        raise ValueError(f"stamp must be finite, got {seconds}")
    whole = math.floor(seconds)
    return int(whole) * NS_PER_S + round((seconds - whole) * NS_PER_S)


@dataclass(frozen=True)
class StampVerdict:
    """`reason` is empty for a plausible stamp; `time_jump` names a jump that restarts time."""

    reason: str = ""
    time_jump: str = ""


class StampGuard:
    """Plausibility of header stamps (module docstring). `offset` = stamp - reference; the
    reference's epoch does not matter (a bag replayed without sim time has stamps in the past),
    only that every sensor keeps about the same offset:
    - against the others: |offset - median of the last `window` offsets| <= tolerance_s;
    - against the sensor's own last accepted stamp, when that came within tolerance_s of
      reference time: the stamp advanced by about as much as the reference did (within
      tolerance_s), so a sensor cannot leap alone;
    - a stamp <= 0 is never plausible (an unset clock).
    When the median offset itself moves by more than tolerance_s (most recent messages agree on
    a new offset), or the reference goes back by more than tolerance_s, or the first message after
    a silence of every sensor longer than tolerance_s comes with a new offset (a paused playback),
    time jumped."""

    def __init__(self, tolerance_s: float = 2.0, window: int = 15, min_samples: int = 3) -> None:
        if not tolerance_s > 0 or window < 3 or not 1 <= min_samples <= window:
            raise ValueError(
                f"StampGuard: need tolerance_s > 0, window >= 3, 1 <= min_samples <= window; "
                f"got {tolerance_s}, {window}, {min_samples}"
            )
        self.tolerance_s = float(tolerance_s)
        self.min_samples = min_samples
        self._offsets: deque[float] = deque(maxlen=window)
        self._median: float | None = None
        self._last: dict[str, tuple[float, float]] = {}  # sensor -> (stamp, reference) accepted
        self._last_reference = -math.inf
        self.rejected = 0
        self.time_jumps = 0

    def reset(self) -> None:
        self._offsets.clear()
        self._median = None
        self._last.clear()

    def check(self, sensor: str, stamp: float, reference: float) -> StampVerdict:
        """Judge one message of `sensor` stamped `stamp`, arriving at `reference` (seconds)."""
        jump = ""
        if reference < self._last_reference - self.tolerance_s:
            jump = (
                f"the clock went back {self._last_reference - reference:.3f} s "
                f"(from {self._last_reference:.3f} to {reference:.3f})"
            )
            self.reset()
        silence = reference - self._last_reference
        self._last_reference = reference
        if not math.isfinite(stamp) or stamp <= 0:
            return self._reject(f"stamp {stamp} is not a time (zero, negative or not finite)", jump)
        offset = stamp - reference
        moved = 0.0 if self._median is None else offset - self._median
        if abs(moved) > self.tolerance_s and silence > self.tolerance_s:
            # Nothing came for a while and the stamps did not keep pace with the clock: playback
            # paused (or the clock stepped) while every sensor was quiet. One jump, not a bad
            # stamp per sensor: the offsets start again from this message.
            jump = jump or (
                f"nothing came for {silence:.3f} s and the stamps moved {moved:+.3f} s "
                "against the reference clock (playback paused, or the clock stepped)"
            )
            self.reset()
        self._offsets.append(offset)
        if len(self._offsets) >= self.min_samples:
            median = statistics.median(self._offsets)
            if self._median is not None and abs(median - self._median) > self.tolerance_s:
                jump = jump or (
                    f"every sensor's stamps moved {median - self._median:+.3f} s against the reference clock"
                )
                self._last.clear()
            self._median = median
            if abs(offset - median) > self.tolerance_s:
                return self._reject(
                    f"stamp {stamp:.6f} is {offset - median:+.3f} s off the other sensors' time "
                    f"(stamp_tolerance_s {self.tolerance_s:g})",
                    jump,
                )
        previous = self._last.get(sensor)
        # Only against a recent stamp of its own: after a silence, a replay at another rate (or
        # any drift) makes "advanced as much as the clock" wrong by the gap times the rate error,
        # and the other sensors' time (above) is the judge.
        if previous is not None and reference - previous[1] <= self.tolerance_s:
            expected = previous[0] + (reference - previous[1])
            if abs(stamp - expected) > self.tolerance_s:
                return self._reject(
                    f"stamp {stamp:.6f} leaps {stamp - expected:+.3f} s from this sensor's last stamp "
                    f"{previous[0]:.6f} (stamp_tolerance_s {self.tolerance_s:g})",
                    jump,
                )
        self._last[sensor] = (stamp, reference)
        if jump:
            self.time_jumps += 1
        return StampVerdict("", jump)

    def _reject(self, reason: str, jump: str) -> StampVerdict:
        self.rejected += 1
        if jump:
            self.time_jumps += 1
        return StampVerdict(reason, jump)


class LossEstimator:
    """Messages a sensor lost before they reached us, from the gaps in its own stamps: its period
    is the median of its recent stamp steps, and a step of k periods means k - 1 lost messages.
    Stamps must be plausible ones (StampGuard), in any order: a stamp older than the newest is an
    out-of-order arrival, not a loss."""

    def __init__(self, window: int = 21) -> None:
        self._steps: dict[str, deque[float]] = {}
        self._newest: dict[str, float] = {}
        self.received: dict[str, int] = {}
        self.lost: dict[str, int] = {}
        self.window = window

    def add(self, sensor: str, stamp: float) -> None:
        self.received[sensor] = self.received.get(sensor, 0) + 1
        self.lost.setdefault(sensor, 0)
        newest = self._newest.get(sensor)
        if newest is not None and stamp <= newest:
            return
        self._newest[sensor] = stamp
        if newest is None:
            return
        step = stamp - newest
        steps = self._steps.setdefault(sensor, deque(maxlen=self.window))
        if len(steps) >= 3:
            period = statistics.median(steps)
            if period > 0:
                missed = round(step / period) - 1
                if missed > 0:
                    self.lost[sensor] += missed
                    return  # a gap is not a period sample
        steps.append(step)

    def forget_newest(self) -> None:
        """After a time jump: the next stamp starts a new run (its gap means nothing)."""
        self._newest.clear()

    def total_lost(self) -> int:
        return sum(self.lost.values())
