"""PointCloud2 reader against an independent construction of the bytes (struct.pack per point, with
random layouts), its errors, and the writer round trip through fake and rosbags message classes.
test_converters_fuzz.py fuzzes the reader with mutated layouts and bytes."""

from __future__ import annotations

import array
import struct
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.properties import examples

from ros2_lmd.messages.types import header_msg, rosbags_types
from ros2_lmd.sensors import (
    LIDAR_FIELDS,
    RADAR_FIELDS,
    SensorDataError,
    make_pointcloud2,
    pointcloud2_layout,
    read_points,
)

TOPIC = "/lidar_top"

# PointField datatype -> (struct format char, size, value strategy). Floats are drawn as float32 so
# the expected float32 column is exact; integers cover their full range.
_DATATYPES = {
    1: ("b", 1, st.integers(-128, 127)),
    2: ("B", 1, st.integers(0, 255)),
    3: ("h", 2, st.integers(-(2**15), 2**15 - 1)),
    4: ("H", 2, st.integers(0, 2**16 - 1)),
    5: ("i", 4, st.integers(-(2**31), 2**31 - 1)),
    6: ("I", 4, st.integers(0, 2**32 - 1)),
    7: ("f", 4, st.floats(width=32, allow_nan=False, allow_infinity=False)),
    8: ("d", 8, st.floats(width=32, allow_nan=False, allow_infinity=False)),
}
_NAMES = ("x", "y", "z", "intensity", "rcs", "vx_comp", "vy_comp", "ring", "t")


def _field(name: str, offset: int, datatype: int, count: int = 1) -> SimpleNamespace:
    return SimpleNamespace(name=name, offset=offset, datatype=datatype, count=count)


def _cloud(fields, data, *, width, height=1, point_step, row_step=None, big=False, dense=True):
    return SimpleNamespace(
        header=SimpleNamespace(frame_id="lidar_top"),
        height=height,
        width=width,
        fields=fields,
        is_bigendian=big,
        point_step=point_step,
        row_step=width * point_step if row_step is None else row_step,
        data=data,
        is_dense=dense,
    )


def _as_container(raw: bytes, kind: str):
    """The byte containers the bindings use: rclpy (array.array, list), rosbags (numpy)."""
    return {
        "bytes": raw,
        "bytearray": bytearray(raw),
        "array": array.array("B", raw),
        "list": list(raw),
        "numpy": np.frombuffer(raw, np.uint8).copy(),
    }[kind]


@st.composite
def _random_clouds(draw):
    """A PointCloud2 with a random layout and the values it holds, built point by point."""
    names = draw(st.lists(st.sampled_from(_NAMES), min_size=1, max_size=5, unique=True))
    datatypes = [draw(st.sampled_from(sorted(_DATATYPES))) for _ in names]
    # Random field order in memory with random gaps between fields.
    order = draw(st.permutations(range(len(names))))
    offsets = [0] * len(names)
    cursor = 0
    for i in order:
        cursor += draw(st.integers(0, 3))
        offsets[i] = cursor
        cursor += _DATATYPES[datatypes[i]][1]
    point_step = cursor + draw(st.integers(0, 5))
    width = draw(st.integers(1, 6))
    height = draw(st.integers(1, 3))
    row_step = width * point_step + draw(st.integers(0, 7))
    big = draw(st.booleans())
    endian = ">" if big else "<"
    values = [[[draw(_DATATYPES[dt][2]) for dt in datatypes] for _ in range(width)] for _ in range(height)]
    junk = draw(st.binary(min_size=row_step * height, max_size=row_step * height))
    buf = bytearray(junk)  # padding bytes hold junk, so reading them would show up
    for r in range(height):
        for c in range(width):
            for i, dt in enumerate(datatypes):
                struct.pack_into(
                    endian + _DATATYPES[dt][0],
                    buf,
                    r * row_step + c * point_step + offsets[i],
                    values[r][c][i],
                )
    fields = [_field(n, o, dt) for n, o, dt in zip(names, offsets, datatypes)]
    fields = draw(st.permutations(fields))  # the fields list order is independent of memory order
    requested = draw(st.lists(st.sampled_from(names), min_size=1, max_size=len(names), unique=True))
    expected = np.array(
        [[values[r][c][names.index(n)] for n in requested] for r in range(height) for c in range(width)],
        dtype=np.float64,
    )
    kind = draw(st.sampled_from(["bytes", "bytearray", "array", "list", "numpy"]))
    msg = _cloud(
        list(fields),
        _as_container(bytes(buf), kind),
        width=width,
        height=height,
        point_step=point_step,
        row_step=row_step,
        big=big,
    )
    return msg, requested, expected.astype(np.float32)


@settings(max_examples=examples(150), deadline=None)
@given(_random_clouds())
def test_read_points_matches_independent_packing(case):
    msg, requested, expected = case
    result = read_points(msg, requested, TOPIC)
    assert result.points.dtype == np.float32
    assert result.points.shape == (msg.width * msg.height, len(requested))
    np.testing.assert_array_equal(result.points, expected)
    assert result.total_points == msg.width * msg.height
    assert result.dropped_nonfinite == 0
    assert result.fields == tuple(requested)


def _float_cloud(points: np.ndarray, names=LIDAR_FIELDS):
    fields, point_step, data = pointcloud2_layout(points, names)
    return _cloud([_field(*f) for f in fields], data, width=len(points), point_step=point_step)


def test_nonfinite_points_are_dropped_and_counted():
    points = np.arange(24, dtype=np.float32).reshape(6, 4)
    points[1, 0] = np.nan
    points[3, 2] = np.inf
    points[4, 3] = -np.inf
    result = read_points(_float_cloud(points), LIDAR_FIELDS, TOPIC)
    assert result.total_points == 6
    assert result.dropped_nonfinite == 3
    np.testing.assert_array_equal(result.points, points[[0, 2, 5]])


def test_nan_in_a_field_not_read_keeps_the_point():
    points = np.arange(8, dtype=np.float32).reshape(2, 4)
    points[0, 3] = np.nan  # intensity, not requested
    result = read_points(_float_cloud(points), ("x", "y", "z"), TOPIC)
    assert result.dropped_nonfinite == 0
    np.testing.assert_array_equal(result.points, points[:, :3])


def test_float64_beyond_float32_range_counts_as_nonfinite():
    buf = struct.pack("<dd", 1.0, 1e300)
    msg = _cloud([_field("x", 0, 8)], buf, width=2, point_step=8)
    result = read_points(msg, ["x"], TOPIC)
    assert result.dropped_nonfinite == 1
    np.testing.assert_array_equal(result.points, [[1.0]])


def test_empty_cloud_is_valid():
    msg = _cloud([_field("x", 0, 7)], b"", width=0, point_step=4)
    result = read_points(msg, ["x"], TOPIC)
    assert result.points.shape == (0, 1) and result.total_points == 0


def test_same_field_twice_and_unrequested_odd_field():
    # A vendor field with an unknown datatype is ignored when not requested.
    buf = struct.pack("<fB", 2.5, 7)
    msg = _cloud([_field("x", 0, 7), _field("vendor", 4, 42)], buf, width=1, point_step=5)
    np.testing.assert_array_equal(read_points(msg, ["x", "x"], TOPIC).points, [[2.5, 2.5]])


def _valid():
    return _float_cloud(np.ones((3, 4), np.float32))


@pytest.mark.parametrize(
    "mutate, words",
    [
        (lambda m: setattr(m, "fields", m.fields[:3]), ["intensity", "missing", "available", "'x'"]),
        (lambda m: setattr(m.fields[1], "datatype", 9), ["'y'", "datatype 9"]),
        (lambda m: setattr(m.fields[3], "offset", 14), ["'intensity'", "past point_step 16"]),
        (lambda m: setattr(m, "point_step", 0), ["point_step", "> 0"]),
        (lambda m: setattr(m, "data", m.data[:-1]), ["truncated", "48 bytes", "got 47"]),
        (lambda m: setattr(m, "row_step", 40), ["row_step", "40 < width*point_step"]),
        (
            lambda m: (setattr(m, "width", 2), setattr(m, "row_step", 32)),
            ["width*height", "2 x 1", "data has 48"],
        ),
        (lambda m: setattr(m.fields[0], "count", 3), ["'x'", "count"]),
        (lambda m: setattr(m, "fields", m.fields + [_field("x", 0, 7)]), ["'x'", "twice"]),
        (lambda m: setattr(m, "data", [0, 300] * 24), ["data", "0..255"]),
        (lambda m: setattr(m, "data", array.array("f", [0.0] * 12)), ["data", "typecode"]),
        (lambda m: setattr(m, "data", "not bytes"), ["data", "str"]),
        # Duck-typed messages with non-integer or missing fields (found by test_converters_fuzz.py).
        (lambda m: setattr(m, "height", None), ["height", "integer", "NoneType"]),
        (lambda m: setattr(m, "point_step", 16.0), ["point_step", "integer", "float"]),
        (lambda m: setattr(m, "row_step", float("nan")), ["row_step", "integer"]),
        (lambda m: setattr(m.fields[2], "offset", None), ["fields['z'].offset", "integer"]),
        (lambda m: setattr(m.fields[0], "datatype", "7"), ["fields['x'].datatype", "integer"]),
        (lambda m: setattr(m, "fields", None), ["fields", "list of PointFields", "NoneType"]),
        (lambda m: setattr(m, "fields", "xyz"), ["fields", "list of PointFields", "str"]),
        (lambda m: setattr(m, "fields", [SimpleNamespace(name="x")]), ["fields['x'].offset", "integer"]),
        (lambda m: setattr(m, "fields", [None]), ["fields[0].name", "string"]),
    ],
)
def test_malformed_cloud_raises_naming_topic_and_field(mutate, words):
    msg = _valid()
    mutate(msg)
    with pytest.raises(SensorDataError) as info:
        read_points(msg, LIDAR_FIELDS, TOPIC)
    assert info.value.topic == TOPIC
    assert str(info.value).startswith(f"{TOPIC}: ")
    for word in words:
        assert word in info.value.reason


def test_layout_is_packed_little_endian_float32():
    points = np.array([[1.0, -2.0], [3.5, 4.0]])
    fields, point_step, data = pointcloud2_layout(points, ["x", "y"])
    assert fields == [("x", 0, 7, 1), ("y", 4, 7, 1)]
    assert point_step == 8
    assert data == struct.pack("<4f", 1.0, -2.0, 3.5, 4.0)
    with pytest.raises(ValueError, match="shape"):
        pointcloud2_layout(points, ["x", "y", "z"])


def test_writer_with_rclpy_classes_round_trips():
    pytest.importorskip("sensor_msgs.msg", reason="needs the ROS 2 message packages")
    from ros2_lmd.messages.types import RclpyTypes

    types = RclpyTypes()
    points = np.random.default_rng(1).normal(size=(7, 6)).astype(np.float32)
    msg = make_pointcloud2(types, header_msg(types, 12.5, "radar_front"), points, RADAR_FIELDS)
    assert type(msg).__module__.startswith("sensor_msgs.msg") and msg.is_dense
    assert isinstance(msg.data, array.array)
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (12, 500_000_000)
    np.testing.assert_array_equal(read_points(msg, RADAR_FIELDS, "/radar_front").points, points)


def test_writer_with_rosbags_classes_survives_cdr_round_trip():
    types = rosbags_types()
    store = types.typestore
    points = np.random.default_rng(2).normal(size=(50, 4)).astype(np.float32)
    points[5, 1] = np.nan
    msg = make_pointcloud2(types, header_msg(types, 3.25, "lidar_top"), points, LIDAR_FIELDS)
    assert not msg.is_dense
    raw = store.serialize_cdr(msg, msg.__msgtype__)
    decoded = store.deserialize_cdr(raw, "sensor_msgs/msg/PointCloud2")
    assert isinstance(decoded.data, np.ndarray)
    result = read_points(decoded, LIDAR_FIELDS, TOPIC)
    assert (result.total_points, result.dropped_nonfinite) == (50, 1)
    np.testing.assert_array_equal(result.points, np.delete(points, 5, axis=0))


def test_rosbags_big_endian_cloud_with_padding():
    # A real rosbags message (not written by us): big-endian, padded points and rows, height 2.
    types = rosbags_types()
    values = [[(1.5, 300), (-2.0, 7)], [(8.0, 65535), (0.25, 0)]]
    row_step = 2 * 12 + 4
    buf = bytearray(row_step * 2)
    for r, row in enumerate(values):
        for c, (x, ring) in enumerate(row):
            struct.pack_into(">fxxxxH", buf, r * row_step + c * 12, x, ring)
    msg = types.new(
        "sensor_msgs/msg/PointCloud2",
        header=header_msg(types, 0.0, "lidar_top"),
        height=2,
        width=2,
        fields=[
            types.new("sensor_msgs/msg/PointField", name="x", offset=0, datatype=7, count=1),
            types.new("sensor_msgs/msg/PointField", name="ring", offset=8, datatype=4, count=1),
        ],
        is_bigendian=True,
        point_step=12,
        row_step=row_step,
        data=np.frombuffer(bytes(buf), np.uint8),
        is_dense=True,
    )
    result = read_points(msg, ["ring", "x"], TOPIC)
    np.testing.assert_array_equal(result.points, [[300, 1.5], [7, -2.0], [65535, 8.0], [0, 0.25]])


def test_no_rclpy_import_in_sensors():
    import pathlib

    import ros2_lmd.sensors as sensors

    for path in pathlib.Path(sensors.__file__).parent.glob("*.py"):
        source = path.read_text()
        assert "import rclpy" not in source and "from rclpy" not in source, path
