"""sensor_msgs/PointCloud2 <-> numpy. `read_points` parses the requested fields with one structured
numpy dtype over the message buffer (explicit offsets, padded points and rows, either byte order) and
drops non-finite points, counting them; `make_pointcloud2` builds a float32 cloud for writers and
`make_structured_pointcloud2` one of any little-endian numeric fields (a sensor file's own layout);
`structured_points` reads every field of a cloud in its own layout and `with_structured_points`
puts such points back, so a rewrite (`ros2-lmd corrupt`) keeps a driver's fields and padding."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ros2_lmd.sensors.buffers import as_uint8_buffer
from ros2_lmd.sensors.errors import SensorDataError, int_field

# sensor_msgs/PointField datatype constants -> numpy type (byte order added per message).
POINTFIELD_DTYPES: dict[int, np.dtype] = {
    1: np.dtype(np.int8),
    2: np.dtype(np.uint8),
    3: np.dtype(np.int16),
    4: np.dtype(np.uint16),
    5: np.dtype(np.int32),
    6: np.dtype(np.uint32),
    7: np.dtype(np.float32),
    8: np.dtype(np.float64),
}
FLOAT32 = 7


@dataclass(frozen=True)
class PointCloudResult:
    """Parsed cloud: `points` is (N, len(fields)) float32 with non-finite points removed;
    `total_points` counts width*height before that, `dropped_nonfinite` how many were removed."""

    points: np.ndarray
    fields: tuple[str, ...]
    total_points: int
    dropped_nonfinite: int


def read_points(msg: Any, fields: Sequence[str], topic: str) -> PointCloudResult:
    """Read `fields` (in that order) of every point of a PointCloud2 as float32 columns.
    A point with any non-finite requested value (NaN, inf, or a float64 beyond float32 range) is
    dropped and counted, whatever `is_dense` claims (drivers set it loosely). Raises
    SensorDataError naming the topic and the inconsistent field."""
    names = tuple(fields)
    if not names:
        raise SensorDataError(topic, "fields: no fields requested")
    height, width = int_field(msg, "height", topic), int_field(msg, "width", topic)
    point_step, row_step = int_field(msg, "point_step", topic), int_field(msg, "row_step", topic)
    if height < 0 or width < 0:
        raise SensorDataError(topic, f"height/width: negative ({height} x {width})")
    available = _fields_by_name(msg.fields, topic)
    missing = [n for n in names if n not in available]
    if missing:
        raise SensorDataError(
            topic, f"fields: required field(s) {missing} missing; available: {list(available)}"
        )
    data = as_uint8_buffer(msg.data, topic)
    total = height * width
    if total == 0:
        # An empty sweep (a radar that sees nothing) is valid, whatever its layout says.
        if data.size:
            raise SensorDataError(
                topic, f"width*height: {width} x {height} = 0 points but data has {data.size} bytes"
            )
        return PointCloudResult(np.zeros((0, len(names)), np.float32), names, 0, 0)

    if point_step <= 0:
        raise SensorDataError(topic, f"point_step: must be > 0, got {point_step}")
    if row_step < width * point_step:
        raise SensorDataError(
            topic, f"row_step: {row_step} < width*point_step = {width}*{point_step} = {width * point_step}"
        )
    expected = row_step * height
    if data.size < expected:
        raise SensorDataError(
            topic,
            f"data: truncated, expected row_step*height = {row_step}*{height} = {expected} "
            f"bytes, got {data.size}",
        )
    if data.size > expected:
        raise SensorDataError(
            topic,
            f"width*height: {width} x {height} points with row_step {row_step} describe "
            f"{expected} bytes but data has {data.size}",
        )

    byte_order: Literal[">", "<"] = ">" if msg.is_bigendian else "<"
    formats, offsets = [], []
    for name in names:
        offset, datatype, count = available[name]
        if datatype not in POINTFIELD_DTYPES:
            raise SensorDataError(
                topic, f"fields[{name!r}].datatype: unsupported datatype {datatype} (expected 1..8)"
            )
        if count > 1:
            raise SensorDataError(
                topic, f"fields[{name!r}].count: {count} elements; only scalar fields can be read"
            )
        dtype = POINTFIELD_DTYPES[datatype].newbyteorder(byte_order)
        if offset < 0 or offset + dtype.itemsize > point_step:
            raise SensorDataError(
                topic,
                f"fields[{name!r}].offset: {offset} + {dtype.itemsize} bytes extends past "
                f"point_step {point_step}",
            )
        formats.append(dtype)
        offsets.append(offset)

    # Positional names: requested fields may repeat ("x" twice) and numpy needs unique names.
    keys = [f"f{i}" for i in range(len(names))]
    point_dtype = np.dtype({"names": keys, "formats": formats, "offsets": offsets, "itemsize": point_step})
    # Strided view: rows start every row_step bytes, so row padding is skipped without a copy.
    structured = np.ndarray(
        shape=(height, width), dtype=point_dtype, buffer=data, strides=(row_step, point_step)
    )
    points = np.empty((total, len(names)), dtype=np.float32)
    # A float64 beyond float32 range becomes inf here and is dropped below with the NaNs.
    with np.errstate(over="ignore"):
        for column, key in enumerate(keys):
            points[:, column] = structured[key].reshape(-1)
    finite = np.isfinite(points).all(axis=1)
    dropped = int(total - np.count_nonzero(finite))
    if dropped:
        points = points[finite]
    return PointCloudResult(points, names, total, dropped)


def _fields_by_name(msg_fields: Any, topic: str) -> dict[str, tuple[int, int, int]]:
    """name -> (offset, datatype, count); a name listed twice is ambiguous and rejected."""
    if isinstance(msg_fields, (str, bytes)) or not isinstance(msg_fields, Sequence):  # bindings: a list
        raise SensorDataError(
            topic, f"fields: expected a list of PointFields, got {type(msg_fields).__name__}"
        )
    layout: dict[str, tuple[int, int, int]] = {}
    for i, field in enumerate(msg_fields):
        if not isinstance(getattr(field, "name", None), str):
            raise SensorDataError(topic, f"fields[{i}].name: expected a string, got {field!r:.80}")
        name = field.name
        if name in layout:
            raise SensorDataError(topic, f"fields: field {name!r} listed twice")
        offset, datatype, count = (
            int_field(field, attr, topic, f"fields[{name!r}].{attr}")
            for attr in ("offset", "datatype", "count")
        )
        # count 0 is published by some drivers for a scalar; treat it as 1.
        layout[name] = (offset, datatype, max(count, 1))
    return layout


def pointcloud2_layout(
    array: np.ndarray, names: Sequence[str]
) -> tuple[list[tuple[str, int, int, int]], int, bytes]:
    """Packed little-endian FLOAT32 layout of an (N, len(names)) array for a PointCloud2:
    (fields as (name, offset, datatype, count), point_step, data)."""
    values = np.asarray(array)
    names = tuple(names)
    if values.ndim != 2 or values.shape[1] != len(names):
        raise ValueError(
            f"pointcloud2_layout: array must be (N, {len(names)}) for fields {list(names)}, "
            f"got shape {values.shape}"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"pointcloud2_layout: duplicate field names {list(names)}")
    fields = [(name, 4 * i, FLOAT32, 1) for i, name in enumerate(names)]
    data = np.ascontiguousarray(values, dtype="<f4").tobytes()
    return fields, 4 * len(names), data


def structured_layout(points: np.ndarray) -> tuple[list[tuple[str, int, int, int]], int, bytes]:
    """PointCloud2 layout of a little-endian structured array (one field per scalar dtype field, at
    the dtype's offsets, of its type): (fields as (name, offset, datatype, count), point_step, data).
    The data are the array's bytes unchanged, so every value keeps its bits."""
    dtype = points.dtype
    if dtype.names is None or dtype.fields is None:
        raise ValueError(f"structured_layout: expected a structured array, got dtype {dtype}")
    fields = []
    for name in dtype.names:
        field_dtype, offset = dtype.fields[name][:2]
        datatype = next(
            (code for code, known in POINTFIELD_DTYPES.items() if known == field_dtype.newbyteorder("<")),
            None,
        )
        if datatype is None or field_dtype.byteorder == ">" or field_dtype.shape:
            raise ValueError(
                f"structured_layout: field {name!r} of type {field_dtype} has no little-endian scalar "
                "PointField datatype"
            )
        fields.append((name, int(offset), datatype, 1))
    return fields, dtype.itemsize, np.ascontiguousarray(points).tobytes()


def make_pointcloud2(types: Any, header: Any, array: np.ndarray, names: Sequence[str]) -> Any:
    """An unorganised (height 1) float32 PointCloud2 of `array`, built with `types`
    (ros2_lmd.messages.types: RclpyTypes or RosbagsTypes)."""
    fields, point_step, data = pointcloud2_layout(array, names)
    count = int(np.asarray(array).shape[0])
    return _pointcloud2_message(
        types, header, fields, point_step, count, data, bool(np.isfinite(np.asarray(array, np.float32)).all())
    )


def make_structured_pointcloud2(types: Any, header: Any, points: np.ndarray) -> Any:
    """An unorganised (height 1) PointCloud2 of a structured array, every field with its own type
    and the array's bytes as data (`structured_layout`): e.g. a nuScenes radar sweep as stored."""
    fields, point_step, data = structured_layout(points)
    floats = [n for n in points.dtype.names or () if points.dtype[n].kind == "f"]
    dense = all(bool(np.isfinite(points[n]).all()) for n in floats)
    return _pointcloud2_message(types, header, fields, point_step, len(points), data, dense)


def _pointcloud2_message(
    types: Any,
    header: Any,
    fields: list[tuple[str, int, int, int]],
    point_step: int,
    count: int,
    data: bytes,
    is_dense: bool,
) -> Any:
    return types.new(
        "sensor_msgs/msg/PointCloud2",
        header=header,
        height=1,
        width=count,
        fields=[
            types.new("sensor_msgs/msg/PointField", name=n, offset=o, datatype=d, count=c)
            for n, o, d, c in fields
        ],
        is_bigendian=False,
        point_step=point_step,
        row_step=point_step * count,
        data=data,
        is_dense=is_dense,
    )


def structured_points(msg: Any, topic: str) -> np.ndarray:
    """Every point of a PointCloud2 as one structured array in the message's own layout (all its
    scalar fields at their offsets, `itemsize` point_step, its byte order), rows flattened; the
    checks of `read_points` (needs x, y, z) name the topic and the field."""
    read_points(msg, ("x", "y", "z"), topic)  # the layout checks, with their messages
    height, width = int(msg.height), int(msg.width)
    point_step, row_step = int(msg.point_step), int(msg.row_step)
    order: Literal[">", "<"] = ">" if msg.is_bigendian else "<"
    layout = _fields_by_name(msg.fields, topic)
    names = [n for n, (_, datatype, count) in layout.items() if datatype in POINTFIELD_DTYPES and count == 1]
    formats = [POINTFIELD_DTYPES[layout[n][1]].newbyteorder(order) for n in names]
    offsets = [layout[n][0] for n in names]
    dtype = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": max(point_step, 1)})
    if height * width == 0:
        return np.zeros(0, dtype)
    data = as_uint8_buffer(msg.data, topic)
    rows = np.ndarray(shape=(height, width), dtype=dtype, buffer=data, strides=(row_step, point_step))
    return rows.reshape(-1).copy()


def with_structured_points(msg: Any, points: np.ndarray) -> Any:
    """A copy of a (rosbags, dataclass) PointCloud2 holding `points` (a `structured_points` array
    of its layout) as one unorganised row; an organised cloud whose point count is unchanged keeps
    its height and width."""
    import dataclasses

    count = len(points)
    height, width = (
        (int(msg.height), int(msg.width)) if count == int(msg.height) * int(msg.width) else (1, count)
    )
    step = int(msg.point_step)
    data = np.frombuffer(np.ascontiguousarray(points).tobytes(), np.uint8)
    return dataclasses.replace(msg, height=height, width=width, row_step=step * width, data=data)
