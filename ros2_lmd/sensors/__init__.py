"""Sensor data: message <-> numpy conversion (duck-typed: rclpy and rosbags messages alike, no
rclpy import), extrinsics (tf), the time sync that builds SensorFrames."""

from ros2_lmd.sensors.camera_info import (
    CameraCalibration,
    camera_info_fields,
    check_image_size,
    intrinsics_from_camera_info,
    make_camera_info,
)
from ros2_lmd.sensors.errors import SensorDataError, TransformLookupError
from ros2_lmd.sensors.frame import LIDAR_FIELDS, MODALITIES, RADAR_FIELDS, CameraImage, SensorFrame
from ros2_lmd.sensors.image import (
    compressed_to_rgb,
    image_to_rgb,
    make_compressed_image,
    make_image,
    rgb_to_compressed,
    rgb_to_image_fields,
)
from ros2_lmd.sensors.pointcloud2 import (
    PointCloudResult,
    make_pointcloud2,
    pointcloud2_layout,
    read_points,
)
from ros2_lmd.sensors.sync import AssemblyResult, DroppedFrame, FrameAssembler, SensorSource
from ros2_lmd.sensors.tf import TransformTree, make_tf_message, transform_points, transform_stamped_fields

__all__ = [
    "CameraImage",
    "SensorFrame",
    "MODALITIES",
    "RADAR_FIELDS",
    "LIDAR_FIELDS",
    "SensorDataError",
    "TransformLookupError",
    "PointCloudResult",
    "read_points",
    "pointcloud2_layout",
    "make_pointcloud2",
    "image_to_rgb",
    "compressed_to_rgb",
    "rgb_to_image_fields",
    "rgb_to_compressed",
    "make_image",
    "make_compressed_image",
    "CameraCalibration",
    "intrinsics_from_camera_info",
    "check_image_size",
    "camera_info_fields",
    "make_camera_info",
    "TransformTree",
    "transform_points",
    "transform_stamped_fields",
    "make_tf_message",
    "FrameAssembler",
    "SensorSource",
    "DroppedFrame",
    "AssemblyResult",
]
