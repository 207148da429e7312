"""`ros2-lmd simulate`: a synthetic drive written as a rosbag2 with the real message types on the
default topics of docs/architecture.md (compressed images + CameraInfo per camera, one PointCloud2
per radar in its own frame, the LiDAR sweep, /tf_static), and the ground-truth fault timeline as
faults.csv inside the bag folder, so that it travels with its bag and drives can share a parent folder
(rosbag2 readers read only the files metadata.yaml lists). Messages are logged at their arrival time,
so a delayed sensor is recorded as it would be live.

Every argument is checked before the first frame is simulated (a fault window must start inside the
drive and hit a recorded sensor). The bag is written into a temporary folder beside it and moved
into place at the end: a run that fails or is interrupted leaves nothing behind, and an earlier
drive is replaced (with `force`) only by a complete new one."""

from __future__ import annotations

import heapq
import math
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ros2_lmd.messages.types import header_msg, rosbags_types, time_msg
from ros2_lmd.replay.bag import (
    RECORDING_CHUNK_BYTES,
    STORAGES,
    BagWriter,
    bag_dir,
    check_replaceable,
    resolve_bag,
)
from ros2_lmd.sensors.camera_info import make_camera_info
from ros2_lmd.sensors.frame import LIDAR_FIELDS, MODALITIES, RADAR_FIELDS
from ros2_lmd.sensors.image import make_compressed_image
from ros2_lmd.sensors.pointcloud2 import make_pointcloud2
from ros2_lmd.sensors.tf import make_tf_message
from ros2_lmd.sim.drive import NUSCENES_RATES_HZ

if TYPE_CHECKING:
    from ros2_lmd.sim.drive import SimFrame

BASE_FRAME = "base_link"
FAULTS_CSV = "faults.csv"  # the fault timeline's name inside the bag folder
# simulate --rig: each sensor kind's rate (Hz), or None: every sensor at --frame-rate, together
RIGS: dict[str, Mapping[str, float] | None] = {"uniform": None, "nuscenes": NUSCENES_RATES_HZ}


@dataclass
class SimulateResult:
    bag: Path
    faults_csv: Path
    frames: int
    messages: int


def camera_info_topic(name: str) -> str:
    return f"/{name}/camera_info"


def faults_csv_path(bag: str | Path) -> Path:
    """Where a drive's ground-truth fault timeline is kept: faults.csv inside its rosbag2 folder
    (`bag`: the folder, or one of its storage files)."""
    return resolve_bag(bag) / FAULTS_CSV


def recorded_faults(bag: str | Path) -> Path | None:
    """The fault timeline kept with `bag` (what `simulate` wrote into it), or None if it has none."""
    path = faults_csv_path(bag)
    return path if path.is_file() else None


def existing_outputs(out: str | Path) -> list[Path]:
    """What `simulate_to_bag(out, ...)` would replace: the bag (its faults.csv inside), if it exists."""
    out = bag_dir(out)
    return [out] if out.exists() or out.is_symlink() else []


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
    force: bool = False,
    start_stamp: float | None = None,
    rig: str = "uniform",
) -> SimulateResult:
    """Write the drive to the rosbag2 directory `out` (named as rosbag2 does: `drive/drive_0.mcap`;
    a storage suffix on `out` is dropped, see replay.bag.bag_dir) with its fault timeline inside
    it, as faults.csv (`faults_csv_path`). An existing `out` is an error (FileExistsError)
    unless `force`, which replaces it if it is a rosbag2 directory; bad arguments raise ValueError
    naming them, before any work. `start_stamp`: the drive's first stamp in seconds since the epoch
    (default: the simulator's, the same for every drive). `rig`: "uniform" (every sensor at
    `rate_hz`, together) or "nuscenes" (each sensor kind at its nuScenes rate, every sensor with a
    phase of its own: sim.NUSCENES_RATES_HZ; `rate_hz` is then unused)."""
    from ros2_lmd.sim import SimConfig, sensor_schedule, simulate_drive, write_faults_csv
    from ros2_lmd.sim.faults import parse_fault_spec

    out = bag_dir(out)
    csv_path = faults_csv_path(out)
    if rig not in RIGS:
        raise ValueError(f"rig must be one of {', '.join(RIGS)}, got {rig!r}")
    rates = RIGS[rig]
    total = int(round(duration_s * rate_hz)) if math.isfinite(duration_s * rate_hz) else 0
    if total < 1:
        raise ValueError(
            f"duration must be finite and at least one frame ({1 / rate_hz:g} s at {rate_hz:g} Hz), "
            f"got {duration_s:g} s"
        )
    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {', '.join(STORAGES)}, got {storage!r}")
    config = SimConfig(modalities=tuple(modalities))
    if camera_size is not None:
        config = replace(config, camera_width=camera_size[0], camera_height=camera_size[1])
    if start_stamp is not None:
        if not (math.isfinite(start_stamp) and start_stamp >= 0):
            raise ValueError(f"start_stamp must be a finite time >= 0 s since the epoch, got {start_stamp!r}")
        config = replace(config, start_stamp=float(start_stamp))
    sensor_rig = config.rig()  # checks the camera size
    if rates is not None:
        enabled = [s for s in sensor_rig.sensors if s.modality in config.modalities]
        total = len(sensor_schedule(enabled, rates, duration_s))
    specs = parse_fault_spec(faults, sensor_rig, duration_s=duration_s) if faults else []
    for spec in specs:
        modality = spec.target if spec.target in MODALITIES else sensor_rig[spec.target].modality
        if modality not in config.modalities:
            raise ValueError(
                f"fault {str(spec)!r}: {modality} is not among the recorded modalities "
                f"({', '.join(config.modalities)})"
            )
    check_replaceable(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        drive = simulate_drive(
            seed, duration_s=duration_s, rate_hz=rate_hz, faults=specs, config=config, rates=rates
        )
        frames, messages = _write_drive(staging / out.name, storage, drive, total, progress, jpeg_quality)
        write_faults_csv(staging / out.name / FAULTS_CSV, specs, sensor_rig)
        if out.exists():
            shutil.rmtree(out)  # a rosbag2 directory (check_replaceable), replaced only now
        (staging / out.name).rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return SimulateResult(out, csv_path, frames, messages)


def _write_drive(
    path: Path, storage: str, drive: Iterator[SimFrame], total: int, progress: bool, jpeg_quality: int
) -> tuple[int, int]:
    """Write the drive's frames to a new bag at `path`; returns (frames, messages)."""
    from tqdm import tqdm

    types = rosbags_types()
    counter = _FrameCounter(drive)
    frames = tqdm(
        counter, total=total, desc="simulating", unit="frame", disable=not progress, file=sys.stderr
    )
    messages = 0
    with BagWriter(path, types.typestore, storage, RECORDING_CHUNK_BYTES) as writer:
        for topic, msgtype, log_time, message in drive_messages(frames, types, jpeg_quality):
            writer.write(topic, msgtype, log_time, message, latched=topic == "/tf_static")
            messages += 1
    return counter.count, messages


class _FrameCounter:
    def __init__(self, frames: Iterator[SimFrame]) -> None:
        self.frames, self.count = frames, 0

    def __iter__(self) -> Iterator[SimFrame]:
        for frame in self.frames:
            self.count += 1
            yield frame


def in_log_order(
    messages: Iterable[tuple[str, str, int, Any]], lookahead_s: float = 3.0
) -> Iterator[tuple[str, str, int, Any]]:
    """`drive_messages` in log-time order, as a bag reader returns them, without writing a bag: a
    delayed sensor's messages come with their frame from the simulator but are logged later. Holds
    `lookahead_s` of messages (longer than any injected delay); ties keep simulation order."""
    # heapq by hand: a sorted() would hold the whole drive's images and clouds in memory
    heap: list[tuple[int, int, tuple[str, str, int, Any]]] = []
    newest, lookahead_ns = -math.inf, int(lookahead_s * 1e9)
    for order, item in enumerate(messages):
        heapq.heappush(heap, (item[2], order, item))
        newest = max(newest, item[2])
        while heap and heap[0][0] <= newest - lookahead_ns:
            yield heapq.heappop(heap)[2]
    while heap:
        yield heapq.heappop(heap)[2]


def drive_messages(
    drive: Iterable[SimFrame], types: Any, jpeg_quality: int = 90
) -> Iterator[tuple[str, str, int, Any]]:
    """The messages of a simulated drive as sensors would publish them: (topic, message type, log
    time in ns = the reading's arrival, message), /tf_static first, in simulation order (a bag
    reader returns them by log time; a delayed sensor's messages come later there)."""
    first = True
    for frame in drive:
        if first:  # static extrinsics, logged before any sensor message
            stamp = time_msg(types, frame.stamp)
            entries = [(BASE_FRAME, spec.frame_id, spec.T_base_sensor) for spec in frame.rig.sensors]
            yield (
                "/tf_static",
                "tf2_msgs/msg/TFMessage",
                _ns(frame.stamp) - 1,
                make_tf_message(types, stamp, entries),
            )
            first = False
        for name, reading in frame.readings.items():
            if reading.data is None:  # a dropped-out sensor publishes nothing
                continue
            spec = frame.rig[name]
            header = header_msg(types, reading.stamp, spec.frame_id)
            log_time = _ns(reading.arrival)
            if reading.modality == "camera":
                image = reading.data.image
                compressed = make_compressed_image(types, header, image, "jpeg", jpeg_quality)
                yield spec.topic, "sensor_msgs/msg/CompressedImage", log_time, compressed
                info = make_camera_info(types, header, reading.data.K, image.shape[1], image.shape[0])
                yield camera_info_topic(name), "sensor_msgs/msg/CameraInfo", log_time, info
            else:
                fields = RADAR_FIELDS if reading.modality == "radar" else LIDAR_FIELDS
                cloud = make_pointcloud2(types, header, reading.data.points[:, : len(fields)], fields)
                yield spec.topic, "sensor_msgs/msg/PointCloud2", log_time, cloud


def _ns(seconds: float) -> int:
    return int(round(seconds * 1e9))
