"""Reading header stamps of any ROS 2 message (rclpy or rosbags: both have `sec` and `nanosec`)."""

from __future__ import annotations

import math
from typing import Any


def stamp_seconds(stamp: Any) -> float:
    """Seconds of a builtin_interfaces/Time (or of a Header, via its `stamp`)."""
    stamp = getattr(stamp, "stamp", stamp)
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def header_stamp_or_nan(msg: Any) -> float:
    """The header stamp of `msg` in seconds, NaN when it has no readable one."""
    try:
        return stamp_seconds(msg.header)
    except (AttributeError, TypeError, ValueError):
        return math.nan
