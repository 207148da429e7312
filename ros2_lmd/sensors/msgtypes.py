"""Message classes for writers, whichever ROS 2 Python binding supplies them. Readers need none (they
read attributes); writers build messages through a `MessageTypes` namespace so one builder serves
rosbags (offline bags) and rclpy's generated classes (the live node) alike."""

from __future__ import annotations

import array
import math
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

# Class name -> ROS type name; the attribute names of MessageTypes are the class names.
MESSAGE_TYPE_NAMES: dict[str, str] = {
    "Time": "builtin_interfaces/msg/Time",
    "Header": "std_msgs/msg/Header",
    "PointField": "sensor_msgs/msg/PointField",
    "PointCloud2": "sensor_msgs/msg/PointCloud2",
    "Image": "sensor_msgs/msg/Image",
    "CompressedImage": "sensor_msgs/msg/CompressedImage",
    "CameraInfo": "sensor_msgs/msg/CameraInfo",
    "RegionOfInterest": "sensor_msgs/msg/RegionOfInterest",
    "Vector3": "geometry_msgs/msg/Vector3",
    "Quaternion": "geometry_msgs/msg/Quaternion",
    "Transform": "geometry_msgs/msg/Transform",
    "TransformStamped": "geometry_msgs/msg/TransformStamped",
    "TFMessage": "tf2_msgs/msg/TFMessage",
}


def _rclpy_bytes(data: bytes) -> Any:
    # rclpy's uint8[] setter takes array.array('B') without a per-element check.
    return array.array("B", data)


def _rclpy_floats(values: np.ndarray) -> Any:
    # A list of Python floats is accepted both by fixed arrays (k[9]) and sequences (d[]).
    return [float(v) for v in values]


def _rosbags_bytes(data: bytes) -> Any:
    # rosbags serialises uint8[] from a numpy array only.
    return np.frombuffer(data, dtype=np.uint8).copy()


def _rosbags_floats(values: np.ndarray) -> Any:
    return np.asarray(values, dtype=np.float64).copy()


@dataclass(frozen=True)
class MessageTypes:
    """The message classes a writer needs, plus how that binding wants byte and float arrays.
    Every class is constructed with keyword arguments for all its fields (rosbags needs them all)."""

    Time: type
    Header: type
    PointField: type
    PointCloud2: type
    Image: type
    CompressedImage: type
    CameraInfo: type
    RegionOfInterest: type
    Vector3: type
    Quaternion: type
    Transform: type
    TransformStamped: type
    TFMessage: type
    byte_array: Callable[[bytes], Any] = _rclpy_bytes
    float_array: Callable[[np.ndarray], Any] = _rclpy_floats


def message_types_from_modules(*modules: ModuleType | object) -> MessageTypes:
    """MessageTypes from generated message modules, e.g. in the rclpy node:
    `message_types_from_modules(builtin_interfaces.msg, std_msgs.msg, sensor_msgs.msg,
    geometry_msgs.msg, tf2_msgs.msg)`. Each class is taken from the first module that has it."""
    classes: dict[str, type] = {}
    for name in MESSAGE_TYPE_NAMES:
        for module in modules:
            if hasattr(module, name):
                classes[name] = getattr(module, name)
                break
    missing = [f"{name} ({MESSAGE_TYPE_NAMES[name]})" for name in MESSAGE_TYPE_NAMES if name not in classes]
    if missing:
        raise ValueError(f"message_types_from_modules: no module provides {', '.join(missing)}")
    return MessageTypes(**classes)


def rosbags_types(store: str | None = None) -> MessageTypes:
    """MessageTypes from the rosbags type store (default ROS 2 Jazzy, else Humble where the installed
    rosbags predates Jazzy). Messages built with it serialise with that store's `serialize_cdr`."""
    return MessageTypes(**_rosbags_classes(store), byte_array=_rosbags_bytes,
                        float_array=_rosbags_floats)


def rosbags_typestore(store: str | None = None) -> Any:
    """The rosbags Typestore that `rosbags_types(store)` draws from (to serialise what it builds)."""
    from rosbags.typesys import Stores, get_typestore  # optional dependency: writers/tests only

    if store is not None:
        return get_typestore(Stores(store))
    return get_typestore(getattr(Stores, "ROS2_JAZZY", None) or Stores.ROS2_HUMBLE)


def _rosbags_classes(store: str | None) -> dict[str, type]:
    typestore = rosbags_typestore(store)
    return {name: typestore.types[ros_name] for name, ros_name in MESSAGE_TYPE_NAMES.items()}


def make_time(msg_types: MessageTypes, stamp_s: float) -> Any:
    """builtin_interfaces/Time for a stamp in seconds (nanoseconds rounded, carried into sec)."""
    if not math.isfinite(stamp_s) or stamp_s < 0:
        raise ValueError(f"make_time: stamp must be finite and >= 0, got {stamp_s}")
    total_ns = round(stamp_s * 1e9)
    return msg_types.Time(sec=total_ns // 1_000_000_000, nanosec=total_ns % 1_000_000_000)


def make_header(msg_types: MessageTypes, stamp_s: float, frame_id: str) -> Any:
    """std_msgs/Header with a stamp in seconds."""
    return msg_types.Header(stamp=make_time(msg_types, stamp_s), frame_id=frame_id)


def stamp_seconds(stamp: Any) -> float:
    """Seconds of a builtin_interfaces/Time (or of a Header, via its `stamp`)."""
    stamp = getattr(stamp, "stamp", stamp)
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9

