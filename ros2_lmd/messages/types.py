"""The one adapter between this package and ROS message classes: every message the project writes
(sensor messages in the simulator and tests, the monitor's outputs) is built with
`types.new("sensor_msgs/msg/PointCloud2", header=..., data=...)`, whether `types` is RclpyTypes (the
live node: rclpy's generated classes) or RosbagsTypes (offline: rosbags dataclasses). Unspecified
fields get their ROS defaults; numeric arrays may be numpy arrays, lists or bytes either way.
Readers need no adapter: they read attributes, which both libraries share. No rclpy import at
module level: RclpyTypes imports the generated classes on first use.
"""

from __future__ import annotations

import array
import functools
import importlib
import math
from typing import Any, Protocol

import numpy as np

from ros2_lmd.sensors.stamps import NS_PER_S, seconds_to_ns

# Primitive ROS type -> numpy dtype (rosbags' spelling and rclpy's spelling of the same types).
_NUMPY_DTYPES: dict[str, str] = {
    "bool": "bool",
    "boolean": "bool",
    "byte": "uint8",
    "octet": "uint8",
    "char": "uint8",
    "int8": "int8",
    "uint8": "uint8",
    "int16": "int16",
    "uint16": "uint16",
    "int32": "int32",
    "uint32": "uint32",
    "int64": "int64",
    "uint64": "uint64",
    "float32": "float32",
    "float64": "float64",
    "float": "float32",
    "double": "float64",
}
# rclpy stores numeric sequences/arrays as array.array with these type codes.
_ARRAY_TYPECODES: dict[str, str] = {
    "int8": "b",
    "uint8": "B",
    "int16": "h",
    "uint16": "H",
    "int32": "i",
    "uint32": "I",
    "int64": "q",
    "uint64": "Q",
    "float": "f",
    "double": "d",
}


# Field defaults that .msg files declare (rclpy honours them) but rosbags' typestore does not keep.
_DECLARED_DEFAULTS: dict[str, dict[str, Any]] = {
    "geometry_msgs/msg/Quaternion": {"w": 1.0},  # `float64 w 1`: the identity rotation
}


class MessageTypes(Protocol):
    """What ros2_lmd.messages.outputs needs from a message library."""

    def cls(self, type_name: str) -> type:
        """The message class of `pkg/msg/Name`."""

    def new(self, type_name: str, **fields: Any) -> Any:
        """A message of `pkg/msg/Name`, unspecified fields at their ROS defaults."""


def split_type_name(type_name: str) -> tuple[str, str]:
    """`pkg/msg/Name` (or `pkg/Name`) -> (pkg, Name); anything else is an error naming it."""
    parts = type_name.split("/")
    if len(parts) == 3 and parts[1] == "msg" and all(parts):
        return parts[0], parts[2]
    if len(parts) == 2 and all(parts):
        return parts[0], parts[1]
    raise ValueError(f"message type {type_name!r}: expected 'pkg/msg/Name'")


class RclpyTypes:
    """Generated rclpy message classes (`from <pkg>.msg import <Name>`)."""

    def __init__(self) -> None:
        self._classes: dict[str, type] = {}

    def cls(self, type_name: str) -> type:
        found = self._classes.get(type_name)
        if found is None:
            package, name = split_type_name(type_name)
            try:
                module = importlib.import_module(f"{package}.msg")
                found = getattr(module, name)
            except (ImportError, AttributeError) as error:
                raise LookupError(f"message type {type_name!r} is not available to rclpy: {error}") from None
            self._classes[type_name] = found
        return found

    def new(self, type_name: str, **fields: Any) -> Any:
        message_class = self.cls(type_name)
        slots = message_class.get_fields_and_field_types()
        unknown = set(fields) - set(slots)
        if unknown:
            raise TypeError(f"{type_name} has no fields {sorted(unknown)}")
        return message_class(**{name: _to_rclpy(slots[name], value) for name, value in fields.items()})


def _to_rclpy(field_type: str, value: Any) -> Any:
    """rclpy wants bytes for `byte`/`octet` and array.array for numeric arrays; lists are slow
    (every element is checked in Python), so numpy input becomes an array.array directly."""
    if field_type == "octet" and isinstance(value, (int, np.integer)):
        return bytes([int(value)])
    element = field_type
    if field_type.startswith("sequence<"):
        element = field_type[len("sequence<") :].split(",")[0].rstrip(">")
    elif "[" in field_type:
        element = field_type.split("[")[0]
    else:
        return value
    typecode = _ARRAY_TYPECODES.get(element)
    if typecode is None:
        return list(value) if isinstance(value, (tuple, np.ndarray)) else value
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = np.frombuffer(value, dtype=np.uint8)
    if field_type.startswith("sequence<"):
        return array.array(typecode, np.asarray(value, dtype=_NUMPY_DTYPES[element]).tobytes())
    return np.asarray(value, dtype=_NUMPY_DTYPES[element])  # fixed-size arrays are numpy in rclpy


class RosbagsTypes:
    """rosbags dataclasses from a typestore (e.g. `get_typestore(Stores.ROS2_JAZZY)` with the
    project messages registered). rosbags dataclasses require every field, so defaults are built
    recursively from the typestore's field definitions."""

    def __init__(self, typestore: Any) -> None:
        self.typestore = typestore
        # type name as given -> (canonical name, class, field definitions, field names): looked up
        # once per type; analyze builds thousands of messages a second (markers alone ~40 a frame)
        self._plans: dict[str, tuple[str, type, list, frozenset[str]]] = {}

    def cls(self, type_name: str) -> type:
        try:
            return self.typestore.types[_canonical(type_name)]
        except KeyError:
            raise LookupError(
                f"message type {type_name!r} is not in the rosbags typestore "
                "(register it, e.g. ros2_lmd.messages.definitions.register_with_rosbags)"
            ) from None

    def _plan(self, type_name: str) -> tuple[str, type, list, frozenset[str]]:
        plan = self._plans.get(type_name)
        if plan is None:
            canonical = _canonical(type_name)
            message_class = self.cls(canonical)
            _, definitions = self.typestore.fielddefs[canonical]
            plan = (canonical, message_class, definitions, frozenset(name for name, _ in definitions))
            self._plans[type_name] = plan
        return plan

    def new(self, type_name: str, **fields: Any) -> Any:
        type_name, message_class, definitions, known = self._plan(type_name)
        if not known.issuperset(fields):
            raise TypeError(f"{type_name} has no fields {sorted(set(fields) - known)}")
        values = {}
        declared = _DECLARED_DEFAULTS.get(type_name, {})
        for name, (nodetype, detail) in definitions:
            if name in fields:
                values[name] = self._coerce((nodetype, detail), fields[name])
            elif name in declared:
                values[name] = declared[name]
            else:
                values[name] = self._default((nodetype, detail))
        return message_class(**values)

    def _default(self, entry: tuple) -> Any:
        Nodetype = _nodetype()
        nodetype, detail = entry
        if nodetype == Nodetype.BASE:
            base = detail[0]
            if base == "string":
                return ""
            if base == "bool":
                return False
            if base.startswith("float"):
                return 0.0
            return 0
        if nodetype == Nodetype.NAME:
            return self.new(detail)
        element, length = detail
        if element[0] == Nodetype.BASE and element[1][0] != "string":
            dtype = _NUMPY_DTYPES[element[1][0]]
            return np.zeros(length if nodetype == Nodetype.ARRAY else 0, dtype=dtype)
        if nodetype == Nodetype.ARRAY:
            return [self._default(element) for _ in range(length)]
        return []

    def _coerce(self, entry: tuple, value: Any) -> Any:
        """Numeric arrays become numpy arrays of the field's dtype, as rosbags serialises them."""
        Nodetype = _nodetype()
        nodetype, detail = entry
        if nodetype in (Nodetype.ARRAY, Nodetype.SEQUENCE):
            element = detail[0]
            if element[0] == Nodetype.BASE and element[1][0] != "string":
                if isinstance(value, (bytes, bytearray, memoryview)):
                    value = np.frombuffer(value, dtype=np.uint8)
                return np.asarray(value, dtype=_NUMPY_DTYPES[element[1][0]])
            return list(value)
        if nodetype == Nodetype.BASE and detail[0] in ("byte", "octet", "char") and isinstance(value, bytes):
            return value[0]
        return value


@functools.cache
def _nodetype() -> Any:
    """rosbags' Nodetype enum, imported on first use (rosbags is only needed offline) and then
    kept: an import statement in the per-field helpers cost 1 ms of every frame's outputs."""
    from rosbags.typesys.base import Nodetype

    return Nodetype


def _canonical(type_name: str) -> str:
    package, name = split_type_name(type_name)
    return f"{package}/msg/{name}"


def project_typestore(distro: str = "ROS2_JAZZY") -> Any:
    """A fresh rosbags Typestore of `distro` with the ros2_lmd messages registered."""
    from rosbags.typesys import Stores, get_typestore

    from ros2_lmd.messages.definitions import register_with_rosbags

    typestore = get_typestore(getattr(Stores, distro))
    register_with_rosbags(typestore)
    return typestore


def rosbags_types(distro: str = "ROS2_JAZZY") -> RosbagsTypes:
    """RosbagsTypes over `project_typestore(distro)` (serialise what it builds with
    `types.typestore.serialize_cdr`)."""
    return RosbagsTypes(project_typestore(distro))


# --- Stamps and headers ---------------------------------------------------------------------------


def time_msg_ns(types: MessageTypes, stamp_ns: int) -> Any:
    """builtin_interfaces/Time of a stamp in integer nanoseconds, exactly."""
    if stamp_ns < 0:
        raise ValueError(f"stamp must be >= 0, got {stamp_ns} ns")
    sec, nanosec = divmod(int(stamp_ns), NS_PER_S)
    return types.new("builtin_interfaces/msg/Time", sec=sec, nanosec=nanosec)


def time_msg(types: MessageTypes, stamp: float) -> Any:
    """builtin_interfaces/Time of a stamp in seconds (nanoseconds rounded)."""
    if not math.isfinite(stamp) or stamp < 0:
        raise ValueError(f"stamp must be finite and >= 0, got {stamp}")
    return time_msg_ns(types, seconds_to_ns(stamp))


def header_msg_ns(types: MessageTypes, stamp_ns: int, frame_id: str) -> Any:
    """std_msgs/Header with a stamp in integer nanoseconds."""
    return types.new("std_msgs/msg/Header", stamp=time_msg_ns(types, stamp_ns), frame_id=frame_id)


def header_msg(types: MessageTypes, stamp: float, frame_id: str) -> Any:
    """std_msgs/Header with a stamp in seconds."""
    return types.new("std_msgs/msg/Header", stamp=time_msg(types, stamp), frame_id=frame_id)


def as_int(value: Any) -> int:
    """A `byte` field as an int: rclpy gives bytes of length 1, rosbags an int."""
    if isinstance(value, (bytes, bytearray)):
        return value[0]
    return int(value)


def type_name_of(message: Any) -> str:
    """`pkg/msg/Name` of an rclpy or rosbags message instance or class."""
    name = getattr(message, "__msgtype__", None)
    if name:
        return name
    message_class = message if isinstance(message, type) else type(message)
    package = message_class.__module__.split(".")[0]
    return f"{package}/msg/{message_class.__name__}"
