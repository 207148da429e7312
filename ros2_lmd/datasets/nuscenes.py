"""nuScenes as it lies on disk, read without the devkit: the JSON tables of a version, the official
scene splits, the sensor files and the poses. The one place that reads nuScenes tables: the rosbag2
converter (replay/nuscenes.py) and the training and evaluation frames (datasets/nuscenes_frames.py)
both use it.

Why not nuscenes-devkit: `pip install --dry-run nuscenes-devkit` (1.2.0) in the project's venv would
replace the pinned numpy 2.4.6 by 1.26.4 and opencv-python-headless 5.0.0.93 by 4.11.0.86. The tables
are plain JSON and the sensor files simple binary layouts, so json and numpy read them.

What is read, in the nuScenes schema (the other tables, e.g. log, attribute, visibility, map, are not):
- scene: token, name, first_sample_token
- sample: token, timestamp, scene_token, next (a scene's samples follow `next` from its first)
- sample_data: token, sample_token, calibrated_sensor_token, ego_pose_token, timestamp, is_key_frame,
  filename, width, height, prev, next (a channel's readings in a scene, sweeps included, are the
  prev/next chain through its keyframes)
- calibrated_sensor: token, sensor_token, translation, rotation, camera_intrinsic
- sensor: token, channel (CAM_FRONT, RADAR_FRONT, LIDAR_TOP, ...)
- ego_pose: token, timestamp, translation, rotation
- sample_annotation: token, sample_token, instance_token, visibility_token, translation, size, rotation
- instance: token, category_token; category: token, name

Conventions: timestamps in microseconds; metres; rotations as quaternions [w, x, y, z]; a box's
`size` is [width, length, height]; a calibrated_sensor is the sensor's pose in the ego frame (x
forward, y left, z up: base_link) and, for a camera, already its optical frame (z forward, x right,
y down); an ego_pose is the ego frame's pose in the global (map) frame. Files: `filename` is
relative to the dataroot (samples/CAM_FRONT/..., sweeps/LIDAR_TOP/...); camera images are JPEG,
radar sweeps binary PCD v0.7, LiDAR sweeps `.pcd.bin` (float32 x, y, z, intensity, ring per point).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ros2_lmd.errors import LMDError
from ros2_lmd.sensors.tf import quaternion_to_matrix, rigid_transform

VERSIONS: tuple[str, ...] = ("v1.0-mini", "v1.0-trainval")
SPLITS: tuple[str, ...] = ("train", "val")
# Simple-BEV's camera order (ros2_lmd.models.base.NUSCENES_CAMERAS is the same, lower case).
CAMERA_CHANNELS: tuple[str, ...] = (
    "CAM_FRONT_LEFT",
    "CAM_FRONT",
    "CAM_FRONT_RIGHT",
    "CAM_BACK_LEFT",
    "CAM_BACK",
    "CAM_BACK_RIGHT",
)
RADAR_CHANNELS: tuple[str, ...] = (
    "RADAR_FRONT",
    "RADAR_FRONT_LEFT",
    "RADAR_FRONT_RIGHT",
    "RADAR_BACK_LEFT",
    "RADAR_BACK_RIGHT",
)
LIDAR_CHANNEL = "LIDAR_TOP"
CHANNELS: tuple[str, ...] = (*CAMERA_CHANNELS, *RADAR_CHANNELS, LIDAR_CHANNEL)
TABLES: tuple[str, ...] = (
    "scene",
    "sample",
    "sample_data",
    "calibrated_sensor",
    "sensor",
    "ego_pose",
    "sample_annotation",
    "instance",
    "category",
)

# The official scene splits (nuscenes-devkit, nuscenes/utils/splits.py), as scene numbers. The
# trainval train split is every scene of v1.0-trainval that is not in its val split.
_MINI_SPLITS: dict[str, tuple[int, ...]] = {
    "train": (61, 553, 655, 757, 796, 1077, 1094, 1100),
    "val": (103, 916),
}
_TRAINVAL_VAL: tuple[int, ...] = (
    *(3, 12, 13, 14, 15, 16, 17, 18, 35, 36, 38, 39, 92, 93, 94, 95, 96, 97, 98, 99, 100, 101, 102),
    *(103, 104, 105, 106, 107, 108, 109, 110, 221, 268, 269, 270, 271, 272, 273, 274, 275, 276, 277),
    *(278, 329, 330, 331, 332, 344, 345, 346, 519, 520, 521, 522, 523, 524, 552, 553, 554, 555, 556),
    *(557, 558, 559, 560, 561, 562, 563, 564, 565, 625, 626, 627, 629, 630, 632, 633, 634, 635, 636),
    *(637, 638, 770, 771, 775, 777, 778, 780, 781, 782, 783, 784, 794, 795, 796, 797, 798, 799, 800),
    *(802, 904, 905, 906, 907, 908, 909, 910, 911, 912, 913, 914, 915, 916, 917, 919, 920, 921, 922),
    *(923, 924, 925, 926, 927, 928, 929, 930, 931, 962, 963, 966, 967, 968, 969, 971, 972, 1059),
    *(1060, 1061, 1062, 1063, 1064, 1065, 1066, 1067, 1068, 1069, 1070, 1071, 1072, 1073),
)


def scene_name(number: int) -> str:
    return f"scene-{number:04d}"


class NuScenesError(LMDError, ValueError):
    """A nuScenes dataroot that cannot be read as asked; the message names the file, table, record
    or field at fault."""


def ros_name(channel: str) -> str:
    """A nuScenes channel as the project's sensor, topic and frame name: CAM_FRONT -> cam_front."""
    return channel.lower()


def modality_of(channel: str) -> str:
    """camera, radar or lidar, from the channel name (nuScenes' own `sensor.modality` says the same)."""
    if channel.startswith("CAM_"):
        return "camera"
    if channel.startswith("RADAR_"):
        return "radar"
    if channel.startswith("LIDAR_"):
        return "lidar"
    raise NuScenesError(f"channel {channel!r}: not a camera, radar or LiDAR channel")


def pose_matrix(record: dict[str, Any], where: str) -> np.ndarray:
    """4x4 pose of a calibrated_sensor or ego_pose record (translation, rotation [w, x, y, z]): maps
    points of the record's frame into its parent frame."""
    translation = np.asarray(record.get("translation"), dtype=np.float64).reshape(-1)
    if translation.size != 3 or not np.isfinite(translation).all():
        raise NuScenesError(
            f"{where}.translation: expected 3 finite numbers, got {record.get('translation')}"
        )
    rotation = np.asarray(record.get("rotation"), dtype=np.float64).reshape(-1)
    if rotation.size != 4:
        raise NuScenesError(
            f"{where}.rotation: expected a quaternion [w, x, y, z], got {record.get('rotation')}"
        )
    w, x, y, z = rotation
    return rigid_transform(quaternion_to_matrix((x, y, z, w), where, "rotation [w, x, y, z]"), translation)


# --- sensor files ---------------------------------------------------------------------------------

# PCD TYPE letter and SIZE -> little-endian numpy type (the nuScenes radar files are little-endian).
_PCD_TYPES = {
    ("F", 4): "<f4",
    ("F", 8): "<f8",
    ("I", 1): "i1",
    ("I", 2): "<i2",
    ("I", 4): "<i4",
    ("I", 8): "<i8",
    ("U", 1): "u1",
    ("U", 2): "<u2",
    ("U", 4): "<u4",
    ("U", 8): "<u8",
}
_PCD_KEYS = ("FIELDS", "SIZE", "TYPE", "COUNT", "WIDTH", "HEIGHT", "POINTS", "DATA")


def read_pcd(path: str | Path) -> np.ndarray:
    """The points of a binary PCD v0.7 file (the nuScenes radar format) as a structured array with
    one field per FIELDS entry, of the file's TYPE and SIZE, packed as in the file: `.tobytes()`
    gives the stored point bytes exactly. Bytes after the last point are ignored."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise NuScenesError(f"{path}: cannot read ({error.strerror or error})") from None
    header: dict[str, list[str]] = {}
    offset = 0
    while "DATA" not in header:
        end = raw.find(b"\n", offset)
        if end < 0:
            raise NuScenesError(f"{path}: the PCD header ends before its DATA line")
        line = raw[offset:end].decode("ascii", errors="replace").strip()
        offset = end + 1
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            header[key] = value.split()
    missing = [k for k in _PCD_KEYS if k not in header]
    if missing:
        raise NuScenesError(f"{path}: PCD header lacks {', '.join(missing)}")
    if header["DATA"] != ["binary"]:
        raise NuScenesError(f"{path}: DATA {' '.join(header['DATA'])}: only binary PCD data is read")
    fields, sizes, types, counts = (header[k] for k in ("FIELDS", "SIZE", "TYPE", "COUNT"))
    if not len(fields) == len(sizes) == len(types) == len(counts):
        raise NuScenesError(
            f"{path}: FIELDS, SIZE, TYPE and COUNT list {len(fields)}, {len(sizes)}, {len(types)} and "
            f"{len(counts)} entries"
        )
    if len(set(fields)) != len(fields):
        raise NuScenesError(f"{path}: FIELDS lists a name twice: {fields}")
    try:
        width, height, points = (int(header[k][0]) for k in ("WIDTH", "HEIGHT", "POINTS"))
        sizes_int = [int(s) for s in sizes]
        counts_int = [int(c) for c in counts]
    except (ValueError, IndexError):
        raise NuScenesError(f"{path}: WIDTH, HEIGHT, POINTS, SIZE and COUNT must be integers") from None
    if points != width * height or points < 0:
        raise NuScenesError(f"{path}: POINTS {points} != WIDTH*HEIGHT = {width}*{height} = {width * height}")
    if any(c != 1 for c in counts_int):
        raise NuScenesError(f"{path}: COUNT {counts}: only scalar fields (COUNT 1) are read")
    formats = []
    for name, kind, size in zip(fields, types, sizes_int):
        if (kind, size) not in _PCD_TYPES:
            raise NuScenesError(
                f"{path}: field {name!r}: TYPE {kind} with SIZE {size} is not a PCD number type"
            )
        formats.append(_PCD_TYPES[(kind, size)])
    dtype = np.dtype({"names": fields, "formats": formats})  # packed: no alignment padding, as stored
    need = points * dtype.itemsize
    if len(raw) - offset < need:
        raise NuScenesError(
            f"{path}: binary data truncated: POINTS*point size = {points}*{dtype.itemsize} = {need} bytes, "
            f"got {len(raw) - offset}"
        )
    return np.frombuffer(raw, dtype=dtype, count=points, offset=offset)


LIDAR_BIN_FIELDS: tuple[str, ...] = ("x", "y", "z", "intensity", "ring")
LIDAR_BIN_DTYPE = np.dtype({"names": list(LIDAR_BIN_FIELDS), "formats": ["<f4"] * len(LIDAR_BIN_FIELDS)})


def read_lidar_bin(path: str | Path) -> np.ndarray:
    """The points of a nuScenes `.pcd.bin` LiDAR sweep (float32 x, y, z, intensity, ring index per
    point, no header) as a structured array over the file's bytes."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise NuScenesError(f"{path}: cannot read ({error.strerror or error})") from None
    step = LIDAR_BIN_DTYPE.itemsize
    if len(raw) % step:
        raise NuScenesError(
            f"{path}: {len(raw)} bytes is not a whole number of points of 5 float32 ({step} bytes): "
            f"{len(raw)} / {step} = {len(raw) / step:.2f}"
        )
    return np.frombuffer(raw, dtype=LIDAR_BIN_DTYPE)


def pcd_columns(points: np.ndarray, names: Iterable[str], path: str | Path = "") -> np.ndarray:
    """(N, len(names)) float32 of the named fields of a structured point array."""
    names = tuple(names)
    missing = [n for n in names if n not in (points.dtype.names or ())]
    if missing:
        raise NuScenesError(
            f"{path}: fields {missing} missing; the file has {list(points.dtype.names or ())}"
        )
    return np.stack([points[n].astype(np.float32) for n in names], axis=1).reshape(-1, len(names))


# --- annotations ----------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)  # arrays inside: identity equality
class AnnotationBox:
    """One annotated object in one frame: box centre, size (length, width, height), rotation (the
    box's x axis along its length), category name (e.g. vehicle.car), instance token (the same object
    in every sample) and visibility token ("1": 0-40 % visible ... "4": 80-100 %)."""

    category: str
    instance_token: str
    visibility: str
    centre: np.ndarray
    size_lwh: np.ndarray
    rotation: np.ndarray

    @property
    def yaw(self) -> float:
        """Heading of the box's length axis about z (radians)."""
        return float(np.arctan2(self.rotation[1, 0], self.rotation[0, 0]))

    def transformed(self, T_target_source: np.ndarray) -> AnnotationBox:
        """The same box in another frame (T maps the box's current frame into it)."""
        R, t = T_target_source[:3, :3], T_target_source[:3, 3]
        return AnnotationBox(
            self.category,
            self.instance_token,
            self.visibility,
            R @ self.centre + t,
            self.size_lwh,
            R @ self.rotation,
        )


# --- the tables -----------------------------------------------------------------------------------


def _read_table(folder: Path, name: str) -> dict[str, dict[str, Any]]:
    path = folder / f"{name}.json"
    if not path.is_file():
        raise NuScenesError(f"{path}: missing (every nuScenes version folder holds {name}.json)")
    try:
        with open(path, "rb") as handle:
            records = json.load(handle)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise NuScenesError(f"{path}: not a readable JSON table ({error})") from None
    if not isinstance(records, list):
        raise NuScenesError(f"{path}: expected a JSON list of records, got {type(records).__name__}")
    table = {}
    for index, record in enumerate(records):
        token = record.get("token") if isinstance(record, dict) else None
        if not isinstance(token, str) or not token:
            raise NuScenesError(f"{path}: record {index} has no token")
        table[token] = record
    return table


class NuScenesTables:
    """The tables of one version of a dataroot (`<dataroot>/<version>/*.json`), indexed by token,
    with the look-ups the converter and the frames need. Loading v1.0-trainval reads about 1.5 GB
    of JSON (a minute or two, a few GB of memory), as the devkit does."""

    def __init__(self, dataroot: str | Path, version: str) -> None:
        self.dataroot = Path(dataroot)
        self.version = version
        if version not in VERSIONS:
            raise NuScenesError(f"version {version!r}: expected one of {', '.join(VERSIONS)}")
        folder = self.dataroot / version
        if not folder.is_dir():
            raise NuScenesError(
                f"{folder}: no such folder (--dataroot holds one folder per version, e.g. {version}/, "
                "beside samples/ and sweeps/)"
            )
        self.tables = {name: _read_table(folder, name) for name in TABLES}
        self._channel_of_calibration = {
            token: str(self.get("sensor", cs.get("sensor_token"), f"calibrated_sensor {token}")["channel"])
            for token, cs in self.tables["calibrated_sensor"].items()
        }
        self._keyframes: dict[tuple[str, str], dict[str, Any]] = {}
        for record in self.tables["sample_data"].values():
            if record.get("is_key_frame"):
                self._keyframes[(record["sample_token"], self.channel(record))] = record
        self._annotations: dict[str, list[dict[str, Any]]] = {}
        for record in self.tables["sample_annotation"].values():
            self._annotations.setdefault(record["sample_token"], []).append(record)
        self._scenes_by_name = {str(s["name"]): s for s in self.tables["scene"].values()}

    def get(self, table: str, token: Any, where: str) -> dict[str, Any]:
        """The record `token` of `table`; `where` names the link that points to it, for the error."""
        record = self.tables[table].get(token) if isinstance(token, str) else None
        if record is None:
            raise NuScenesError(f"{where}: {table} token {token!r} is not in {self.version}/{table}.json")
        return record

    def channel(self, sample_data: dict[str, Any]) -> str:
        token = sample_data.get("calibrated_sensor_token")
        if token not in self._channel_of_calibration:
            self.get("calibrated_sensor", token, f"sample_data {sample_data.get('token')}")
        return self._channel_of_calibration[token]

    def path(self, sample_data: dict[str, Any]) -> Path:
        """The file of a sample_data record (its `filename` is relative to the dataroot)."""
        return self.dataroot / str(sample_data["filename"])

    # -- scenes and samples ------------------------------------------------------------------------

    def scene_names(self) -> list[str]:
        return sorted(self._scenes_by_name)

    def scene(self, name: str) -> dict[str, Any]:
        scene = self._scenes_by_name.get(name)
        if scene is None:
            names = self.scene_names()
            shown = ", ".join(names[:12]) + (f", ... ({len(names)} scenes)" if len(names) > 12 else "")
            raise NuScenesError(f"scene {name!r} is not in {self.dataroot / self.version}: it has {shown}")
        return scene

    def scene_samples(self, scene: dict[str, Any]) -> list[dict[str, Any]]:
        """A scene's samples (keyframes, 2 Hz) in order: `next` from its first sample."""
        samples, token = [], scene.get("first_sample_token")
        where = f"scene {scene.get('name')}.first_sample_token"
        while token:
            sample = self.get("sample", token, where)
            if sample.get("scene_token") != scene["token"]:
                raise NuScenesError(f"sample {token}: belongs to another scene than {scene.get('name')}")
            if samples and sample["timestamp"] <= samples[-1]["timestamp"]:
                raise NuScenesError(
                    f"sample {token}: timestamp {sample['timestamp']} does not follow its prev"
                )
            samples.append(sample)
            if len(samples) > len(self.tables["sample"]):
                raise NuScenesError(f"scene {scene.get('name')}: its samples' next links form a loop")
            token, where = sample.get("next"), f"sample {token}.next"
        return samples

    def keyframe(self, sample: dict[str, Any], channel: str) -> dict[str, Any]:
        """The keyframe sample_data of `channel` in `sample`."""
        record = self._keyframes.get((sample["token"], channel))
        if record is None:
            raise NuScenesError(
                f"sample {sample['token']}: no {channel} keyframe (is_key_frame) in sample_data"
            )
        return record

    def channel_data(self, scene: dict[str, Any], channel: str) -> list[dict[str, Any]]:
        """Every reading of `channel` in `scene`, sweeps included, in time order: the sample_data
        prev/next chain through the channel's keyframes (it ends at the scene's ends)."""
        samples = self.scene_samples(scene)
        start = next(
            (
                self._keyframes[(s["token"], channel)]
                for s in samples
                if (s["token"], channel) in self._keyframes
            ),
            None,
        )
        if start is None:
            raise NuScenesError(f"scene {scene.get('name')}: no {channel} keyframe")
        in_scene = {s["token"] for s in samples}
        limit = len(self.tables["sample_data"])
        first, steps = start, 0
        while first.get("prev"):
            before = self.get("sample_data", first["prev"], f"sample_data {first['token']}.prev")
            if before.get("sample_token") not in in_scene:
                break
            first, steps = before, steps + 1
            if steps > limit:
                raise NuScenesError(f"scene {scene.get('name')}: {channel} prev links form a loop")
        chain, record = [first], first
        while record.get("next"):
            after = self.get("sample_data", record["next"], f"sample_data {record['token']}.next")
            if after.get("sample_token") not in in_scene:
                break
            if after["timestamp"] <= record["timestamp"]:
                raise NuScenesError(
                    f"sample_data {after['token']}: timestamp {after['timestamp']} does not follow "
                    f"{record['timestamp']} of its prev {record['token']}"
                )
            chain.append(after)
            record = after
            if len(chain) > limit:
                raise NuScenesError(f"scene {scene.get('name')}: {channel} next links form a loop")
        for item in chain:
            if self.channel(item) != channel:
                raise NuScenesError(
                    f"sample_data {item['token']}: linked into the {channel} chain but is "
                    f"{self.channel(item)}"
                )
        return chain

    def split_scenes(self, split: str) -> list[str]:
        """The names of the official split's scenes that this version holds."""
        if split not in SPLITS:
            raise NuScenesError(f"split {split!r}: expected one of {', '.join(SPLITS)}")
        if self.version == "v1.0-mini":
            wanted = {scene_name(n) for n in _MINI_SPLITS[split]}
        else:
            val = {scene_name(n) for n in _TRAINVAL_VAL}
            wanted = val if split == "val" else set(self._scenes_by_name) - val
        return sorted(wanted & set(self._scenes_by_name))

    def split_samples(self, split: str) -> list[dict[str, Any]]:
        """The keyframe samples of a split in Simple-BEV's order (by scene token, then timestamp):
        the sample index k of the paper's perturbation pairs."""
        scenes = {self._scenes_by_name[name]["token"] for name in self.split_scenes(split)}
        samples = [s for s in self.tables["sample"].values() if s.get("scene_token") in scenes]
        return sorted(samples, key=lambda s: (s["scene_token"], s["timestamp"]))

    # -- poses and boxes ---------------------------------------------------------------------------

    def sensor_pose(self, sample_data: dict[str, Any]) -> np.ndarray:
        """T_base_sensor of a reading: its calibrated_sensor (the sensor in the ego frame)."""
        token = sample_data.get("calibrated_sensor_token")
        record = self.get("calibrated_sensor", token, f"sample_data {sample_data.get('token')}")
        return pose_matrix(record, f"{self.version}/calibrated_sensor.json {token}")

    def ego_pose(self, sample_data: dict[str, Any]) -> np.ndarray:
        """T_global_base at a reading's time: its ego_pose."""
        token = sample_data.get("ego_pose_token")
        record = self.get("ego_pose", token, f"sample_data {sample_data.get('token')}")
        return pose_matrix(record, f"{self.version}/ego_pose.json {token}")

    def camera_intrinsics(self, sample_data: dict[str, Any]) -> np.ndarray:
        token = sample_data.get("calibrated_sensor_token")
        record = self.get("calibrated_sensor", token, f"sample_data {sample_data.get('token')}")
        K = np.asarray(record.get("camera_intrinsic") or [], dtype=np.float64)
        if K.shape != (3, 3) or not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
            raise NuScenesError(
                f"{self.version}/calibrated_sensor.json {token}.camera_intrinsic: expected a 3x3 matrix "
                f"with fx, fy > 0, got {record.get('camera_intrinsic')}"
            )
        return K

    def sample_boxes(self, sample: dict[str, Any]) -> list[AnnotationBox]:
        """The annotated objects of a sample, in the global frame."""
        boxes = []
        for record in self._annotations.get(sample["token"], []):
            where = f"{self.version}/sample_annotation.json {record['token']}"
            instance = self.get("instance", record.get("instance_token"), where)
            category = self.get("category", instance.get("category_token"), f"instance {instance['token']}")
            size = np.asarray(record.get("size"), dtype=np.float64).reshape(-1)
            if size.size != 3 or not np.isfinite(size).all() or (size <= 0).any():
                raise NuScenesError(
                    f"{where}.size: expected [width, length, height] > 0, got {record.get('size')}"
                )
            pose = pose_matrix(record, where)
            boxes.append(
                AnnotationBox(
                    category=str(category["name"]),
                    instance_token=str(instance["token"]),
                    visibility=str(record.get("visibility_token", "")),
                    centre=pose[:3, 3],
                    size_lwh=np.array([size[1], size[0], size[2]]),
                    rotation=pose[:3, :3],
                )
            )
        return boxes


def missing_files(tables: NuScenesTables, records: Iterable[dict[str, Any]]) -> list[Path]:
    """The files of `records` (sample_data) that are not on disk (e.g. sweeps not downloaded)."""
    return [path for path in (tables.path(r) for r in records) if not path.is_file()]
