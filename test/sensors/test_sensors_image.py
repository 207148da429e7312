"""Image, CompressedImage and CameraInfo conversion: raw images against an independent byte layout
(cv2.cvtColor, struct.pack, random row padding), Bayer patterns, codecs, errors, decode bombs refused
from the header (never decoded), and rosbags classes. test_converters_fuzz.py fuzzes the same
converters."""

from __future__ import annotations

import array
import io
import struct
import warnings
import zlib
from types import SimpleNamespace
from unittest import mock

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage
from support.properties import examples

import ros2_lmd.sensors.image as image_module
from ros2_lmd.messages.types import header_msg, rosbags_types
from ros2_lmd.sensors import (
    SensorDataError,
    camera_info_fields,
    check_image_size,
    compressed_to_rgb,
    image_to_rgb,
    intrinsics_from_camera_info,
    make_camera_info,
    make_compressed_image,
    make_image,
    rgb_to_compressed,
    rgb_to_image_fields,
)
from ros2_lmd.sensors.camera_info import CameraCalibration
from ros2_lmd.sensors.image import DEFAULT_MAX_IMAGE_PIXELS, compressed_to_rgb_reduced, jpeg_reduction

TOPIC = "/cam_front/image_raw"


def _image_msg(encoding, height, width, step, data, big=0):
    return SimpleNamespace(
        header=SimpleNamespace(frame_id="cam_front"),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=big,
        step=step,
        data=data,
    )


def _padded(rows: list[bytes], step: int, junk: bytes) -> bytes:
    """Rows laid out every `step` bytes, the padding filled with junk."""
    return b"".join(row + junk[: step - len(row)] for row in rows)


@st.composite
def _raw_images(draw):
    """A raw Image of a random encoding and size, built without image_to_rgb's code paths,
    and the RGB image it should give."""
    encoding = draw(st.sampled_from(["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", "16UC1"]))
    height, width = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    big = 0
    if encoding in ("mono16", "16UC1"):
        gray16 = rng.integers(0, 2**16, size=(height, width))
        big = draw(st.integers(0, 1))
        fmt = (">" if big else "<") + "H"
        rows = [b"".join(struct.pack(fmt, int(v)) for v in row) for row in gray16]
        expected = np.repeat((gray16 // 256).astype(np.uint8)[..., None], 3, axis=2)
    else:
        rgb = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        if encoding == "mono8":
            layout, expected = rgb[..., 0], np.repeat(rgb[..., :1], 3, axis=2)
        else:
            code = {
                "rgb8": None,
                "bgr8": cv2.COLOR_RGB2BGR,
                "rgba8": cv2.COLOR_RGB2RGBA,
                "bgra8": cv2.COLOR_RGB2BGRA,
            }[encoding]
            layout = rgb if code is None else cv2.cvtColor(rgb, code)
            if encoding.endswith("a8"):
                layout[..., 3] = rng.integers(0, 256, size=(height, width))  # alpha is ignored
            expected = rgb
        rows = [bytes(row.tobytes()) for row in np.ascontiguousarray(layout)]
    step = len(rows[0]) + draw(st.integers(0, 7))
    data = _padded(rows, step, rng.integers(0, 256, size=8, dtype=np.uint8).tobytes())
    kind = draw(st.sampled_from(["bytes", "array", "list", "numpy"]))
    container = {
        "bytes": data,
        "array": array.array("B", data),
        "list": list(data),
        "numpy": np.frombuffer(data, np.uint8).copy(),
    }[kind]
    return _image_msg(encoding, height, width, step, container, big), expected


@settings(max_examples=examples(150), deadline=None)
@given(_raw_images())
def test_raw_image_matches_independent_layout(case):
    msg, expected = case
    rgb = image_to_rgb(msg, TOPIC)
    assert rgb.dtype == np.uint8 and rgb.flags.c_contiguous and rgb.flags.writeable
    np.testing.assert_array_equal(rgb, expected)


def _mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """Bayer mosaic: pixel (r, c) keeps the channel the pattern names at (r % 2, c % 2)."""
    mosaic = np.empty(rgb.shape[:2], np.uint8)
    for k, (dy, dx) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        mosaic[dy::2, dx::2] = rgb[dy::2, dx::2, "rgb".index(pattern[k])]
    return mosaic


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
def test_bayer_pattern_recovers_colour(pattern):
    # A uniform colour with distinct R, G, B: a swapped pattern gives a different colour.
    colour = np.array([200, 110, 30], np.uint8)
    rgb = np.broadcast_to(colour, (8, 10, 3)).copy()
    mosaic = _mosaic(rgb, pattern)
    step = 10 + 3
    data = _padded([row.tobytes() for row in mosaic], step, b"\xff\x00\x7f")
    out = image_to_rgb(_image_msg(f"bayer_{pattern}8", 8, 10, step, data), TOPIC)
    assert out.shape == (8, 10, 3)
    np.testing.assert_array_equal(out[2:-2, 2:-2], rgb[2:-2, 2:-2])


def _valid_image():
    return _image_msg("rgb8", 2, 3, 9, bytes(18))


@pytest.mark.parametrize(
    "change, words",
    [
        ({"encoding": "yuv422"}, ["encoding", "'yuv422'", "supported"]),
        ({"step": 8}, ["step", "8 < width*bytes_per_pixel", "9"]),
        ({"data": bytes(17)}, ["truncated", "18 bytes", "got 17"]),
        ({"data": bytes(19)}, ["data", "19 bytes", "18"]),
        ({"width": 0}, ["width/height", "0 x 2"]),
        ({"height": 0}, ["width/height", "3 x 0"]),
        ({"encoding": "mono16", "step": 5}, ["step", "mono16"]),
    ],
)
def test_malformed_image_raises_naming_topic_and_field(change, words):
    msg = _valid_image()
    for key, value in change.items():
        setattr(msg, key, value)
    with pytest.raises(SensorDataError) as info:
        image_to_rgb(msg, TOPIC)
    assert info.value.topic == TOPIC and str(info.value).startswith(TOPIC + ": ")
    for word in words:
        assert word in info.value.reason


def _smooth_rgb(height=48, width=64):
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // width, y * 255 // height, (x + y) % 256], axis=2).astype(np.uint8)


@pytest.mark.parametrize("fmt", ["png", "rgb8; png compressed bgr8"])
def test_png_is_lossless(fmt):
    rgb = np.random.default_rng(3).integers(0, 256, (17, 23, 3), dtype=np.uint8)
    msg = SimpleNamespace(format=fmt, data=rgb_to_compressed(rgb, "png"))
    np.testing.assert_array_equal(compressed_to_rgb(msg, TOPIC), rgb)


@pytest.mark.parametrize("fmt", ["jpeg", "rgb8; jpeg compressed bgr8"])
def test_jpeg_keeps_colour_order(fmt):
    rgb = _smooth_rgb()
    msg = SimpleNamespace(format=fmt, data=np.frombuffer(rgb_to_compressed(rgb, quality=95), np.uint8))
    out = compressed_to_rgb(msg, TOPIC)
    assert out.shape == rgb.shape
    # Lossy, but far closer to the source than to its channel-swapped version.
    error = np.abs(out.astype(int) - rgb).mean()
    swapped = np.abs(out.astype(int) - rgb[..., ::-1]).mean()
    assert error < 3 and swapped > 30


@pytest.mark.parametrize(
    "height, width, at_least, reduction",
    [
        (900, 1600, (256, 448), 2),  # 800x450; 1/4 would be 400x225
        (1080, 1920, (256, 448), 4),  # 480x270
        (256, 448, (128, 224), 2),
        (257, 449, (128, 224), 2),  # rounds up: 225x129
        (255, 448, (128, 224), 2),  # 127.5 rows round up to 128
        (253, 448, (128, 224), 1),  # 126.5 rows -> 127: too few
        (2048, 4096, (256, 448), 8),
        (900, 1600, None, 1),
        (100, 100, (200, 200), 1),
    ],
)
def test_jpeg_reduction_is_the_largest_keeping_at_least(height, width, at_least, reduction):
    assert jpeg_reduction(height, width, at_least) == reduction


@pytest.mark.parametrize("reduction", [2, 4, 8])
def test_reduced_jpeg_is_the_area_average_of_the_full_decode(reduction):
    rgb = _smooth_rgb(height=128, width=192)
    data = rgb_to_compressed(rgb, quality=95)
    at_least = (128 // reduction, 192 // reduction)
    msg = SimpleNamespace(format="jpeg", data=data)
    out, got = compressed_to_rgb_reduced(msg, TOPIC, at_least=at_least)
    assert got == reduction and out.shape == (128 // reduction, 192 // reduction, 3)
    area = cv2.resize(
        compressed_to_rgb(msg, TOPIC), (192 // reduction, 128 // reduction), interpolation=cv2.INTER_AREA
    )
    assert np.abs(out.astype(int) - area).mean() < 3


def test_png_is_never_reduced():
    rgb = _smooth_rgb(height=64, width=96)
    out, reduction = compressed_to_rgb_reduced(
        SimpleNamespace(format="png", data=rgb_to_compressed(rgb, "png")), TOPIC, at_least=(8, 8)
    )
    assert reduction == 1
    np.testing.assert_array_equal(out, rgb)


@given(st.integers(1, 3).map(lambda e: 2**e), st.integers(0, 2**32 - 1))
def test_calibration_at_reduction_maps_pixel_centres(reduction, seed):
    rng = np.random.default_rng(seed)
    K = np.array(
        [
            [rng.uniform(200, 2000), 0, rng.uniform(100, 900)],
            [0, rng.uniform(200, 2000), rng.uniform(100, 500)],
            [0, 0, 1],
        ]
    )
    calibration = CameraCalibration(K, width=1600, height=900)
    reduced = calibration.at_reduction(reduction)
    assert (reduced.height, reduced.width) == (-(-900 // reduction), -(-1600 // reduction))
    points = rng.uniform([-5, -5, 1], [5, 5, 50], (20, 3))
    full_uv = (points @ K.T)[:, :2] / points[:, 2:]
    reduced_uv = (points @ reduced.K.T)[:, :2] / points[:, 2:]
    # stored pixels [r*u', r*u' + r) make reduced pixel u': centres map as u' = (u + 0.5) / r - 0.5
    np.testing.assert_allclose(reduced_uv, (full_uv + 0.5) / reduction - 0.5, rtol=0, atol=1e-9)
    assert calibration.at_reduction(1) is calibration


@pytest.mark.parametrize(
    "data, fmt, words",
    [
        (b"", "jpeg", ["empty"]),
        (b"\xff\xd8\xff" + b"garbage" * 10, "jpeg", ["cannot decode", "'jpeg'"]),
        (None, "jpeg", ["cannot decode"]),  # a real JPEG cut in half
        (bytes(64), "png", ["cannot decode"]),
        (b"\x89PNG", "16UC1; compressedDepth png", ["compressedDepth"]),
    ],
)
def test_bad_compressed_image_raises(data, fmt, words):
    if data is None:
        whole = rgb_to_compressed(_smooth_rgb())
        data = whole[: len(whole) // 2]
    with pytest.raises(SensorDataError) as info:
        compressed_to_rgb(SimpleNamespace(format=fmt, data=data), TOPIC)
    assert info.value.topic == TOPIC
    for word in words:
        assert word in info.value.reason


# --- decode bombs and other codecs ---------------------------------------------------------------


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _constant_png(width: int, height: int, colour: tuple[int, int, int] = (200, 110, 30)) -> bytes:
    """A genuine RGB PNG of one colour, built row by row (never as a whole array): the first row
    Sub-filtered, the others Up-filtered, so every row after the first is zeros and deflates to almost
    nothing. 8000 x 8000 gives about 200 KB that decode to 192 MB."""
    deflate = zlib.compressobj(9)
    parts = [deflate.compress(b"\x01" + bytes(colour) + bytes(3 * width - 3))]
    up_row = b"\x02" + bytes(3 * width)
    parts += [deflate.compress(up_row) for _ in range(height - 1)]
    parts.append(deflate.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", b"".join(parts))
        + _png_chunk(b"IEND", b"")
    )


def _png_with_size(width: int, height: int) -> bytes:
    """A small valid PNG whose IHDR claims width x height (CRC fixed): only the header is genuine."""
    png = bytearray(rgb_to_compressed(_smooth_rgb(4, 4), "png"))
    struct.pack_into(">II", png, 16, width, height)
    struct.pack_into(">I", png, 29, zlib.crc32(bytes(png[12:29])))
    return bytes(png)


@pytest.fixture()
def imdecode_calls():
    """cv2.imdecode, counted: a refused bomb must never reach the decoder."""
    with mock.patch.object(image_module.cv2, "imdecode", wraps=cv2.imdecode) as spy:
        yield spy


def test_png_decode_bomb_is_refused_from_its_header(imdecode_calls):
    bomb = _constant_png(8000, 8000)
    assert len(bomb) < 300_000
    with PILImage.open(io.BytesIO(bomb)) as image:  # a well-formed PNG (chunk CRCs), not just a header
        image.verify()
    with pytest.raises(SensorDataError) as info:
        compressed_to_rgb(SimpleNamespace(format="png", data=bomb), TOPIC)
    assert info.value.topic == TOPIC
    assert info.value.reason.startswith("data: PNG header says")
    assert "8000x8000 = 64000000 pixels exceeds max_image_pixels 16777216" in info.value.reason
    assert imdecode_calls.call_count == 0


def test_constant_png_decodes_within_the_limit_and_max_pixels_is_inclusive(imdecode_calls):
    png = _constant_png(300, 200)
    rgb = compressed_to_rgb(SimpleNamespace(format="png", data=png), TOPIC, max_pixels=300 * 200)
    assert rgb.shape == (200, 300, 3) and (rgb == (200, 110, 30)).all()
    assert imdecode_calls.call_count == 1
    with pytest.raises(SensorDataError, match="300x200 = 60000 pixels exceeds max_image_pixels 59999"):
        compressed_to_rgb(SimpleNamespace(format="png", data=png), TOPIC, max_pixels=59_999)
    assert imdecode_calls.call_count == 1


def test_jpeg_decode_bomb_is_refused_from_its_header(imdecode_calls):
    jpeg = bytearray(rgb_to_compressed(_smooth_rgb(16, 16)))
    sof = jpeg.index(b"\xff\xc0")  # baseline SOF: precision, height, width
    struct.pack_into(">HH", jpeg, sof + 5, 8000, 8000)
    with pytest.raises(SensorDataError) as info:
        compressed_to_rgb(SimpleNamespace(format="jpeg", data=bytes(jpeg)), TOPIC)
    assert "data: JPEG header says 8000x8000 = 64000000 pixels exceeds" in info.value.reason
    assert imdecode_calls.call_count == 0


def test_pillow_decompression_bomb_limits_become_sensor_data_errors(imdecode_calls):
    # Above 2 * PIL.Image.MAX_IMAGE_PIXELS Pillow itself refuses in open(): still a SensorDataError.
    with pytest.raises(SensorDataError) as info:
        compressed_to_rgb(SimpleNamespace(format="png", data=_png_with_size(20000, 20000)), TOPIC)
    assert info.value.topic == TOPIC and "refused by Pillow" in info.value.reason
    assert "400000000 pixels" in info.value.reason
    # Above MAX_IMAGE_PIXELS Pillow warns; where warnings are errors that is refused the same way.
    with warnings.catch_warnings():
        warnings.simplefilter("error", PILImage.DecompressionBombWarning)
        with pytest.raises(SensorDataError, match="refused by Pillow"):
            compressed_to_rgb(SimpleNamespace(format="png", data=_png_with_size(10000, 10000)), TOPIC)
    with pytest.warns(PILImage.DecompressionBombWarning):
        with pytest.raises(SensorDataError, match="10000x10000 = 100000000 pixels exceeds"):
            compressed_to_rgb(SimpleNamespace(format="png", data=_png_with_size(10000, 10000)), TOPIC)
    assert imdecode_calls.call_count == 0


class _CountedImage(SimpleNamespace):
    """An Image whose `data` counts its reads."""

    data_reads = 0

    @property
    def data(self):
        type(self).data_reads += 1
        return bytes(self.step * self.height)


def test_raw_image_above_the_limit_is_refused_before_reading_data():
    _CountedImage.data_reads = 0
    big = _CountedImage(height=8000, width=8000, encoding="rgb8", is_bigendian=0, step=24000)
    with pytest.raises(SensorDataError) as info:
        image_to_rgb(big, TOPIC)
    assert info.value.reason == "width/height: 8000x8000 = 64000000 pixels exceeds max_image_pixels 16777216"
    assert _CountedImage.data_reads == 0
    small = _CountedImage(height=4, width=5, encoding="mono8", is_bigendian=0, step=5)
    assert image_to_rgb(small, TOPIC, max_pixels=20).shape == (4, 5, 3)
    with pytest.raises(SensorDataError, match="5x4 = 20 pixels exceeds max_image_pixels 19"):
        image_to_rgb(small, TOPIC, max_pixels=19)
    assert _CountedImage.data_reads == 1


def test_default_limit_and_max_pixels_argument():
    assert DEFAULT_MAX_IMAGE_PIXELS == 4096 * 4096
    msg = SimpleNamespace(format="png", data=rgb_to_compressed(_smooth_rgb(4, 4), "png"))
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="max_pixels"):
            compressed_to_rgb(msg, TOPIC, max_pixels=bad)
        with pytest.raises(ValueError, match="max_pixels"):
            image_to_rgb(_valid_image(), TOPIC, max_pixels=bad)


@pytest.mark.parametrize("ext", [".bmp", ".ppm", ".tiff", ".webp"])
def test_other_codecs_are_refused_without_decoding(ext, imdecode_calls):
    # cv2.imdecode would read them, but their size is not checked: only JPEG and PNG are decoded.
    try:
        ok, encoded = cv2.imencode(ext, _smooth_rgb(8, 8))
    except cv2.error:
        ok = False
    if not ok:
        pytest.skip(f"this OpenCV cannot write {ext}")
    imdecode_calls.reset_mock()
    with pytest.raises(SensorDataError) as info:
        compressed_to_rgb(SimpleNamespace(format="jpeg", data=encoded.tobytes()), TOPIC)
    assert "not a JPEG or PNG" in info.value.reason
    assert imdecode_calls.call_count == 0


def test_exif_orientation_does_not_rotate_the_pixel_grid():
    # The CameraInfo describes the stored grid: a JPEG's EXIF orientation tag must not rotate it.
    rgb = np.zeros((8, 16, 3), np.uint8)
    rgb[:, :8] = (250, 0, 0)
    exif = PILImage.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    out = io.BytesIO()
    PILImage.fromarray(rgb).save(out, "JPEG", exif=exif.tobytes(), quality=95)
    decoded = compressed_to_rgb(SimpleNamespace(format="jpeg", data=out.getvalue()), TOPIC)
    assert decoded.shape == (8, 16, 3)
    assert np.abs(decoded.astype(int) - rgb).mean() < 3


@pytest.mark.parametrize(
    "change, words",
    [
        ({"height": None}, ["height", "integer", "NoneType"]),
        ({"width": 1.5}, ["width", "integer", "float"]),  # int() would truncate to a wrong image
        ({"step": "9"}, ["step", "integer"]),
    ],
)
def test_non_integer_image_fields_raise(change, words):
    msg = _valid_image()
    for key, value in change.items():
        setattr(msg, key, value)
    with pytest.raises(SensorDataError) as info:
        image_to_rgb(msg, TOPIC)
    assert info.value.topic == TOPIC
    for word in words:
        assert word in info.value.reason


def test_image_fields_and_writer_arguments():
    rgb = _smooth_rgb(4, 5)
    fields = rgb_to_image_fields(rgb)
    assert (fields["encoding"], fields["step"], len(fields["data"])) == ("rgb8", 15, 60)
    np.testing.assert_array_equal(image_to_rgb(SimpleNamespace(**fields), TOPIC), rgb)
    with pytest.raises(ValueError, match="uint8"):
        rgb_to_image_fields(rgb.astype(np.float32))
    with pytest.raises(ValueError, match="format"):
        rgb_to_compressed(rgb, "bmp")


def test_rosbags_image_messages_round_trip():
    types = rosbags_types()
    store = types.typestore
    rgb = np.random.default_rng(4).integers(0, 256, (6, 7, 3), dtype=np.uint8)
    header = header_msg(types, 1.0, "cam_front")
    raw = make_image(types, header, rgb)
    decoded = store.deserialize_cdr(store.serialize_cdr(raw, raw.__msgtype__), raw.__msgtype__)
    np.testing.assert_array_equal(image_to_rgb(decoded, TOPIC), rgb)
    compressed = make_compressed_image(types, header, rgb, "png")
    decoded = store.deserialize_cdr(
        store.serialize_cdr(compressed, compressed.__msgtype__), compressed.__msgtype__
    )
    assert decoded.format == "rgb8; png compressed bgr8"
    np.testing.assert_array_equal(compressed_to_rgb(decoded, TOPIC), rgb)


# --- CameraInfo -----------------------------------------------------------------------------------

INFO_TOPIC = "/cam_front/camera_info"
K = np.array([[400.0, 0.0, 224.0], [0.0, 410.0, 128.0], [0.0, 0.0, 1.0]])


def _info(**change):
    msg = SimpleNamespace(
        header=SimpleNamespace(frame_id="cam_front"), width=448, height=256, k=list(K.reshape(-1))
    )
    for key, value in change.items():
        setattr(msg, key, value)
    return msg


def test_intrinsics_from_camera_info():
    calib = intrinsics_from_camera_info(_info(), INFO_TOPIC)
    np.testing.assert_array_equal(calib.K, K)
    assert (calib.width, calib.height, calib.frame_id) == (448, 256, "cam_front")
    # Older messages name the field K.
    old = SimpleNamespace(header=SimpleNamespace(frame_id="c"), width=448, height=256, K=tuple(K.reshape(-1)))
    np.testing.assert_array_equal(intrinsics_from_camera_info(old, INFO_TOPIC).K, K)


@pytest.mark.parametrize(
    "change, words",
    [
        ({"k": [0.0] * 9}, ["zero intrinsics"]),
        ({"k": [400.0, 0, 224, 0, -1.0, 128, 0, 0, 1]}, ["fy=-1"]),
        ({"k": [np.nan, 0, 224, 0, 410, 128, 0, 0, 1]}, ["non-finite"]),
        ({"k": [400.0, 0, 224, 0, 410, 128]}, ["9 numbers", "got 6"]),
        ({"k": [400.0, 0, 224, 0, 410, 128, 0, 0, 0]}, ["last row"]),
        ({"width": 0}, ["width/height", "0 x 256"]),
        ({"k": ["400", "0", "224", "0", "410", "128", "0", "0", "1"]}, ["k", "real numbers"]),
        ({"k": [1j] * 9}, ["k", "real numbers", "complex"]),
        ({"k": [[400.0, 0.0], [1.0]]}, ["k", "not an array of numbers"]),
        ({"k": [None] * 9}, ["k", "real numbers", "object"]),
        ({"width": 448.5}, ["width", "integer", "float"]),
        ({"height": None}, ["height", "integer"]),
    ],
)
def test_bad_camera_info_raises(change, words):
    with pytest.raises(SensorDataError) as info:
        intrinsics_from_camera_info(_info(**change), INFO_TOPIC)
    assert info.value.topic == INFO_TOPIC
    for word in words:
        assert word in info.value.reason


def test_image_size_must_match_camera_info():
    calib = intrinsics_from_camera_info(_info(), INFO_TOPIC)
    check_image_size((256, 448), calib, TOPIC)
    with pytest.raises(SensorDataError) as info:
        check_image_size((256, 224), calib, TOPIC)
    assert info.value.topic == TOPIC
    assert "224 x 256 disagrees with CameraInfo 448 x 256" in info.value.reason


def test_camera_info_writer_round_trips_through_rosbags():
    fields = camera_info_fields(K, 448, 256)
    np.testing.assert_array_equal(fields["p"].reshape(3, 4), np.hstack([K, np.zeros((3, 1))]))
    types = rosbags_types()
    store = types.typestore
    msg = make_camera_info(types, header_msg(types, 0.5, "cam_front"), K, 448, 256)
    decoded = store.deserialize_cdr(store.serialize_cdr(msg, msg.__msgtype__), msg.__msgtype__)
    calib = intrinsics_from_camera_info(decoded, INFO_TOPIC)
    np.testing.assert_array_equal(calib.K, K)
    assert (calib.width, calib.height, calib.frame_id) == (448, 256, "cam_front")
    assert decoded.distortion_model == "plumb_bob"
    with pytest.raises(ValueError, match="fx, fy > 0"):
        camera_info_fields(np.zeros((3, 3)), 448, 256)
