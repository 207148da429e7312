"""Property-based tests of every message -> numpy converter (read_points, image_to_rgb,
compressed_to_rgb, intrinsics_from_camera_info): a monitor must survive bad data. Well-formed messages
must round-trip against an independent reading of their bytes (struct.unpack_from / np.frombuffer with
an explicit dtype and byte order, Pillow for codecs); random or mutated messages must give a valid
result that matches the same independent reading, or a SensorDataError naming the topic and the field.
Any other exception fails the test: that is a crash in the monitor's callback."""

from __future__ import annotations

import array
import io
import math
import re
import struct
import zlib
from types import SimpleNamespace
from unittest import mock

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage
from support.properties import examples

import ros2_lmd.sensors.image as image_module
from ros2_lmd.sensors import (
    SensorDataError,
    compressed_to_rgb,
    image_to_rgb,
    intrinsics_from_camera_info,
    read_points,
    rgb_to_compressed,
)
from ros2_lmd.sensors.image import DEFAULT_MAX_IMAGE_PIXELS

FUZZ = settings(max_examples=examples(1000), deadline=None, suppress_health_check=[HealthCheck.too_slow])

CLOUD_TOPIC = "/lidar_top"
IMAGE_TOPIC = "/cam_front/image_raw"
COMPRESSED_TOPIC = "/cam_front/image_rect_compressed"
INFO_TOPIC = "/cam_front/camera_info"


def _convert(fn, *args, **kwargs):
    """(result, None) or (None, SensorDataError); any other exception propagates and fails.
    The outcome is a hypothesis event (--hypothesis-show-statistics: how often each path ran)."""
    try:
        result = fn(*args, **kwargs)
    except SensorDataError as err:
        event(f"refused: {err.reason.split(':', 1)[0][:30]}")
        return None, err
    event("accepted")
    return result, None


def _assert_names_topic_and_field(err: SensorDataError, topic: str, fields: tuple[str, ...]) -> None:
    """The error starts "<topic>: <field...>: " and the field part names a message field."""
    assert err.topic == topic and str(err) == f"{topic}: {err.reason}", str(err)
    head = err.reason.split(":", 1)[0]
    assert ":" in err.reason and any(re.search(rf"\b{re.escape(f)}\b", head) for f in fields), err.reason


def _raw_bytes(container) -> bytes:
    """The bytes a converter should see in a message's data field (independent of buffers.py)."""
    if isinstance(container, np.ndarray):
        return np.ascontiguousarray(container).tobytes()
    return bytes(container)


def _bytes_or_empty(container) -> bytes:
    """The bytes of a data field to mutate further (empty when an earlier mutation left junk)."""
    try:
        return _raw_bytes(container)
    except (TypeError, ValueError):
        return b""


def _containers(raw: bytes):
    """The byte containers the bindings use: rclpy (array.array, list), rosbags (numpy)."""
    return st.sampled_from(["bytes", "bytearray", "array", "list", "numpy", "memoryview"]).map(
        lambda kind: {
            "bytes": lambda: raw,
            "bytearray": lambda: bytearray(raw),
            "array": lambda: array.array("B", raw),
            "list": lambda: list(raw),
            "numpy": lambda: np.frombuffer(raw, np.uint8).copy(),
            "memoryview": lambda: memoryview(raw),
        }[kind]()
    )


# Values a duck-typed message may hold where ROS has an integer.
_JUNK = st.sampled_from([None, 1.5, float("nan"), "3", b"\x03", [3], object()])
_WIDE_INTS = st.one_of(st.integers(-3, 40), st.integers(-(2**64), 2**64))


def _mutated_bytes(raw: bytes):
    """Truncated, extended, bit-flipped or replaced bytes, or a container no binding uses."""
    n = len(raw)
    return st.one_of(
        st.integers(0, max(n - 1, 0)).map(lambda k: raw[:k]),
        st.binary(min_size=1, max_size=16).map(lambda extra: raw + extra),
        st.lists(st.tuples(st.integers(0, max(n - 1, 0)), st.integers(1, 255)), min_size=1, max_size=4).map(
            lambda flips: _flip(raw, flips)
        ),
        st.binary(max_size=2 * n + 8),
        st.sampled_from(
            [
                None,
                "not bytes",
                [0, 256] * 4,
                [-1] * 4,
                [0.5] * 4,
                array.array("f", [0.0] * 4),
                np.zeros(4, np.int16),
                np.zeros(4, np.bool_),
                np.zeros((2, 3), np.uint8),
            ]
        ),
    )


def _flip(raw: bytes, flips) -> bytes:
    buf = bytearray(raw)
    for pos, mask in flips:
        if buf:
            buf[pos % len(buf)] ^= mask
    return bytes(buf)


# --- PointCloud2 ----------------------------------------------------------------------------------

# PointField datatype -> (struct format char, size, value strategy). Floats include NaN, inf and,
# for FLOAT64, values beyond float32 range; integers cover their full range.
_PF = {
    1: ("b", 1, st.integers(-128, 127)),
    2: ("B", 1, st.integers(0, 255)),
    3: ("h", 2, st.integers(-(2**15), 2**15 - 1)),
    4: ("H", 2, st.integers(0, 2**16 - 1)),
    5: ("i", 4, st.integers(-(2**31), 2**31 - 1)),
    6: ("I", 4, st.integers(0, 2**32 - 1)),
    7: ("f", 4, st.floats(width=32)),
    8: ("d", 8, st.one_of(st.floats(width=32), st.floats(), st.sampled_from([1e39, -1e300, 3.5e38]))),
}
_PF_NAMES = ("x", "y", "z", "intensity", "rcs", "vx_comp", "ring", "t")


def _pf(name, offset, datatype, count=1):
    return SimpleNamespace(name=name, offset=offset, datatype=datatype, count=count)


@st.composite
def _clouds(draw):
    """(msg, requested, expected float32 points): a random layout (field order in memory, gaps,
    point and row padding filled with junk, either byte order, empty clouds, fields that are not
    requested with odd datatypes or counts), packed value by value with struct."""
    names = draw(st.lists(st.sampled_from(_PF_NAMES), min_size=1, max_size=5, unique=True))
    datatypes = [draw(st.sampled_from(sorted(_PF))) for _ in names]
    counts = [draw(st.sampled_from([1, 1, 1, 0])) for _ in names]  # 0: a scalar, as some drivers say
    extras = draw(st.lists(st.sampled_from([("vendor", 42, 1), ("rgb_arr", 2, 3)]), max_size=2, unique=True))
    slots = [(n, _PF[dt][1]) for n, dt in zip(names, datatypes)] + [(n, 4 * c) for n, _, c in extras]
    order = draw(st.permutations(range(len(slots))))
    offsets = [0] * len(slots)
    cursor = 0
    for i in order:
        cursor += draw(st.integers(0, 3))
        offsets[i] = cursor
        cursor += slots[i][1]
    point_step = cursor + draw(st.integers(0, 5))
    width, height = draw(st.integers(0, 6)), draw(st.integers(0, 3))
    row_step = width * point_step + draw(st.integers(0, 7))
    big = draw(st.booleans())
    total = width * height
    fields = [_pf(n, offsets[i], dt, counts[i]) for i, (n, dt) in enumerate(zip(names, datatypes))]
    fields += [_pf(n, offsets[len(names) + j], dt, c) for j, (n, dt, c) in enumerate(extras)]
    fields = list(draw(st.permutations(fields)))  # the list order is independent of memory order
    requested = draw(st.lists(st.sampled_from(names), min_size=1, max_size=6))  # may repeat
    if total == 0:
        raw, expected = b"", np.zeros((0, len(requested)), np.float32)
    else:
        seed = draw(st.integers(0, 2**32 - 1))
        buf = bytearray(np.random.default_rng(seed).bytes(row_step * height))  # junk in the padding
        rows = []
        for r in range(height):
            for c in range(width):
                values = {}
                for n, dt, off in zip(names, datatypes, offsets):
                    values[n] = draw(_PF[dt][2])
                    fmt = (">" if big else "<") + _PF[dt][0]
                    struct.pack_into(fmt, buf, r * row_step + c * point_step + off, values[n])
                rows.append([_to_float32(values[n]) for n in requested])
        raw = bytes(buf)
        expected = np.array([row for row in rows if all(math.isfinite(v) for v in row)], np.float32)
        expected = expected.reshape(-1, len(requested))
    msg = SimpleNamespace(
        header=SimpleNamespace(frame_id="lidar_top"),
        height=height,
        width=width,
        fields=fields,
        is_bigendian=big,
        point_step=point_step,
        row_step=row_step,
        data=draw(_containers(raw)),
        is_dense=False,
    )
    return msg, requested, expected


def _to_float32(value) -> float:
    """A value as float32 (round to nearest; beyond float32 range: inf), in plain Python."""
    if isinstance(value, int) or not math.isfinite(value):
        return float(np.float32(value))
    try:
        return struct.unpack("f", struct.pack("f", value))[0]
    except OverflowError:  # struct refuses what rounds to inf (numpy gives inf)
        return math.copysign(math.inf, value)


def _check_cloud_result(result, msg, requested, expected=None) -> None:
    total = msg.width * msg.height
    assert result.fields == tuple(requested)
    assert result.total_points == total
    assert result.points.dtype == np.float32 and result.points.ndim == 2
    assert result.points.shape == (total - result.dropped_nonfinite, len(requested))
    assert np.isfinite(result.points).all()
    if expected is None:
        expected = _reference_points(msg, requested)
    np.testing.assert_array_equal(result.points, expected)
    assert result.dropped_nonfinite == total - len(expected)


def _reference_points(msg, requested) -> np.ndarray:
    """An independent reading of an accepted cloud: struct.unpack_from point by point. Asserts the
    layout contract the converter must have checked (each read inside its point, rows inside data)."""
    raw = _raw_bytes(msg.data)
    total = msg.width * msg.height
    if total == 0:
        return np.zeros((0, len(requested)), np.float32)
    layout = {str(f.name): (f.offset, f.datatype, f.count) for f in msg.fields}
    assert len(layout) == len(msg.fields), "accepted a cloud with a field listed twice"
    assert msg.point_step > 0 and msg.row_step >= msg.width * msg.point_step
    assert len(raw) == msg.row_step * msg.height, "accepted a cloud whose data size is inconsistent"
    order = ">" if msg.is_bigendian else "<"
    rows = []
    for r in range(msg.height):
        for c in range(msg.width):
            row = []
            for name in requested:
                offset, datatype, count = layout[name]
                char, size, _ = _PF[datatype]
                assert count <= 1 and 0 <= offset and offset + size <= msg.point_step
                at = r * msg.row_step + c * msg.point_step + offset
                row.append(_to_float32(struct.unpack_from(order + char, raw, at)[0]))
            if all(math.isfinite(v) for v in row):
                rows.append(row)
    return np.array(rows, np.float32).reshape(-1, len(requested))


@FUZZ
@given(_clouds())
def test_read_points_well_formed_clouds_round_trip(case):
    msg, requested, expected = case
    _check_cloud_result(read_points(msg, requested, CLOUD_TOPIC), msg, requested, expected)


_CLOUD_FIELDS = ("fields", "height", "width", "point_step", "row_step", "data", "is_bigendian")
_CLOUD_INTS = ("height", "width", "point_step", "row_step")


@st.composite
def _mutated_clouds(draw):
    msg, requested, _ = draw(_clouds())
    for _ in range(draw(st.integers(1, 3))):
        what = draw(st.sampled_from([*_CLOUD_INTS, "is_bigendian", "field", "fields", "data", "requested"]))
        if what in _CLOUD_INTS:
            setattr(msg, what, draw(st.one_of(_WIDE_INTS, _JUNK)))
        elif what == "is_bigendian":
            msg.is_bigendian = draw(st.sampled_from([0, 1, 2, True, False]))
        elif (
            what == "field"
            and isinstance(msg.fields, list)
            and msg.fields
            and hasattr(msg.fields[0], "offset")
        ):
            field = draw(st.sampled_from(msg.fields))
            key = draw(st.sampled_from(["offset", "datatype", "count", "name"]))
            value = {
                "offset": st.one_of(_WIDE_INTS, _JUNK),
                "datatype": st.one_of(st.integers(-1, 12), _JUNK),
                "count": st.one_of(st.integers(-1, 5), _JUNK),
                "name": st.sampled_from(_PF_NAMES),
            }[key]
            msg.fields = [SimpleNamespace(**vars(f)) for f in msg.fields]  # do not alias the original
            setattr(msg.fields[[f.name for f in msg.fields].index(field.name)], key, draw(value))
        elif what == "fields":
            current = msg.fields if isinstance(msg.fields, list) else []
            msg.fields = draw(
                st.one_of(
                    st.just([]),
                    st.just(current[:-1]),
                    st.just(current + current[:1]),
                    st.sampled_from([None, 7, "xyz", [None], [SimpleNamespace(name="x")]]),
                )
            )
        elif what == "data":
            msg.data = draw(_mutated_bytes(_bytes_or_empty(msg.data)))
        elif what == "requested":
            requested = draw(st.lists(st.sampled_from((*_PF_NAMES, "missing")), max_size=4))
    return msg, requested


@FUZZ
@given(_mutated_clouds())
def test_read_points_mutated_clouds_give_a_valid_cloud_or_a_named_error(case):
    msg, requested = case
    result, err = _convert(read_points, msg, requested, CLOUD_TOPIC)
    if err is not None:
        _assert_names_topic_and_field(err, CLOUD_TOPIC, _CLOUD_FIELDS)
    else:
        _check_cloud_result(result, msg, requested)


# --- Image ----------------------------------------------------------------------------------------

_ENCODINGS = {  # encoding -> (channels, bytes per channel), written out independently of image.py
    "rgb8": (3, 1),
    "bgr8": (3, 1),
    "rgba8": (4, 1),
    "bgra8": (4, 1),
    "mono8": (1, 1),
    "mono16": (1, 2),
    "16UC1": (1, 2),
    "bayer_rggb8": (1, 1),
    "bayer_bggr8": (1, 1),
    "bayer_gbrg8": (1, 1),
    "bayer_grbg8": (1, 1),
}
_BAYER = {
    "bayer_rggb8": getattr(cv2, "COLOR_BayerRGGB2RGB", cv2.COLOR_BayerBG2RGB),
    "bayer_bggr8": getattr(cv2, "COLOR_BayerBGGR2RGB", cv2.COLOR_BayerRG2RGB),
    "bayer_gbrg8": getattr(cv2, "COLOR_BayerGBRG2RGB", cv2.COLOR_BayerGR2RGB),
    "bayer_grbg8": getattr(cv2, "COLOR_BayerGRBG2RGB", cv2.COLOR_BayerGB2RGB),
}


@st.composite
def _raw_images(draw):
    """A raw Image of random bytes: any encoding, size, row padding and byte order."""
    encoding = draw(st.sampled_from(sorted(_ENCODINGS)))
    channels, depth = _ENCODINGS[encoding]
    height, width = draw(st.integers(1, 10)), draw(st.integers(1, 10))
    step = width * channels * depth + draw(st.integers(0, 9))
    raw = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).bytes(step * height)
    return SimpleNamespace(
        header=SimpleNamespace(frame_id="cam_front"),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=draw(st.sampled_from([0, 1, True, False, 2])),
        step=step,
        data=draw(_containers(raw)),
    )


def _reference_rgb(msg, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """An independent reading of an accepted Image: np.frombuffer row by row with an explicit dtype
    and byte order. Asserts the layout contract the converter must have checked."""
    channels, depth = _ENCODINGS[msg.encoding]
    raw = _raw_bytes(msg.data)
    assert msg.height >= 1 and msg.width >= 1 and msg.height * msg.width <= max_pixels
    assert msg.step >= msg.width * channels * depth and len(raw) == msg.step * msg.height
    dtype = np.dtype(np.uint8) if depth == 1 else np.dtype(">u2" if msg.is_bigendian else "<u2")
    rows = [
        np.frombuffer(raw[r * msg.step : r * msg.step + msg.width * channels * depth], dtype)
        for r in range(msg.height)
    ]
    px = np.stack(rows).reshape(msg.height, msg.width, channels)
    if depth == 2:
        px = (px // 256).astype(np.uint8)
    if msg.encoding in _BAYER:
        return cv2.cvtColor(np.ascontiguousarray(px[..., 0]), _BAYER[msg.encoding])
    return {
        "rgb8": lambda: px,
        "bgr8": lambda: px[..., [2, 1, 0]],
        "rgba8": lambda: px[..., :3],
        "bgra8": lambda: px[..., [2, 1, 0]],
    }.get(msg.encoding, lambda: np.repeat(px, 3, axis=2))()


def _check_rgb(rgb, height: int, width: int, data) -> None:
    assert rgb.dtype == np.uint8 and rgb.shape == (height, width, 3)
    assert rgb.flags.c_contiguous and rgb.flags.writeable and rgb.flags.owndata
    if isinstance(data, np.ndarray):
        assert not np.shares_memory(rgb, data)


@FUZZ
@given(_raw_images())
def test_image_to_rgb_well_formed_images_round_trip(msg):
    rgb = image_to_rgb(msg, IMAGE_TOPIC)
    _check_rgb(rgb, msg.height, msg.width, msg.data)
    np.testing.assert_array_equal(rgb, _reference_rgb(msg))


_IMAGE_FIELDS = ("encoding", "width", "height", "step", "data", "is_bigendian")


@st.composite
def _mutated_images(draw):
    msg = draw(_raw_images())
    max_pixels = draw(st.one_of(st.just(DEFAULT_MAX_IMAGE_PIXELS), st.integers(1, 120)))
    for _ in range(draw(st.integers(1, 3))):
        what = draw(st.sampled_from(["height", "width", "step", "encoding", "is_bigendian", "data"]))
        if what in ("height", "width", "step"):
            setattr(msg, what, draw(st.one_of(_WIDE_INTS, _JUNK)))
        elif what == "encoding":
            msg.encoding = draw(
                st.one_of(
                    st.sampled_from([*_ENCODINGS, "yuv422", "RGB8", "32FC1", "bayer_rggb16", "", "rgb8 "]),
                    st.text(max_size=8),
                    _JUNK,
                )
            )
        elif what == "is_bigendian":
            msg.is_bigendian = draw(st.sampled_from([0, 1, 2, True, False]))
        else:
            msg.data = draw(_mutated_bytes(_bytes_or_empty(msg.data)))
    return msg, max_pixels


@FUZZ
@given(_mutated_images())
def test_image_to_rgb_mutated_images_give_a_valid_image_or_a_named_error(case):
    msg, max_pixels = case
    rgb, err = _convert(image_to_rgb, msg, IMAGE_TOPIC, max_pixels=max_pixels)
    if err is not None:
        _assert_names_topic_and_field(err, IMAGE_TOPIC, _IMAGE_FIELDS)
    else:
        _check_rgb(rgb, msg.height, msg.width, msg.data)
        np.testing.assert_array_equal(rgb, _reference_rgb(msg, max_pixels))


# --- CompressedImage ------------------------------------------------------------------------------

_FORMATS = st.one_of(
    st.sampled_from(
        ["jpeg", "jpg", "png", "rgb8; jpeg compressed bgr8", "bgr8; png compressed bgr8", "mono8; jpeg", ""]
    ),
    st.text(max_size=12).filter(lambda s: "compresseddepth" not in s.lower()),
)


# Mostly plausible format strings (the bytes get the examples), sometimes compressedDepth or junk.
_ODD_FORMATS = st.sampled_from(["plain"] * 9 + ["odd"]).flatmap(
    lambda kind: _FORMATS if kind == "plain" else st.one_of(st.just("16UC1; compressedDepth png"), _JUNK)
)


@st.composite
def _source_images(draw):
    """A small RGB image: noise (hard for JPEG) or a smooth gradient."""
    height, width = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if draw(st.booleans()):
        return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    y, x = np.mgrid[0:height, 0:width]
    base, gain = rng.integers(0, 128, 3), rng.integers(0, 5, (2, 3))
    return np.clip(base + x[..., None] * gain[0] + y[..., None] * gain[1], 0, 255).astype(np.uint8)


def _pillow_bytes(rgb: np.ndarray, mode: str, fmt: str) -> bytes:
    """An image as another publisher writes it: Pillow, grayscale, alpha or palette PNG, grey JPEG."""
    image = PILImage.fromarray(rgb, "RGB")
    if mode == "RGBA":
        image.putalpha(PILImage.fromarray(rgb[..., 0]))
    elif mode != "RGB":
        image = image.convert(mode)
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


@st.composite
def _compressed_images(draw):
    """(bytes, the writer's source image or None): JPEG/PNG written by rgb_to_compressed or Pillow."""
    rgb = draw(_source_images())
    writer = draw(st.sampled_from(["png", "jpeg", "pillow-png", "pillow-jpeg"]))
    if writer == "png":
        return rgb_to_compressed(rgb, "png"), rgb
    if writer == "jpeg":
        return rgb_to_compressed(rgb, "jpeg", draw(st.integers(0, 100))), rgb
    if writer == "pillow-png":
        return _pillow_bytes(rgb, draw(st.sampled_from(["RGB", "RGBA", "L", "P"])), "PNG"), None
    return _pillow_bytes(rgb, draw(st.sampled_from(["RGB", "L"])), "JPEG"), None


def _pillow_rgb(data: bytes) -> np.ndarray:
    """Pillow's full decode: an independent decoder (own libpng/zlib and libjpeg build)."""
    with PILImage.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


@FUZZ
@given(_compressed_images(), _FORMATS, st.data())
def test_compressed_to_rgb_well_formed_images_round_trip(case, fmt, data):
    encoded, source = case
    msg = SimpleNamespace(format=fmt, data=data.draw(_containers(encoded)))
    rgb = compressed_to_rgb(msg, COMPRESSED_TOPIC)
    expected = _pillow_rgb(encoded)
    _check_rgb(rgb, *expected.shape[:2], msg.data)
    if encoded.startswith(b"\x89PNG"):
        np.testing.assert_array_equal(rgb, expected)
        if source is not None:  # PNG is lossless: the writer's image comes back exactly
            np.testing.assert_array_equal(rgb, source)
    else:
        assert np.abs(rgb.astype(int) - expected).max() <= 3


def _png_dims(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR, parsed by hand; None if it is not a PNG."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    return None


def _set_dims(data: bytes, width: int, height: int) -> bytes:
    """A valid JPEG or PNG with its header size replaced (a decode bomb when large; CRC fixed)."""
    buf = bytearray(data)
    if data.startswith(b"\x89PNG"):
        struct.pack_into(">II", buf, 16, width, height)
        struct.pack_into(">I", buf, 29, _crc32(bytes(buf[12:29])))
    else:
        struct.pack_into(">HH", buf, _jpeg_sof(data) + 5, height, width)
    return bytes(buf)


def _jpeg_sof(data: bytes) -> int:
    """Position of the SOF marker of a writer's JPEG: its segments follow SOI back to back."""
    pos = 2
    while data[pos] == 0xFF and data[pos + 1] not in (0xC0, 0xC1, 0xC2):
        pos += 2 + struct.unpack_from(">H", data, pos + 2)[0]
    assert data[pos] == 0xFF, "no SOF marker found"
    return pos


def _crc32(chunk: bytes) -> int:
    return zlib.crc32(chunk) & 0xFFFFFFFF


@st.composite
def _bad_compressed(draw):
    """(bytes, (width, height) written into the header or None): random bytes, a magic number and
    junk, bit flips, truncation, insertion/deletion, or a valid header claiming another size."""
    encoded, _ = draw(_compressed_images())
    n = len(encoded)
    kind = draw(st.sampled_from(["random", "magic", "flip", "cut", "splice", "dims"]))
    if kind == "random":
        return draw(st.binary(max_size=200)), None
    if kind == "magic":
        magic = draw(
            st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"\xff\xd8\xff\xe0", b"BM", b"P6\n"])
        )
        return magic + draw(st.binary(max_size=120)), None
    if kind == "flip":
        flips = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(1, 255)), min_size=1, max_size=6))
        return _flip(encoded, flips), None
    if kind == "cut":
        return encoded[: draw(st.integers(0, n - 1))], None
    if kind == "splice":
        at, drop = draw(st.integers(0, n)), draw(st.integers(0, 8))
        return encoded[:at] + draw(st.binary(max_size=8)) + encoded[at + drop :], None
    dims = (draw(st.integers(0, 70_000)), draw(st.integers(0, 70_000)))
    if not encoded.startswith(b"\x89PNG"):
        dims = (min(dims[0], 65535), min(dims[1], 65535))  # a JPEG SOF holds 16-bit sizes
    return _set_dims(encoded, *dims), dims


# Headers of 89M..179M pixels make Pillow warn before the converter refuses them (its own limit).
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@FUZZ
@given(
    _bad_compressed(),
    _ODD_FORMATS,
    st.one_of(st.just(DEFAULT_MAX_IMAGE_PIXELS), st.integers(1, 600)),
)
def test_compressed_to_rgb_bad_bytes_give_a_valid_image_or_a_named_error(case, fmt, max_pixels):
    encoded, dims = case
    msg = SimpleNamespace(format=fmt, data=encoded)
    with mock.patch.object(image_module.cv2, "imdecode", wraps=cv2.imdecode) as imdecode:
        rgb, err = _convert(compressed_to_rgb, msg, COMPRESSED_TOPIC, max_pixels=max_pixels)
    header = dims or _png_dims(encoded)
    if header is not None and header[0] * header[1] > max_pixels:
        # Refused from the header alone: never decoded.
        assert err is not None and imdecode.call_count == 0
    if err is not None:
        _assert_names_topic_and_field(err, COMPRESSED_TOPIC, ("data", "format"))
        return
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.flags.c_contiguous
    assert 1 <= rgb.shape[0] * rgb.shape[1] <= max_pixels
    if _png_dims(encoded) is not None:  # the PNG accepted is the size its IHDR says
        assert (rgb.shape[1], rgb.shape[0]) == _png_dims(encoded)


# --- CameraInfo -----------------------------------------------------------------------------------

_FINITE = st.floats(allow_nan=False, allow_infinity=False)
_ANY_FLOATS = st.lists(st.floats(), max_size=16)


@st.composite
def _camera_infos(draw):
    """(msg, K as the float64 the container holds): a calibrated pinhole camera in every container
    the bindings use, with random (ignored) P, D and R of any length and value."""
    fx, fy = draw(st.floats(1e-3, 1e6)), draw(st.floats(1e-3, 1e6))
    cx, cy, skew = draw(_FINITE), draw(_FINITE), draw(st.sampled_from([0.0, 0.5, -3.0]))
    k = [fx, skew, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
    kind = draw(st.sampled_from(["list", "tuple", "float64", "array", "matrix"]))
    container = {
        "list": lambda: list(k),
        "tuple": lambda: tuple(k),
        "float64": lambda: np.array(k),
        "array": lambda: array.array("d", k),
        "matrix": lambda: np.array(k).reshape(3, 3),
    }[kind]()
    msg = SimpleNamespace(
        header=SimpleNamespace(frame_id=draw(st.text(max_size=8))),
        width=draw(st.integers(1, 2**32 - 1)),
        height=draw(st.integers(1, 2**32 - 1)),
        distortion_model=draw(st.sampled_from(["plumb_bob", "rational_polynomial", "", "equidistant"])),
        d=draw(_ANY_FLOATS),
        r=draw(_ANY_FLOATS),
        p=draw(_ANY_FLOATS),
    )
    setattr(msg, draw(st.sampled_from(["k", "K"])), container)
    return msg, np.array(k, np.float64).reshape(3, 3)


def _check_calibration(calib, msg, expected_K=None) -> None:
    K = calib.K
    assert K.dtype == np.float64 and K.shape == (3, 3) and np.isfinite(K).all()
    assert K[0, 0] > 0 and K[1, 1] > 0 and np.allclose(K[2], (0.0, 0.0, 1.0))
    assert (calib.width, calib.height) == (msg.width, msg.height) and calib.width > 0 and calib.height > 0
    raw = msg.k if hasattr(msg, "k") else msg.K
    assert np.asarray(raw).dtype.kind in "iuf", "accepted intrinsics that are not real numbers"
    np.testing.assert_array_equal(K, np.array(list(np.asarray(raw).reshape(-1)), np.float64).reshape(3, 3))
    if expected_K is not None:
        np.testing.assert_array_equal(K, expected_K)
    if isinstance(raw, np.ndarray):  # an owned copy: never a view of the message
        assert not np.shares_memory(K, raw)


@FUZZ
@given(_camera_infos())
def test_intrinsics_well_formed_camera_info_round_trips(case):
    msg, K = case
    calib = intrinsics_from_camera_info(msg, INFO_TOPIC)
    assert calib.frame_id == msg.header.frame_id
    _check_calibration(calib, msg, K)


@st.composite
def _bad_camera_infos(draw):
    msg, _ = draw(_camera_infos())
    for _ in range(draw(st.integers(1, 3))):
        what = draw(st.sampled_from(["k", "k", "width", "height", "header"]))
        if what == "k":
            for name in ("k", "K"):
                if hasattr(msg, name):
                    delattr(msg, name)
            value = draw(
                st.one_of(
                    st.lists(st.floats(), max_size=12),
                    st.lists(st.one_of(st.floats(), st.sampled_from([0.0, 1.0])), min_size=9, max_size=9),
                    st.sampled_from(
                        [
                            None,
                            "abc",
                            b"123456789",
                            [[1.0, 2.0], [3.0]],
                            [1j] * 9,
                            ["1"] * 9,
                            [None] * 9,
                            object(),
                        ]
                    ),
                    st.lists(st.floats(width=32), min_size=9, max_size=9).map(
                        lambda v: np.array(v, np.float32)
                    ),
                )
            )
            if value is not None:
                setattr(msg, draw(st.sampled_from(["k", "K"])), value)
        elif what == "header":
            msg.header = draw(st.sampled_from([None, SimpleNamespace(), SimpleNamespace(frame_id=None)]))
        else:
            setattr(msg, what, draw(st.one_of(_WIDE_INTS, _JUNK)))
    return msg


@FUZZ
@given(_bad_camera_infos())
def test_intrinsics_bad_camera_info_gives_a_valid_calibration_or_a_named_error(msg):
    calib, err = _convert(intrinsics_from_camera_info, msg, INFO_TOPIC)
    if err is not None:
        _assert_names_topic_and_field(err, INFO_TOPIC, ("k", "K", "width", "height"))
    else:
        _check_calibration(calib, msg)
        assert isinstance(calib.frame_id, str)
