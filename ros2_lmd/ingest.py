"""From sensor messages to SensorFrames without ROS: which topics feed which sensors (from the node
parameters), converting each message (duck-typed: rclpy or rosbags objects), and the time sync.
The live node and the offline bag tools both use this, so they build the same frames."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ros2_lmd.params import MonitorParams, ParameterError
from ros2_lmd.sensors.camera_info import CameraCalibration, check_image_size
from ros2_lmd.sensors.errors import SensorDataError
from ros2_lmd.sensors.frame import LIDAR_FIELDS, RADAR_FIELDS
from ros2_lmd.sensors.image import compressed_to_rgb, image_to_rgb
from ros2_lmd.sensors.msgtypes import stamp_seconds
from ros2_lmd.sensors.pointcloud2 import read_points
from ros2_lmd.sensors.sync import AssemblyResult, FrameAssembler
from ros2_lmd.sensors.tf import TransformTree

POINT_FIELDS = {"radar": RADAR_FIELDS, "lidar": LIDAR_FIELDS}


def sensor_name_of_topic(topic: str) -> str:
    """`/radar_front` -> `radar_front`, `/ns/lidar_top` -> `ns_lidar_top` (diagnostics ids)."""
    return topic.strip("/").replace("/", "_") or topic


@dataclass(frozen=True)
class InputSensor:
    """One subscribed sensor: name (assembler key, hardware id), modality, data topic and, for a
    camera, its CameraInfo topic."""

    name: str
    modality: str
    topic: str
    info_topic: str = ""


def input_sensors(params: MonitorParams, modalities: tuple[str, ...]) -> list[InputSensor]:
    """The sensors of the modalities both configured and known to the model, in parameter order."""
    sensors = []
    if "camera" in modalities:
        sensors += [InputSensor(name, "camera", image, info) for name, image, info in
                    zip(params.camera_names, params.camera_image_topics, params.camera_info_topics)]
    if "radar" in modalities:
        sensors += [InputSensor(sensor_name_of_topic(t), "radar", t) for t in params.radar_topics]
    if "lidar" in modalities:
        sensors.append(InputSensor(sensor_name_of_topic(params.lidar_topic), "lidar", params.lidar_topic))
    names = [s.name for s in sensors]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ParameterError(f"sensor names {duplicates} are used twice (camera_names and topics must be distinct)")
    return sensors


@dataclass(frozen=True)
class Reading:
    """A converted message: header stamp, payload (RGB image, or (N, fields) points in the sensor
    frame), a problem that did not stop its use (a failed check) and a note (normal but worth a log)."""

    stamp: float
    payload: np.ndarray
    problem: str = ""
    note: str = ""


def convert_reading(sensor: InputSensor, msg: Any, calibration: CameraCalibration | None) -> Reading:
    """Convert one sensor message (Image or CompressedImage, checked against its CameraInfo size;
    PointCloud2 parsed by field names). A message that cannot be used raises SensorDataError naming
    the topic and the reason."""
    stamp = stamp_seconds(msg.header)
    if sensor.modality == "camera":
        decode = compressed_to_rgb if hasattr(msg, "format") else image_to_rgb
        rgb = decode(msg, sensor.topic)
        if calibration is not None:
            check_image_size(rgb.shape[:2], calibration, sensor.topic)
        return Reading(stamp, rgb)
    cloud = read_points(msg, POINT_FIELDS[sensor.modality], sensor.topic)
    if not cloud.dropped_nonfinite:
        return Reading(stamp, cloud.points)
    reason = f"{cloud.dropped_nonfinite} of {cloud.total_points} points have NaN/inf values (dropped)"
    if getattr(msg, "is_dense", False):
        # is_dense promises finite points: the sender is wrong, a failed check; the finite points
        # are still used.
        return Reading(stamp, cloud.points, problem=f"{reason} although is_dense is true")
    # An organised cloud marks missing returns with NaN (is_dense false): normal.
    return Reading(stamp, cloud.points, note=reason)


def frame_assembler(params: MonitorParams, sensors: list[InputSensor],
                    extrinsics: TransformTree) -> FrameAssembler:
    """The time sync configured by the node parameters (live and offline alike). The fallback key
    applies when its modality is among the subscribed sensors."""
    modalities = {s.modality for s in sensors}
    fallback = params.key_fallback if params.key_fallback in modalities else None
    return FrameAssembler(sensors, params.sync_tolerance_s, extrinsics, key_sensor=params.key_sensor,
                          base_frame=params.base_frame, max_delay_s=params.sync_max_delay_s,
                          key_fallback=fallback, key_gap_s=params.key_gap_s)


@dataclass
class Ingest:
    """Topics in, frames out: calibrations, extrinsics and the FrameAssembler of one run.
    `problems` collects (topic, reason) of every message that was bad or could not be used."""

    params: MonitorParams
    modalities: tuple[str, ...]
    extrinsics: TransformTree = field(default_factory=TransformTree)

    def __post_init__(self) -> None:
        self.sensors = input_sensors(self.params, self.modalities)
        self.by_topic = {s.topic: s for s in self.sensors}
        self.by_info_topic = {s.info_topic: s for s in self.sensors if s.info_topic}
        self.calibrations: dict[str, CameraCalibration] = {}
        self.assembler = frame_assembler(self.params, self.sensors, self.extrinsics)
        self.problems: list[tuple[str, str]] = []

    def topics(self) -> dict[str, str]:
        """topic -> the kind of message expected there (image, camera_info, points, tf)."""
        out = {"/tf_static": "tf"}
        for s in self.sensors:
            out[s.topic] = "image" if s.modality == "camera" else "points"
            if s.info_topic:
                out[s.info_topic] = "camera_info"
        return out

    def on_message(self, topic: str, msg: Any) -> None:
        try:
            if topic == "/tf_static":
                self.extrinsics.add_tf_message(msg, topic)
            elif topic in self.by_info_topic:
                sensor = self.by_info_topic[topic]
                self.calibrations[sensor.name] = self.assembler.add_camera_info(sensor.name, msg, topic)
            elif topic in self.by_topic:
                sensor = self.by_topic[topic]
                reading = convert_reading(sensor, msg, self.calibrations.get(sensor.name))
                if reading.problem:
                    self.problems.append((topic, reading.problem))
                self.assembler.add(sensor.name, reading.stamp, reading.payload, str(msg.header.frame_id))
        except SensorDataError as error:
            self.problems.append((topic, error.reason))

    def pop_ready(self) -> list[AssemblyResult]:
        return self.assembler.pop_ready()

    def flush(self) -> list[AssemblyResult]:
        return self.assembler.flush()
