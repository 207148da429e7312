"""sensor_msgs/Image and CompressedImage -> H x W x 3 uint8 RGB (the SensorFrame camera format),
honouring row padding (`step`) and 16-bit byte order; and the inverse for writers. Raw images are
read through a strided numpy view of the message buffer; compressed ones through cv2.imdecode.

Both refuse images above `max_pixels` before touching the pixels: a 200 KB PNG of one colour can
decode to 8000 x 8000 (192 MB, 1-2 s of a callback), so a compressed image's size is read from its
JPEG/PNG header with Pillow (which parses only the header) and checked first. Only JPEG and PNG are
decoded (the formats image_transport's compressed plugin writes): cv2.imdecode would also take BMP,
PPM, TIFF, ... whose sizes nothing here checks.

A JPEG can be decoded at 1/2, 1/4 or 1/8 of its size for less than its full decoding (libjpeg
scales in the DCT): `compressed_to_rgb(..., at_least=(h, w))` takes the largest of these reductions
that still gives at least h x w pixels (a 1600x900 camera, for a 224x128 model input and signal
checks validated at 448x256, is decoded at 800x450: with what follows it, 3x cheaper)."""

from __future__ import annotations

import io
from typing import Any

import cv2
import numpy as np
from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from ros2_lmd.sensors.buffers import as_uint8_buffer
from ros2_lmd.sensors.errors import SensorDataError, int_field

# 16 Mpixel (48 MB of RGB): four times a 12 MP camera; a camera image for BEV fusion is far smaller.
DEFAULT_MAX_IMAGE_PIXELS = 4096 * 4096

# encoding -> (channels, bytes per channel). Names as in sensor_msgs/image_encodings.hpp.
IMAGE_ENCODINGS: dict[str, tuple[int, int]] = {
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

# OpenCV's pattern-named codes (RGGB = R at pixel (0, 0)); before OpenCV 4.5.3 only the legacy
# two-letter codes exist, whose letters name the second row's pixels (cv_bridge's mapping).
_BAYER_TO_RGB: dict[str, int] = {
    "bayer_rggb8": getattr(cv2, "COLOR_BayerRGGB2RGB", cv2.COLOR_BayerBG2RGB),
    "bayer_bggr8": getattr(cv2, "COLOR_BayerBGGR2RGB", cv2.COLOR_BayerRG2RGB),
    "bayer_gbrg8": getattr(cv2, "COLOR_BayerGBRG2RGB", cv2.COLOR_BayerGR2RGB),
    "bayer_grbg8": getattr(cv2, "COLOR_BayerGRBG2RGB", cv2.COLOR_BayerGB2RGB),
}

COMPRESSED_FORMATS: dict[str, str] = {"jpeg": ".jpg", "jpg": ".jpg", "png": ".png"}


def image_to_rgb(msg: Any, topic: str, *, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """H x W x 3 uint8 RGB copy of a sensor_msgs/Image. 16-bit images keep their high byte
    (value >> 8, as a fixed scale so brightness does not vary frame to frame). An image of more
    than `max_pixels` pixels is refused from its height and width, before `data` is read."""
    _check_max_pixels(max_pixels)
    encoding = str(msg.encoding)
    if encoding not in IMAGE_ENCODINGS:
        raise SensorDataError(
            topic, f"encoding: unsupported encoding {encoding!r:.80}; supported: {list(IMAGE_ENCODINGS)}"
        )
    channels, depth = IMAGE_ENCODINGS[encoding]
    height, width = int_field(msg, "height", topic), int_field(msg, "width", topic)
    step = int_field(msg, "step", topic)
    if height <= 0 or width <= 0:
        raise SensorDataError(topic, f"width/height: image is {width} x {height}, must be non-empty")
    _check_pixels(width, height, max_pixels, topic, "width/height:")
    pixel_bytes = channels * depth
    if step < width * pixel_bytes:
        raise SensorDataError(
            topic,
            f"step: {step} < width*bytes_per_pixel = {width}*{pixel_bytes} = "
            f"{width * pixel_bytes} for {encoding}",
        )
    data = as_uint8_buffer(msg.data, topic)
    expected = step * height
    if data.size < expected:
        raise SensorDataError(
            topic,
            f"data: truncated, expected step*height = {step}*{height} = {expected} bytes, got {data.size}",
        )
    if data.size > expected:
        raise SensorDataError(
            topic, f"data: {data.size} bytes but step*height = {step}*{height} = {expected}"
        )

    dtype = np.dtype(np.uint8) if depth == 1 else np.dtype(">u2" if msg.is_bigendian else "<u2")
    # Strided view: each row starts every `step` bytes, so padding is skipped without a copy.
    pixels = np.ndarray(
        shape=(height, width, channels), dtype=dtype, buffer=data, strides=(step, pixel_bytes, depth)
    )
    if encoding == "rgb8":
        rgb = pixels
    elif encoding == "bgr8":
        rgb = pixels[..., ::-1]
    elif encoding == "rgba8":
        rgb = pixels[..., :3]
    elif encoding == "bgra8":
        rgb = pixels[..., 2::-1]
    elif encoding in _BAYER_TO_RGB:
        rgb = cv2.cvtColor(np.ascontiguousarray(pixels[..., 0]), _BAYER_TO_RGB[encoding])
    else:  # mono8, mono16, 16UC1
        gray = pixels[..., 0] if depth == 1 else (pixels[..., 0] >> 8).astype(np.uint8)
        rgb = np.repeat(gray[..., None], 3, axis=2)
    # Always an owned, writable, contiguous array: never a view into the message buffer.
    return np.array(rgb, dtype=np.uint8, order="C", copy=True)


# DCT scaling factor -> cv2.imdecode flag (colour, scaled by libjpeg while decoding)
_JPEG_REDUCTIONS = {
    8: cv2.IMREAD_REDUCED_COLOR_8,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    1: cv2.IMREAD_COLOR,
}


def reduced_size(height: int, width: int, reduction: int) -> tuple[int, int]:
    """(height, width) of a JPEG decoded at 1/`reduction` (libjpeg rounds up)."""
    return -(-height // reduction), -(-width // reduction)


def jpeg_reduction(height: int, width: int, at_least: tuple[int, int] | None) -> int:
    """The largest of 8, 4, 2 by which a `height` x `width` JPEG can be scaled while decoding and
    still give at least `at_least` = (h, w) pixels; 1 (full size) when none can or `at_least` is None."""
    if at_least is None:
        return 1
    for reduction in (8, 4, 2):
        h, w = reduced_size(height, width, reduction)
        if h >= at_least[0] and w >= at_least[1]:
            return reduction
    return 1


def compressed_to_rgb(
    msg: Any,
    topic: str,
    *,
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    at_least: tuple[int, int] | None = None,
) -> np.ndarray:
    """H x W x 3 uint8 RGB of a sensor_msgs/CompressedImage (JPEG or PNG, as image_transport's
    compressed plugin writes: `format` like "jpeg" or "rgb8; jpeg compressed bgr8"; the bytes, not
    `format`, tell which, as for cv_bridge). The size is read from the header first: an image of
    more than `max_pixels` pixels is refused without decoding it. With `at_least` = (h, w), a JPEG
    is decoded at the largest DCT reduction still at least h x w (`jpeg_reduction`; PNG has none),
    so the image can be smaller than its header says: `compressed_to_rgb_reduced` says by how much."""
    return compressed_to_rgb_reduced(msg, topic, max_pixels=max_pixels, at_least=at_least)[0]


def compressed_to_rgb_reduced(
    msg: Any,
    topic: str,
    *,
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    at_least: tuple[int, int] | None = None,
) -> tuple[np.ndarray, int]:
    """`compressed_to_rgb` and the reduction r it decoded at (1 = full size): pixel (u, v) of the
    result covers pixels [r*u, r*u + r) x [r*v, r*v + r) of the stored image."""
    _check_max_pixels(max_pixels)
    fmt = str(msg.format)
    if "compresseddepth" in fmt.lower():
        raise SensorDataError(
            topic, f"format: {fmt!r:.80} is a compressedDepth image (depth, not a camera image)"
        )
    data = as_uint8_buffer(msg.data, topic)
    if data.size == 0:
        raise SensorDataError(topic, f"data: empty payload (format {fmt!r:.80})")
    kind, width, height = _compressed_header(data, fmt, topic)
    _check_pixels(width, height, max_pixels, topic, f"data: {kind} header says")
    reduction = jpeg_reduction(height, width, at_least) if kind == "JPEG" else 1
    expected_h, expected_w = reduced_size(height, width, reduction)
    try:
        # The stored pixel grid, as the CameraInfo describes it: an EXIF orientation tag would
        # otherwise rotate the image (and swap width and height) behind the intrinsics' back.
        bgr = cv2.imdecode(data, _JPEG_REDUCTIONS[reduction] | cv2.IMREAD_IGNORE_ORIENTATION)
    except cv2.error as err:
        raise SensorDataError(
            topic, f"data: cannot decode {data.size} bytes of {kind} (format {fmt!r:.80}): {err}"
        ) from None
    if bgr is None or bgr.size == 0:
        raise SensorDataError(
            topic,
            f"data: cannot decode {data.size} bytes of {kind} (format {fmt!r:.80}): corrupt or truncated",
        )
    expected = (expected_h, expected_w)
    if bgr.ndim != 3 or bgr.shape[:2] != expected or bgr.shape[2] != 3 or bgr.dtype != np.uint8:
        at = f" (1/{reduction}: {expected_w}x{expected_h})" if reduction > 1 else ""
        raise SensorDataError(
            topic,
            f"data: {kind} header says {width}x{height}{at} but it decodes to "
            f"{bgr.shape[1] if bgr.ndim > 1 else '?'}x{bgr.shape[0]} ({bgr.dtype}, shape {bgr.shape})",
        )
    # The compressed plugin encodes colour as bgr8 and imdecode returns BGR: swap to RGB.
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), reduction


# Pillow's format names -> the name used in errors; Pillow is asked for these formats only.
_HEADER_FORMATS = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG"}


def _compressed_header(data: np.ndarray, fmt: str, topic: str) -> tuple[str, int, int]:
    """(kind, width, height) from a JPEG or PNG header, without decoding pixels: PIL.Image.open
    parses the markers/chunks up to the image data and decodes nothing until .load()."""
    try:
        with PILImage.open(io.BytesIO(data.tobytes()), formats=("PNG", "JPEG")) as header:
            kind = _HEADER_FORMATS.get(str(header.format), str(header.format))
            width, height = (int(v) for v in header.size)
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning) as err:
        # Pillow's own limit, checked in open(): above 2 * PIL.Image.MAX_IMAGE_PIXELS (179 Mpixel) an
        # error, refused whatever max_pixels says; above MAX_IMAGE_PIXELS a warning, an error only
        # where warnings are errors (otherwise Pillow warns and max_pixels decides below).
        raise SensorDataError(
            topic, f"data: header of {data.size} bytes (format {fmt!r:.80}) refused by Pillow: {err}"
        ) from None
    except UnidentifiedImageError:
        raise SensorDataError(
            topic,
            f"data: cannot decode {data.size} bytes as {fmt!r:.80}: not a JPEG or PNG "
            f"(starts {data[:8].tobytes()!r})",
        ) from None
    except Exception as err:  # a corrupt header: Pillow's parsers raise many kinds (struct.error, ...)
        raise SensorDataError(
            topic,
            f"data: cannot decode {data.size} bytes as {fmt!r:.80}: corrupt header "
            f"({type(err).__name__}: {err})",
        ) from None
    return kind, width, height


def _check_max_pixels(max_pixels: int) -> None:
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)) or max_pixels < 1:
        raise ValueError(f"max_pixels must be a positive integer, got {max_pixels!r}")


def _check_pixels(width: int, height: int, max_pixels: int, topic: str, what: str) -> None:
    """Refuse width x height above max_pixels; the error shows the arithmetic."""
    pixels = width * height
    if pixels > max_pixels:
        raise SensorDataError(
            topic, f"{what} {width}x{height} = {pixels} pixels exceeds max_image_pixels {max_pixels}"
        )


def _check_rgb(rgb: np.ndarray, where: str) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(
            f"{where}: expected a non-empty H x W x 3 uint8 RGB image, got {rgb.shape} {rgb.dtype}"
        )
    return rgb


def rgb_to_image_fields(rgb: np.ndarray) -> dict[str, Any]:
    """The sensor_msgs/Image fields (less header) of an RGB image: rgb8, packed rows, `data` bytes."""
    rgb = _check_rgb(rgb, "rgb_to_image_fields")
    height, width = rgb.shape[:2]
    return {
        "height": height,
        "width": width,
        "encoding": "rgb8",
        "is_bigendian": 0,
        "step": 3 * width,
        "data": np.ascontiguousarray(rgb).tobytes(),
    }


def compressed_format(fmt: str = "jpeg") -> str:
    """The `format` string image_transport's compressed plugin writes for a colour image."""
    return f"rgb8; {fmt} compressed bgr8"


def rgb_to_compressed(rgb: np.ndarray, fmt: str = "jpeg", quality: int = 90) -> bytes:
    """JPEG (quality 0..100) or PNG bytes of an RGB image, for a CompressedImage's `data`."""
    rgb = _check_rgb(rgb, "rgb_to_compressed")
    if fmt not in COMPRESSED_FORMATS:
        raise ValueError(f"rgb_to_compressed: format {fmt!r} not in {list(COMPRESSED_FORMATS)}")
    if not 0 <= quality <= 100:
        raise ValueError(f"rgb_to_compressed: quality must be in [0, 100], got {quality}")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if COMPRESSED_FORMATS[fmt] == ".jpg" else []
    ok, encoded = cv2.imencode(COMPRESSED_FORMATS[fmt], cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ValueError(f"rgb_to_compressed: OpenCV failed to encode {rgb.shape} as {fmt}")
    return encoded.tobytes()


def make_image(types: Any, header: Any, rgb: np.ndarray) -> Any:
    """sensor_msgs/Image (rgb8) of an RGB image, built with `types` (ros2_lmd.messages.types)."""
    return types.new("sensor_msgs/msg/Image", header=header, **rgb_to_image_fields(rgb))


def make_compressed_image(
    types: Any, header: Any, rgb: np.ndarray, fmt: str = "jpeg", quality: int = 90
) -> Any:
    """sensor_msgs/CompressedImage of an RGB image, built with `types`."""
    return types.new(
        "sensor_msgs/msg/CompressedImage",
        header=header,
        format=compressed_format(fmt),
        data=rgb_to_compressed(rgb, fmt, quality),
    )
