"""Topics in, SensorFrames out, without ROS: which topics feed which sensors (from the monitor
parameters), converting each message (duck-typed: rclpy or rosbags objects), extrinsics, camera
calibrations and the time sync. The live node's callbacks and `ros2-lmd analyze`'s bag loop both
hand every message to one `Ingest`, so live and offline build the same frames by construction."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ros2_lmd.monitor.params import (
    MonitorParams,
    ParameterError,
    read_yaml_mapping,
    resolve_topic,
    with_resolved_topics,
)
from ros2_lmd.monitor.sensor_checks import CAMERA_CHECK_MIN_SIZE
from ros2_lmd.sensors.camera_info import CameraCalibration, check_image_size
from ros2_lmd.sensors.errors import SensorDataError
from ros2_lmd.sensors.frame import POINT_FIELDS
from ros2_lmd.sensors.image import DEFAULT_MAX_IMAGE_PIXELS, compressed_to_rgb_reduced, image_to_rgb
from ros2_lmd.sensors.pointcloud2 import read_points
from ros2_lmd.sensors.stamps import LossEstimator, StampGuard, header_stamp_or_nan, stamp_ns, stamp_seconds
from ros2_lmd.sensors.sync import AssemblyResult, FrameAssembler
from ros2_lmd.sensors.tf import TransformTree

if TYPE_CHECKING:
    from ros2_lmd.models.base import FusionModel

TF_STATIC = "/tf_static"


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


def input_sensors(
    params: MonitorParams, modalities: tuple[str, ...], namespace: str = "/"
) -> list[InputSensor]:
    """The sensors of the modalities both configured and known to the model, in parameter order,
    their topics resolved for a node in `namespace`. A sensor's name comes from its topic as
    configured, so `lidar_top` is sensor lidar_top in every namespace."""
    sensors = []
    if "camera" in modalities:
        sensors += [
            InputSensor(name, "camera", resolve_topic(image, namespace), resolve_topic(info, namespace))
            for name, image, info in zip(
                params.camera_names, params.camera_image_topics, params.camera_info_topics
            )
        ]
    if "radar" in modalities:
        sensors += [
            InputSensor(sensor_name_of_topic(t), "radar", resolve_topic(t, namespace))
            for t in params.radar_topics
        ]
    if "lidar" in modalities:
        topic = params.lidar_topic
        sensors.append(InputSensor(sensor_name_of_topic(topic), "lidar", resolve_topic(topic, namespace)))
    names = [s.name for s in sensors]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ParameterError(
            f"sensor names {duplicates} are used twice (camera_names and topics must be distinct)"
        )
    return sensors


@dataclass(frozen=True)
class Reading:
    """A converted message: header stamp, payload (RGB image, or (N, fields) points in the sensor
    frame), a problem that did not stop its use (a failed check) and a note (normal but worth a log)."""

    stamp: float
    payload: np.ndarray
    problem: str = ""
    note: str = ""
    reduction: int = 1  # a camera image decoded at 1/reduction of its stored size


def convert_reading(
    sensor: InputSensor,
    msg: Any,
    calibration: CameraCalibration | None,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    camera_at_least: tuple[int, int] | None = None,
) -> Reading:
    """Convert one sensor message (Image or CompressedImage, checked against its CameraInfo size;
    PointCloud2 parsed by field names). A message that cannot be used raises SensorDataError naming
    the topic and the reason. `camera_at_least` = (h, w): a JPEG is decoded at the largest DCT
    reduction that keeps at least that many pixels (`camera_decode_size`); None: at full size."""
    stamp = stamp_seconds(msg.header)
    if sensor.modality == "camera":
        reduction = 1
        if hasattr(msg, "format"):
            rgb, reduction = compressed_to_rgb_reduced(
                msg, sensor.topic, max_pixels=max_image_pixels, at_least=camera_at_least
            )
        else:
            rgb = image_to_rgb(msg, sensor.topic, max_pixels=max_image_pixels)
        if calibration is not None:
            check_image_size(rgb.shape[:2], calibration.at_reduction(reduction), sensor.topic)
        return Reading(stamp, rgb, reduction=reduction)
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


def frame_assembler(
    params: MonitorParams,
    sensors: list[InputSensor],
    extrinsics: TransformTree,
    calibrations: dict[str, CameraCalibration] | None = None,
    time_epoch: int = 0,
) -> FrameAssembler:
    """The time sync configured by the node parameters (live and offline alike). The fallback key
    applies when its modality is among the subscribed sensors."""
    modalities = {s.modality for s in sensors}
    fallback = params.key_fallback if params.key_fallback in modalities else None
    return FrameAssembler(
        sensors,
        params.sync_tolerance_s,
        extrinsics,
        key_sensor=params.key_sensor,
        base_frame=params.base_frame,
        max_delay_s=params.sync_max_delay_s,
        calibrations=calibrations,
        key_fallback=fallback,
        key_gap_s=params.key_gap_s,
        time_epoch=time_epoch,
    )


def extrinsics_from_file(path: str, base_frame: str) -> TransformTree:
    """The extrinsics file of the `extrinsics_file` parameter (frame id -> pose)."""
    document = read_yaml_mapping(path, "a mapping of frame ids to poses", label="extrinsics_file")
    return TransformTree.from_config(dict(document), base_frame=base_frame, source=path)


@dataclass(frozen=True)
class MessageOutcome:
    """What became of one message. `kind`: reading, camera_info, tf or ignored (a topic nobody
    asked for). `error`: the message could not be used (for a key-sensor reading, its frame is
    dropped with this reason); `problem`: it was used but failed a check; `note`: normal but worth
    a log line; `time_jump`: this message showed that time jumped (the time sync restarted).
    `sensor` is None for /tf_static and ignored topics."""

    topic: str
    kind: str
    sensor: InputSensor | None = None
    stamp: float = math.nan
    error: str = ""
    problem: str = ""
    note: str = ""
    time_jump: str = ""

    @property
    def bad(self) -> str:
        """The reason this message counts as bad (error or problem), or empty."""
        return self.error or self.problem


class Ingest:
    """Topics in, frames out for one run: the sensors of the parameters, their calibrations, the
    extrinsics (from /tf_static or the extrinsics file), the stamp checks, the estimate of the
    messages lost before us, and the FrameAssembler. Not thread-safe: the caller serialises
    `on_message` and `pop_ready` (the node holds its lock)."""

    def __init__(
        self,
        params: MonitorParams,
        modalities: tuple[str, ...],
        namespace: str = "/",
        camera_at_least: tuple[int, int] | None = None,
    ) -> None:
        """`namespace`: the node's, where relative topic names resolve (`params` has them resolved).
        `camera_at_least`: the (h, w) JPEG camera images may be decoded down to (`camera_decode_size`);
        None decodes them at full size."""
        self.params = with_resolved_topics(params, namespace)
        self.modalities = modalities
        self.camera_at_least = camera_at_least
        if params.extrinsics_source == "config":
            self.extrinsics = extrinsics_from_file(params.extrinsics_file, params.base_frame)
        else:
            self.extrinsics = TransformTree()
        self.sensors = input_sensors(params, modalities, namespace)  # names: from the topics as given
        self.by_topic = {s.topic: s for s in self.sensors}
        self.by_info_topic = {s.info_topic: s for s in self.sensors if s.info_topic}
        self.calibrations: dict[str, CameraCalibration] = {}
        self.stamps = StampGuard(params.stamp_tolerance_s)
        self.losses = LossEstimator()
        self.time_epoch = 0
        self._retired: list[AssemblyResult] = []  # what the time sync held when time jumped
        self.assembler = frame_assembler(params, self.sensors, self.extrinsics)

    @property
    def key_sensor(self) -> str:
        return self.assembler.key_sensor

    @property
    def frames_pending(self) -> int:
        return self.assembler.frames_pending + len(self._retired)

    def sensor_messages(self) -> dict[str, tuple[int, int]]:
        """sensor -> (messages taken, messages lost before us), every sensor in parameter order."""
        return {
            s.name: (self.losses.received.get(s.name, 0), self.losses.lost.get(s.name, 0))
            for s in self.sensors
        }

    def topics(self) -> dict[str, str]:
        """topic -> the kind of message expected there (image, camera_info, points, tf)."""
        out = {TF_STATIC: "tf"} if self.params.extrinsics_source == "tf_static" else {}
        for s in self.sensors:
            out[s.topic] = "image" if s.modality == "camera" else "points"
            if s.info_topic:
                out[s.info_topic] = "camera_info"
        return out

    def on_message(self, topic: str, msg: Any, reference: float | None = None) -> MessageOutcome:
        """Take one message of `topic`; never raises for bad message content. `reference` is the
        time the message came in, in seconds (arrival time live, log time in a bag): its stamp is
        checked against it (StampGuard); None skips that check."""
        if topic == TF_STATIC and self.params.extrinsics_source == "tf_static":
            try:
                self.extrinsics.add_tf_message(msg, topic)
            except SensorDataError as error:
                return MessageOutcome(topic, "tf", error=error.reason)
            return MessageOutcome(topic, "tf")
        if topic in self.by_info_topic:
            sensor = self.by_info_topic[topic]
            try:
                self.calibrations[sensor.name] = self.assembler.add_camera_info(sensor.name, msg, topic)
            except SensorDataError as error:
                return MessageOutcome(
                    topic, "camera_info", sensor, header_stamp_or_nan(msg), error=error.reason
                )
            return MessageOutcome(topic, "camera_info", sensor, header_stamp_or_nan(msg))
        reading_sensor = self.by_topic.get(topic)
        if reading_sensor is None:
            return MessageOutcome(topic, "ignored")
        return self._on_reading(reading_sensor, msg, reference)

    def _on_reading(self, sensor: InputSensor, msg: Any, reference: float | None) -> MessageOutcome:
        topic, jump = sensor.topic, ""
        stamp = header_stamp_or_nan(msg)
        try:
            try:
                exact_ns = stamp_ns(msg.header)
            except (AttributeError, TypeError, ValueError, OverflowError) as error:
                raise SensorDataError(topic, f"header.stamp: unreadable ({error})") from None
            if reference is not None:
                verdict = self.stamps.check(sensor.name, stamp, reference)
                if verdict.time_jump:
                    jump = verdict.time_jump
                    self._restart_time(jump)
                if verdict.reason:
                    raise SensorDataError(topic, f"implausible stamp: {verdict.reason}")
            reading = convert_reading(
                sensor,
                msg,
                self.calibrations.get(sensor.name),
                self.params.max_image_pixels,
                self.camera_at_least,
            )
            self.assembler.add(
                sensor.name,
                reading.stamp,
                reading.payload,
                str(msg.header.frame_id),
                stamp_ns=exact_ns,
                arrival=reference,
                reduction=reading.reduction,
            )
        except SensorDataError as error:
            if sensor.name == self.key_sensor:
                # a key-sensor message that cannot be used is a frame that cannot be built
                self.assembler.refuse_key(stamp, f"{topic}: {error.reason}", malformed=True)
            elif sensor.name == self.assembler.key_fallback:
                # ... and so is one of the fallback key's, where it would have started the frame
                self.assembler.refuse_fallback(stamp, f"{topic}: {error.reason}")
            return MessageOutcome(topic, "reading", sensor, stamp, error=error.reason, time_jump=jump)
        self.losses.add(sensor.name, reading.stamp)
        return MessageOutcome(
            topic,
            "reading",
            sensor,
            reading.stamp,
            problem=reading.problem,
            note=reading.note,
            time_jump=jump,
        )

    def _restart_time(self, reason: str) -> None:
        """Time jumped: the frames the time sync holds are finished as they are, and a new time
        sync starts; its frames carry the next time epoch (the pipeline then restarts its
        baselines). Calibrations and extrinsics are static: kept."""
        self._retired += self.assembler.flush()
        self.time_epoch += 1
        self.assembler = frame_assembler(
            self.params, self.sensors, self.extrinsics, self.calibrations, self.time_epoch
        )
        self.losses.forget_newest()

    def pop_ready(self, now_stamp: float | None = None) -> list[AssemblyResult]:
        retired, self._retired = self._retired, []
        return retired + self.assembler.pop_ready(now_stamp)

    def flush(self) -> list[AssemblyResult]:
        retired, self._retired = self._retired, []
        return retired + self.assembler.flush()


def ingest_for_model(
    params: MonitorParams, model: FusionModel, *, adapt_key_sensor: bool = False, namespace: str = "/"
) -> tuple[Ingest, list[str]]:
    """The Ingest of `params` for `model`'s inputs, and the configured modalities the model does
    not take (not subscribed). A key sensor the model does not take is an error, or, with
    `adapt_key_sensor` (offline analysis of any bag), replaced by the model's last modality.

    Topic parameters are resolved for a node in `namespace` (relative names go under it), so the
    Ingest and its `params` name every topic in full: the node's namespace live, the root one for
    a bag (bags name topics in full: /lidar_top, /cam_front/...)."""
    unknown = sorted({n.lower() for n in params.camera_names} - set(model.config.camera_names))
    if "camera" in params.modalities and "camera" in model.modalities and unknown:
        raise ParameterError(
            f"camera_names: {unknown} are not cameras of model "
            f"{params.model} ({list(model.config.camera_names)})"
        )
    modalities = tuple(m for m in params.modalities if m in model.modalities)
    if params.key_sensor not in modalities:
        if not adapt_key_sensor or not modalities:
            raise ParameterError(
                f"key_sensor: {params.key_sensor} is not a modality of model "
                f"{params.model} ({list(model.modalities)}) among modalities "
                f"{list(params.modalities)}"
            )
        key = modalities[-1]
        fallback = "none" if params.key_fallback == key else params.key_fallback
        params = replace(params, key_sensor=key, key_fallback=fallback)
    ignored = sorted(set(params.modalities) - set(model.modalities))
    return Ingest(params, modalities, namespace, camera_decode_size(params, model)), ignored


def camera_decode_size(params: MonitorParams, model: FusionModel) -> tuple[int, int] | None:
    """The (h, w) a JPEG camera image may be decoded down to under `camera_decode: reduced`: at
    least the model's camera input and at least the size the camera signal checks were validated at
    (their noise and texture features need the sensor's own noise, which a smaller image averages
    away); None (full size) under `camera_decode: full`."""
    if params.camera_decode == "full":
        return None
    model_h, model_w = model.config.image_size
    return max(model_h, CAMERA_CHECK_MIN_SIZE[0]), max(model_w, CAMERA_CHECK_MIN_SIZE[1])
