"""sensor_msgs/CameraInfo -> pinhole intrinsics, checked where they enter: an uncalibrated camera
(all-zero K) or an image whose size disagrees with its CameraInfo would put camera features in the
wrong BEV cells without any error, so both are refused here. Also the inverse for writers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ros2_lmd.geometry.lifting import scale_intrinsics
from ros2_lmd.sensors.errors import SensorDataError, int_field
from ros2_lmd.sensors.image import reduced_size


@dataclass(frozen=True, eq=False)  # holds an array: identity equality
class CameraCalibration:
    """Intrinsics of one camera: K (3x3 float64) for images of `width` x `height` pixels."""

    K: np.ndarray
    width: int
    height: int
    frame_id: str = ""

    def at_reduction(self, reduction: int) -> CameraCalibration:
        """The calibration of this camera's images decoded at 1/`reduction` (a JPEG scaled by
        libjpeg while decoding: pixel u covers stored pixels [r*u, r*u + r), so centres map as
        u' = (u + 0.5) / r - 0.5)."""
        if reduction == 1:
            return self
        height, width = reduced_size(self.height, self.width, reduction)
        K = scale_intrinsics(self.K, 1.0 / reduction, 1.0 / reduction, "centre")
        return CameraCalibration(K=K, width=width, height=height, frame_id=self.frame_id)


def intrinsics_from_camera_info(msg: Any, topic: str) -> CameraCalibration:
    """CameraCalibration from a CameraInfo (`k`, or `K` in ROS 1 style messages)."""
    raw = getattr(msg, "k", None)
    if raw is None:
        raw = getattr(msg, "K", None)
    if raw is None:
        raise SensorDataError(topic, "k: CameraInfo has no k (or K) field")
    try:
        values = np.asarray(raw)
    except (TypeError, ValueError) as err:  # ragged nesting
        raise SensorDataError(topic, f"k: not an array of numbers: {raw!r:.120} ({err})") from None
    # Real numbers only: numpy would parse strings ("400") and drop imaginary parts silently.
    if values.dtype.kind not in "iuf":
        raise SensorDataError(topic, f"k: expected 9 real numbers, got {values.dtype} values {raw!r:.120}")
    k = values.astype(np.float64).reshape(-1)
    if k.size != 9:
        raise SensorDataError(topic, f"k: expected 9 numbers, got {k.size}")
    if not np.isfinite(k).all():
        raise SensorDataError(topic, f"k: non-finite values {k.tolist()}")
    if not k.any():
        raise SensorDataError(topic, "k: zero intrinsics (camera not calibrated)")
    K = k.reshape(3, 3)
    fx, fy = K[0, 0], K[1, 1]
    if fx <= 0 or fy <= 0:
        raise SensorDataError(topic, f"k: focal lengths must be > 0, got fx={fx}, fy={fy}")
    if not np.allclose(K[2], (0.0, 0.0, 1.0)):
        raise SensorDataError(topic, f"k: last row must be [0, 0, 1], got {K[2].tolist()}")
    width, height = int_field(msg, "width", topic), int_field(msg, "height", topic)
    if width <= 0 or height <= 0:
        raise SensorDataError(topic, f"width/height: must be > 0, got {width} x {height}")
    frame_id = str(getattr(getattr(msg, "header", None), "frame_id", "") or "")
    return CameraCalibration(K=K.copy(), width=width, height=height, frame_id=frame_id)


def check_image_size(image_hw: tuple[int, int], calib: CameraCalibration, topic: str) -> None:
    """Refuse an image whose (height, width) differs from its CameraInfo: K would not apply."""
    height, width = int(image_hw[0]), int(image_hw[1])
    if (height, width) != (calib.height, calib.width):
        raise SensorDataError(
            topic,
            f"image size {width} x {height} disagrees with CameraInfo "
            f"{calib.width} x {calib.height} (intrinsics would be wrong)",
        )


def camera_info_fields(K: np.ndarray, width: int, height: int) -> dict[str, Any]:
    """CameraInfo fields (less header, roi, binning) for a rectified pinhole camera: plumb_bob with
    zero distortion, identity rectification, P = [K | 0]. Arrays as float64 numpy."""
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3) or not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ValueError(f"camera_info_fields: K must be a finite 3x3 with fx, fy > 0, got {K}")
    if width <= 0 or height <= 0:
        raise ValueError(f"camera_info_fields: width/height must be > 0, got {width} x {height}")
    P = np.hstack([K, np.zeros((3, 1))])
    return {
        "height": int(height),
        "width": int(width),
        "distortion_model": "plumb_bob",
        "d": np.zeros(5),
        "k": K.reshape(-1).copy(),
        "r": np.eye(3).reshape(-1),
        "p": P.reshape(-1),
    }


def make_camera_info(types: Any, header: Any, K: np.ndarray, width: int, height: int) -> Any:
    """sensor_msgs/CameraInfo of a rectified pinhole camera, built with `types`
    (ros2_lmd.messages.types: RclpyTypes or RosbagsTypes)."""
    return types.new("sensor_msgs/msg/CameraInfo", header=header, **camera_info_fields(K, width, height))
