"""Sensor data: message <-> numpy conversion (duck-typed, no rclpy import), time sync, SensorFrame."""

from ros2_lmd.sensors.frame import LIDAR_FIELDS, MODALITIES, RADAR_FIELDS, CameraImage, SensorFrame

__all__ = ["CameraImage", "SensorFrame", "MODALITIES", "RADAR_FIELDS", "LIDAR_FIELDS"]
