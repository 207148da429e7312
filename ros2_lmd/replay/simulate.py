"""`ros2-lmd simulate`: a synthetic drive written as a rosbag2 with the real message types on the
default topics of docs/architecture.md (compressed images + CameraInfo per camera, one PointCloud2
per radar in its own frame, the LiDAR sweep, /tf_static), and the ground-truth fault timeline as
faults.csv beside it. Messages are logged at their arrival time, so a delayed sensor is recorded as
it would be live."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ros2_lmd.messages.types import header_msg, rosbags_types, time_msg
from ros2_lmd.replay.bag import BagWriter
from ros2_lmd.sensors.camera_info import make_camera_info
from ros2_lmd.sensors.frame import LIDAR_FIELDS, RADAR_FIELDS
from ros2_lmd.sensors.image import make_compressed_image
from ros2_lmd.sensors.pointcloud2 import make_pointcloud2
from ros2_lmd.sensors.tf import make_tf_message

BASE_FRAME = "base_link"


@dataclass
class SimulateResult:
    bag: Path
    faults_csv: Path
    frames: int
    messages: int


def camera_info_topic(name: str) -> str:
    return f"/{name}/camera_info"


def faults_csv_path(bag: Path) -> Path:
    """The ground-truth timeline sits next to the bag directory, as faults.csv."""
    return bag.parent / "faults.csv"


def simulate_to_bag(
    out: str | Path,
    duration_s: float = 20.0,
    seed: int = 0,
    faults: str | None = None,
    modalities: Sequence[str] = ("camera", "radar", "lidar"),
    storage: str = "mcap",
    rate_hz: float = 10.0,
    camera_size: tuple[int, int] | None = None,
    jpeg_quality: int = 90,
    progress: bool = True,
) -> SimulateResult:
    from tqdm import tqdm

    from ros2_lmd.sim import SimConfig, simulate_drive, write_faults_csv
    from ros2_lmd.sim.faults import parse_fault_spec

    out = Path(out)
    config = SimConfig(modalities=tuple(modalities))
    if camera_size is not None:
        config = SimConfig(
            modalities=tuple(modalities), camera_width=camera_size[0], camera_height=camera_size[1]
        )
    specs = parse_fault_spec(faults) if faults else []
    types = rosbags_types()
    frames = messages = 0
    frames_iter = simulate_drive(seed, duration_s=duration_s, rate_hz=rate_hz, faults=specs, config=config)
    total = int(round(duration_s * rate_hz))
    with BagWriter(out, types.typestore, storage) as writer:
        for frame in tqdm(
            frames_iter, total=total, desc="simulating", unit="frame", disable=not progress, file=sys.stderr
        ):
            if frames == 0:
                # static extrinsics, latched, logged before any sensor message
                stamp = time_msg(types, frame.stamp)
                tf = make_tf_message(
                    types,
                    stamp,
                    [(BASE_FRAME, spec.frame_id, spec.T_base_sensor) for spec in frame.rig.sensors],
                )
                writer.write("/tf_static", "tf2_msgs/msg/TFMessage", _ns(frame.stamp) - 1, tf, latched=True)
                messages += 1
            for name, reading in frame.readings.items():
                if reading.data is None:  # a dropped-out sensor publishes nothing
                    continue
                spec = frame.rig[name]
                header = header_msg(types, reading.stamp, spec.frame_id)
                log_time = _ns(reading.arrival)
                if reading.modality == "camera":
                    image = reading.data.image
                    writer.write(
                        spec.topic,
                        "sensor_msgs/msg/CompressedImage",
                        log_time,
                        make_compressed_image(types, header, image, "jpeg", jpeg_quality),
                    )
                    writer.write(
                        camera_info_topic(name),
                        "sensor_msgs/msg/CameraInfo",
                        log_time,
                        make_camera_info(types, header, reading.data.K, image.shape[1], image.shape[0]),
                    )
                    messages += 2
                else:
                    fields = RADAR_FIELDS if reading.modality == "radar" else LIDAR_FIELDS
                    writer.write(
                        spec.topic,
                        "sensor_msgs/msg/PointCloud2",
                        log_time,
                        make_pointcloud2(types, header, reading.data.points[:, : len(fields)], fields),
                    )
                    messages += 1
            frames += 1
        rig = frame.rig if frames else None
    csv_path = faults_csv_path(out)
    if rig is not None:
        write_faults_csv(csv_path, specs, rig)
    return SimulateResult(out, csv_path, frames, messages)


def _ns(seconds: float) -> int:
    return int(round(seconds * 1e9))
