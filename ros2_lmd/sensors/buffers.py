"""The byte payload of a message (`data`) as a flat uint8 numpy array, whatever container the binding
uses: bytes/bytearray/memoryview, array.array('B') and lists (rclpy), numpy uint8 arrays (rosbags).
Buffers are wrapped without copying; only lists of ints, which have no buffer, are converted."""

from __future__ import annotations

import array
from typing import Any

import numpy as np

from ros2_lmd.sensors.errors import SensorDataError


def as_uint8_buffer(data: Any, topic: str, field: str = "data") -> np.ndarray:
    """Flat, read-only-safe uint8 view of a message byte field; SensorDataError names `field`."""
    if isinstance(data, np.ndarray):
        if data.dtype.itemsize != 1 or data.dtype.kind not in "uiSV":
            raise SensorDataError(topic, f"{field}: expected a uint8 array, got dtype {data.dtype}")
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    if isinstance(data, (bytes, bytearray)):
        return np.frombuffer(data, dtype=np.uint8)
    if isinstance(data, memoryview):
        if not data.contiguous:
            raise SensorDataError(topic, f"{field}: memoryview is not contiguous")
        return np.frombuffer(data.cast("B"), dtype=np.uint8)
    if isinstance(data, array.array):
        if data.typecode not in ("B", "b"):
            raise SensorDataError(
                topic, f"{field}: expected array.array('B'), got typecode {data.typecode!r}"
            )
        return np.frombuffer(data, dtype=np.uint8)
    if isinstance(data, (list, tuple)):
        try:
            # bytes() checks 0..255 in C, about 3x faster than np.array(list, uint8).
            return np.frombuffer(bytes(data), dtype=np.uint8)
        except (ValueError, TypeError) as err:
            raise SensorDataError(topic, f"{field}: list is not bytes 0..255 ({err})") from None
    raise SensorDataError(topic, f"{field}: unsupported byte container {type(data).__name__}")
