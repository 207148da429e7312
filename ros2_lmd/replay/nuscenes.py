"""`ros2-lmd nuscenes2bag`: nuScenes scenes as rosbag2 (MCAP by default), one bag per scene, on the
monitor's default topics, so `analyze` and the node read real drives as they read simulated ones.

Topics (frame ids are the channels in lower case; cameras' are their optical frames, as nuScenes
calibrates cameras):
- `/<cam>/image_rect_compressed` sensor_msgs/CompressedImage: the JPEG file's bytes, not
  re-encoded, format "jpeg"; `/<cam>/camera_info` sensor_msgs/CameraInfo: K from
  calibrated_sensor.camera_intrinsic, the JPEG's size, no distortion (nuScenes projects with K alone)
- `/<radar>` sensor_msgs/PointCloud2: every field of the radar's .pcd file with its own type and size
  (x y z dyn_prop id rcs vx vy vx_comp vy_comp is_quality_valid ambig_state x_rms y_rms invalid_state
  pdh0 vx_rms vy_rms), the file's point bytes unchanged
- `/lidar_top` sensor_msgs/PointCloud2: x, y, z, intensity, ring as float32, the .pcd.bin bytes unchanged
- `/tf_static` (latched, logged before the first reading): base_link -> every sensor frame, from the
  calibrated sensors; `/tf`: map -> base_link at every ego pose of the scene's readings
- `/ground_truth/objects` visualization_msgs/MarkerArray (GROUND_TRUTH_TOPIC), once per keyframe
  sample, stamped with its LiDAR keyframe: a DELETEALL marker, then one CUBE per annotation in
  base_link at that keyframe's ego pose (`ns` the category, e.g. vehicle.car; `id` its index in the
  sample; `text` the instance token, the same object in every sample; `scale` length, width,
  height). MarkerArray because every ROS 2 install (and the project's typestore) knows it and
  Foxglove and rviz draw it; `ground_truth_boxes` reads it back.

Every message is stamped, and logged, at its reading's timestamp (microseconds -> nanoseconds), sweeps
included. The scenes and their files are checked before anything is written; each bag is written into
a temporary folder beside it and moved into place when complete."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from ros2_lmd.datasets.nuscenes import (
    CHANNELS,
    LIDAR_CHANNEL,
    AnnotationBox,
    NuScenesError,
    NuScenesTables,
    missing_files,
    modality_of,
    pose_matrix,
    read_lidar_bin,
    read_pcd,
    ros_name,
)
from ros2_lmd.messages.types import header_msg_ns, rosbags_types, time_msg_ns
from ros2_lmd.replay.bag import RECORDING_CHUNK_BYTES, STORAGES, BagWriter, bag_dir, check_replaceable
from ros2_lmd.sensors.camera_info import make_camera_info
from ros2_lmd.sensors.pointcloud2 import make_structured_pointcloud2
from ros2_lmd.sensors.tf import invert_rigid, make_tf_message

BASE_FRAME = "base_link"
MAP_FRAME = "map"
GROUND_TRUTH_TOPIC = "/ground_truth/objects"
# Marker colours (RGBA) of the ground-truth boxes: vehicles stand out, everything else is grey.
_VEHICLE_COLOUR = (1.0, 0.55, 0.0, 0.6)
_OTHER_COLOUR = (0.6, 0.6, 0.6, 0.4)


def topic_of(channel: str) -> str:
    """The monitor's default topic of a channel (docs/architecture.md, conventions)."""
    name = ros_name(channel)
    return f"/{name}/image_rect_compressed" if modality_of(channel) == "camera" else f"/{name}"


def camera_info_topic(channel: str) -> str:
    return f"/{ros_name(channel)}/camera_info"


@dataclass
class SceneBag:
    """One written bag: its scene, folder, message count and readings per channel (sweeps included)."""

    scene: str
    bag: Path
    messages: int
    readings: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0


def bag_paths(out: str | Path, scenes: Sequence[str]) -> dict[str, Path]:
    """Where each scene's bag goes: `out` itself for one scene, `out/<scene>` for several (each
    named as rosbag2 names bags: `out/scene-0061/scene-0061_0.mcap`)."""
    out = bag_dir(out)
    if len(scenes) == 1:
        return {scenes[0]: out}
    return {scene: out / scene for scene in scenes}


@dataclass(frozen=True)
class _Event:
    """One message to write, in time order: what it is, built only when written."""

    stamp_us: int
    order: int  # at equal stamps: transforms, then readings, then ground truth
    kind: str  # tf | reading | ground_truth
    record: dict[str, Any]


def nuscenes_to_bags(
    dataroot: str | Path,
    version: str,
    scenes: Sequence[str],
    out: str | Path,
    storage: str = "mcap",
    force: bool = False,
    progress: bool = True,
    tables: NuScenesTables | None = None,
) -> list[SceneBag]:
    """Write each scene to its bag (`bag_paths`). Bad arguments, unknown scenes, broken table links
    and missing files raise (NuScenesError, FileExistsError, ValueError) before any bag is written;
    an existing bag is replaced only with `force`."""
    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {', '.join(STORAGES)}, got {storage!r}")
    if not scenes:
        raise ValueError("no scene given")
    repeated = sorted({s for s in scenes if list(scenes).count(s) > 1})
    if repeated:
        raise ValueError(f"scenes given twice: {', '.join(repeated)}")
    tables = tables or NuScenesTables(dataroot, version)
    plans = {}
    for name in scenes:
        scene = tables.scene(name)
        readings = {channel: tables.channel_data(scene, channel) for channel in CHANNELS}
        missing = missing_files(tables, (r for chain in readings.values() for r in chain))
        if missing:
            shown = ", ".join(str(p) for p in missing[:3])
            raise NuScenesError(
                f"scene {name}: {len(missing)} sensor files missing under {tables.dataroot}, e.g. {shown} "
                "(samples/ and sweeps/ of every sensor are needed)"
            )
        plans[name] = (scene, readings)
    paths = bag_paths(out, scenes)
    for path in paths.values():
        check_replaceable(path, force)
    results = []
    for name, (scene, readings) in plans.items():
        path = paths[name]
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.partial-", dir=path.parent))
        try:
            messages, duration = _write_scene(staging / path.name, storage, tables, scene, readings, progress)
            if path.exists():
                shutil.rmtree(path)  # a rosbag2 directory (check_replaceable), replaced only now
            (staging / path.name).rename(path)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        counts = {channel: len(chain) for channel, chain in readings.items()}
        results.append(SceneBag(name, path, messages, counts, duration))
    return results


def _scene_events(
    tables: NuScenesTables, scene: dict[str, Any], readings: dict[str, list[dict[str, Any]]]
) -> list[_Event]:
    events, poses = [], {}
    for chain in readings.values():
        for record in chain:
            events.append(_Event(int(record["timestamp"]), 1, "reading", record))
            pose = tables.get("ego_pose", record.get("ego_pose_token"), f"sample_data {record['token']}")
            poses[pose["token"]] = pose
    events += [_Event(int(pose["timestamp"]), 0, "tf", pose) for pose in poses.values()]
    for sample in tables.scene_samples(scene):
        lidar = tables.keyframe(sample, LIDAR_CHANNEL)
        events.append(_Event(int(lidar["timestamp"]), 2, "ground_truth", sample))
    return sorted(events, key=lambda e: (e.stamp_us, e.order))


def _write_scene(
    path: Path,
    storage: str,
    tables: NuScenesTables,
    scene: dict[str, Any],
    readings: dict[str, list[dict[str, Any]]],
    progress: bool,
) -> tuple[int, float]:
    from tqdm import tqdm

    types = rosbags_types()
    events = _scene_events(tables, scene, readings)
    first_ns = events[0].stamp_us * 1000
    static = [
        (BASE_FRAME, ros_name(channel), tables.sensor_pose(chain[0])) for channel, chain in readings.items()
    ]
    for channel, chain in readings.items():
        tokens = {r["calibrated_sensor_token"] for r in chain}
        if len(tokens) > 1:
            raise NuScenesError(
                f"scene {scene['name']}: {channel} has {len(tokens)} calibrations; /tf_static holds one"
            )
    messages = 0
    bar = tqdm(events, desc=str(scene["name"]), unit="msg", disable=not progress, file=sys.stderr)
    with BagWriter(path, types.typestore, storage, RECORDING_CHUNK_BYTES) as writer:
        # the extrinsics before any reading, as a static transform publisher has them latched
        writer.write(
            "/tf_static",
            "tf2_msgs/msg/TFMessage",
            first_ns - 1,
            make_tf_message(types, time_msg_ns(types, first_ns), static),
            latched=True,
        )
        messages += 1
        for event in bar:
            for topic, msgtype, message in _event_messages(types, tables, event):
                writer.write(topic, msgtype, event.stamp_us * 1000, message)
                messages += 1
    return messages, (events[-1].stamp_us - events[0].stamp_us) * 1e-6


def _event_messages(types: Any, tables: NuScenesTables, event: _Event) -> Iterator[tuple[str, str, Any]]:
    stamp_ns = event.stamp_us * 1000
    if event.kind == "tf":
        pose = event.record
        T = pose_matrix(pose, f"{tables.version}/ego_pose.json {pose['token']}")
        yield (
            "/tf",
            "tf2_msgs/msg/TFMessage",
            make_tf_message(types, time_msg_ns(types, stamp_ns), [(MAP_FRAME, BASE_FRAME, T)]),
        )
        return
    if event.kind == "ground_truth":
        yield (
            GROUND_TRUTH_TOPIC,
            "visualization_msgs/msg/MarkerArray",
            ground_truth_markers(types, tables, event.record, stamp_ns),
        )
        return
    record = event.record
    channel = tables.channel(record)
    path = tables.path(record)
    header = header_msg_ns(types, stamp_ns, ros_name(channel))
    modality = modality_of(channel)
    if modality == "camera":
        data = path.read_bytes()
        width, height = _jpeg_size(path, record)
        yield (
            topic_of(channel),
            "sensor_msgs/msg/CompressedImage",
            types.new("sensor_msgs/msg/CompressedImage", header=header, format="jpeg", data=data),
        )
        K = tables.camera_intrinsics(record)
        yield (
            camera_info_topic(channel),
            "sensor_msgs/msg/CameraInfo",
            make_camera_info(types, header, K, width, height),
        )
        return
    points = read_pcd(path) if modality == "radar" else read_lidar_bin(path)
    yield topic_of(channel), "sensor_msgs/msg/PointCloud2", make_structured_pointcloud2(types, header, points)


def _jpeg_size(path: Path, record: dict[str, Any]) -> tuple[int, int]:
    """(width, height) from the JPEG's header, checked against the sample_data's own fields."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            width, height = image.size
            kind = image.format
    except (OSError, UnidentifiedImageError) as error:
        raise NuScenesError(f"{path}: not a readable image ({error})") from None
    if kind != "JPEG":
        raise NuScenesError(f"{path}: a {kind} image; nuScenes camera files are JPEG")
    stated = (int(record.get("width") or 0), int(record.get("height") or 0))
    if stated != (0, 0) and stated != (width, height):
        raise NuScenesError(
            f"{path}: the JPEG is {width} x {height} but sample_data {record['token']} says "
            f"{stated[0]} x {stated[1]}"
        )
    return width, height


def ground_truth_markers(types: Any, tables: NuScenesTables, sample: dict[str, Any], stamp_ns: int) -> Any:
    """The sample's annotations as a MarkerArray in base_link at its LiDAR keyframe's ego pose."""
    marker_class = types.cls("visualization_msgs/msg/Marker")
    header = header_msg_ns(types, stamp_ns, BASE_FRAME)
    T_base_global = invert_rigid(tables.ego_pose(tables.keyframe(sample, LIDAR_CHANNEL)))
    items = [types.new("visualization_msgs/msg/Marker", header=header, action=marker_class.DELETEALL)]
    for index, box in enumerate(b.transformed(T_base_global) for b in tables.sample_boxes(sample)):
        qx, qy, qz, qw = Rotation.from_matrix(box.rotation).as_quat()
        r, g, b, a = _VEHICLE_COLOUR if box.category.startswith("vehicle.") else _OTHER_COLOUR
        items.append(
            types.new(
                "visualization_msgs/msg/Marker",
                header=header,
                ns=box.category,
                id=index,
                type=marker_class.CUBE,
                action=marker_class.ADD,
                pose=types.new(
                    "geometry_msgs/msg/Pose",
                    position=types.new(
                        "geometry_msgs/msg/Point", x=box.centre[0], y=box.centre[1], z=box.centre[2]
                    ),
                    orientation=types.new("geometry_msgs/msg/Quaternion", x=qx, y=qy, z=qz, w=qw),
                ),
                scale=types.new(
                    "geometry_msgs/msg/Vector3", x=box.size_lwh[0], y=box.size_lwh[1], z=box.size_lwh[2]
                ),
                color=types.new("std_msgs/msg/ColorRGBA", r=r, g=g, b=b, a=a),
                text=box.instance_token,
            )
        )
    return types.new("visualization_msgs/msg/MarkerArray", markers=items)


def ground_truth_boxes(markers: Any) -> list[AnnotationBox]:
    """The boxes of a GROUND_TRUTH_TOPIC MarkerArray (its CUBE markers; the frame is the header's,
    base_link), e.g. for `datasets.nuscenes_frames.occupancy_of_boxes`. Visibility is not recorded."""
    boxes = []
    for marker in markers.markers:
        if int(marker.action) != 0 or int(marker.type) != 1:  # ADD, CUBE
            continue
        o, p, s = marker.pose.orientation, marker.pose.position, marker.scale
        boxes.append(
            AnnotationBox(
                category=str(marker.ns),
                instance_token=str(marker.text),
                visibility="",
                centre=np.array([p.x, p.y, p.z]),
                size_lwh=np.array([s.x, s.y, s.z]),
                rotation=Rotation.from_quat([o.x, o.y, o.z, o.w]).as_matrix(),
            )
        )
    return boxes
