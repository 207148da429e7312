"""sensor_msgs/Image and CompressedImage -> H x W x 3 uint8 RGB (the SensorFrame camera format),
honouring row padding (`step`) and 16-bit byte order; and the inverse for writers. Raw images are
read through a strided numpy view of the message buffer; compressed ones through cv2.imdecode."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from ros2_lmd.sensors.buffers import as_uint8_buffer
from ros2_lmd.sensors.errors import SensorDataError

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


def image_to_rgb(msg: Any, topic: str) -> np.ndarray:
    """H x W x 3 uint8 RGB copy of a sensor_msgs/Image. 16-bit images keep their high byte
    (value >> 8, as a fixed scale so brightness does not vary frame to frame)."""
    encoding = str(msg.encoding)
    if encoding not in IMAGE_ENCODINGS:
        raise SensorDataError(
            topic, f"encoding: unsupported encoding {encoding!r}; supported: {list(IMAGE_ENCODINGS)}"
        )
    channels, depth = IMAGE_ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise SensorDataError(topic, f"width/height: image is {width} x {height}, must be non-empty")
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


def compressed_to_rgb(msg: Any, topic: str) -> np.ndarray:
    """H x W x 3 uint8 RGB of a sensor_msgs/CompressedImage (JPEG or PNG, as image_transport's
    compressed plugin writes: `format` like "jpeg" or "rgb8; jpeg compressed bgr8")."""
    fmt = str(msg.format)
    if "compresseddepth" in fmt.lower():
        raise SensorDataError(
            topic, f"format: {fmt!r} is a compressedDepth image (depth, not a camera image)"
        )
    data = as_uint8_buffer(msg.data, topic)
    if data.size == 0:
        raise SensorDataError(topic, f"data: empty payload (format {fmt!r})")
    try:
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    except cv2.error as err:
        raise SensorDataError(topic, f"data: cannot decode {data.size} bytes as {fmt!r}: {err}") from None
    if bgr is None or bgr.size == 0:
        raise SensorDataError(
            topic, f"data: cannot decode {data.size} bytes as {fmt!r} (corrupt or unknown format)"
        )
    # The compressed plugin encodes colour as bgr8 and imdecode returns BGR: swap to RGB.
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


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
