"""Errors for sensor data that cannot be used. Raised where a message enters (the converters and the
assembler), so the message names the topic and the field at fault rather than a numpy traceback.
`int_field` reads an integer message field the same way: a duck-typed message (a user's bridge, a
hand-built test message) can hold None, a float or a string where ROS has a uint32."""

from __future__ import annotations

import operator
from collections.abc import Iterable
from typing import Any

from ros2_lmd.errors import LMDError


class SensorDataError(LMDError, ValueError):
    """A message on `topic` is malformed or inconsistent; `reason` names the field and the problem."""

    def __init__(self, topic: str, reason: str) -> None:
        self.topic = topic
        self.reason = reason
        super().__init__(f"{topic}: {reason}")

    def __reduce__(self):  # keep pickling (multiprocessing, pytest-xdist) working with two args
        return (type(self), (self.topic, self.reason))


def int_field(obj: Any, name: str, topic: str, label: str | None = None) -> int:
    """`obj.name` as a Python int (int, bool or numpy integer; never a float, which int() would
    truncate); SensorDataError naming `label` (default `name`) if it is missing or not an integer."""
    value: Any = getattr(obj, name, None)  # anything a duck-typed message holds
    try:
        return operator.index(value)
    except TypeError:
        raise SensorDataError(
            topic, f"{label or name}: expected an integer, got {type(value).__name__} {value!r:.60}"
        ) from None


class TransformLookupError(LMDError, LookupError):
    """No chain of transforms links `source_frame` to `target_frame` (yet)."""

    def __init__(
        self, target_frame: str, source_frame: str, known_frames: Iterable[str], detail: str = ""
    ) -> None:
        self.target_frame = target_frame
        self.source_frame = source_frame
        self.known_frames = tuple(sorted(known_frames))
        self.detail = detail
        what = detail or "no chain of transforms connects them"
        super().__init__(
            f"cannot look up {target_frame}<-{source_frame}: {what}; "
            f"known frames: {list(self.known_frames) or 'none'}"
        )

    def __reduce__(self):
        return (type(self), (self.target_frame, self.source_frame, self.known_frames, self.detail))
