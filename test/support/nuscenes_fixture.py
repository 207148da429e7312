"""A tiny nuScenes dataroot that tests write themselves: the JSON tables of a version (scene, sample,
sample_data, ego_pose, calibrated_sensor, sensor, log, sample_annotation, instance, category,
attribute, visibility, map) for a few short scenes, small camera JPEGs, radar sweeps as binary PCD
v0.7 files and LiDAR sweeps as .pcd.bin (float32 x5), with nuScenes' conventions: 32-hex tokens
linked by foreign keys, `is_key_frame` and prev/next chains per sensor (sweeps before, between and
after the keyframes), files under samples/<CHANNEL>/ and sweeps/<CHANNEL>/, quaternions [w, x, y, z],
box sizes [width, length, height], timestamps in microseconds, ego_pose tokens equal to their
sample_data tokens, the LiDAR at 20 Hz (every tenth sweep a keyframe), cameras at 12 Hz, radars at
about 13 Hz, samples at 2 Hz stamped with their LiDAR keyframe.

The ego drives at 5 m/s on a heading of 0.6 rad in the map frame; every sample has the same three
annotated objects at fixed places in base_link (its LiDAR keyframe's ego pose), so their BEV cells
are known by hand (EXPECTED_VEHICLE_CELLS)."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

CAMERAS = ("CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_BACK_RIGHT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_FRONT_LEFT")
RADARS = ("RADAR_FRONT", "RADAR_FRONT_LEFT", "RADAR_FRONT_RIGHT", "RADAR_BACK_LEFT", "RADAR_BACK_RIGHT")
LIDAR = "LIDAR_TOP"
LOG_NAME = "n015-2018-07-24-11-22-45+0800"
IMAGE_SIZE = (160, 90)  # (width, height): nuScenes' 1600 x 900 at a tenth
K = [[126.6, 0.0, 81.6], [0.0, 126.6, 44.8], [0.0, 0.0, 1.0]]
SPEED = 5.0  # m/s along the heading
HEADING = 0.6  # rad, in the map frame
ORIGIN = (411.3, 1180.9)  # where a scene starts, in the map frame (nuScenes maps are in metres)
FIRST_SAMPLE_US = 1532402927647951  # the first sample of the first scene; each next scene 100 s later

# The annotated objects, in base_link at every sample's LiDAR keyframe ego pose:
# (category, x, y, yaw, length, width, height).
OBJECTS = (
    ("vehicle.car", 10.0, -5.0, 0.0, 4.0, 2.0, 1.6),
    ("vehicle.truck", -20.0, 15.0, math.pi / 2, 5.0, 2.0, 2.5),
    ("human.pedestrian.adult", 5.0, 5.0, 0.3, 0.6, 0.6, 1.8),
)
# Cells (iy, ix) of the 200 x 200, 0.5 m BEV grid over [-50, 50] m whose centres lie in the vehicles'
# footprints, worked out by hand: the car covers x 8..12 m (ix 116..123: centres 8.25 .. 11.75 m) and
# y -6..-4 m (iy 88..91); the truck, turned by 90 deg, covers x -21..-19 m (ix 58..61) and y 12.5..17.5 m
# (iy 125..134). The pedestrian is no vehicle.
EXPECTED_VEHICLE_CELLS = frozenset(
    [(iy, ix) for iy in range(88, 92) for ix in range(116, 124)]
    + [(iy, ix) for iy in range(125, 135) for ix in range(58, 62)]
)

# Sensor mounting in base_link: (x, y, z, yaw in degrees). Cameras are calibrated as optical frames
# (z forward, x right, y down) turned by their yaw; the LiDAR is turned by -90 deg as the real one is.
MOUNTS = {
    "CAM_FRONT": (1.70, 0.02, 1.51, 0.0),
    "CAM_FRONT_RIGHT": (1.55, -0.49, 1.50, -55.0),
    "CAM_BACK_RIGHT": (1.05, -0.48, 1.56, -110.0),
    "CAM_BACK": (0.03, 0.00, 1.57, 180.0),
    "CAM_BACK_LEFT": (1.04, 0.48, 1.56, 110.0),
    "CAM_FRONT_LEFT": (1.52, 0.49, 1.51, 55.0),
    "RADAR_FRONT": (3.41, 0.00, 0.50, 0.0),
    "RADAR_FRONT_LEFT": (2.42, 0.80, 0.50, 90.0),
    "RADAR_FRONT_RIGHT": (2.42, -0.80, 0.50, -90.0),
    "RADAR_BACK_LEFT": (-0.56, 0.63, 0.50, 150.0),
    "RADAR_BACK_RIGHT": (-0.56, -0.63, 0.50, -150.0),
    "LIDAR_TOP": (0.94, 0.00, 1.84, -90.0),
}
# (period in microseconds, offset of the first reading from the first sample)
_RATES = {LIDAR: (50_000, -50_000), **{c: (83_333, -61_000 + 7_000 * i) for i, c in enumerate(CAMERAS)}}
_RATES.update({r: (77_000, -58_000 + 9_000 * i) for i, r in enumerate(RADARS)})

RADAR_PCD_FIELDS = (
    ("x", "F", 4),
    ("y", "F", 4),
    ("z", "F", 4),
    ("dyn_prop", "I", 1),
    ("id", "I", 2),
    ("rcs", "F", 4),
    ("vx", "F", 4),
    ("vy", "F", 4),
    ("vx_comp", "F", 4),
    ("vy_comp", "F", 4),
    ("is_quality_valid", "I", 1),
    ("ambig_state", "I", 1),
    ("x_rms", "I", 1),
    ("y_rms", "I", 1),
    ("invalid_state", "I", 1),
    ("pdh0", "I", 1),
    ("vx_rms", "I", 1),
    ("vy_rms", "I", 1),
)
RADAR_DTYPE = np.dtype(
    {
        "names": [n for n, _, _ in RADAR_PCD_FIELDS],
        "formats": [{"F": "<f", "I": "<i"}[t] + str(s) for _, t, s in RADAR_PCD_FIELDS],
    }
)


def token(*parts: object) -> str:
    return hashlib.md5("/".join(map(str, parts)).encode()).hexdigest()


def quaternion_wxyz(yaw: float, optical: bool = False) -> list[float]:
    """[w, x, y, z] of a rotation about z by `yaw`, after the optical-frame turn for cameras."""
    from scipy.spatial.transform import Rotation

    R = Rotation.from_euler("z", yaw).as_matrix()
    if optical:
        R = R @ np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    x, y, z, w = Rotation.from_matrix(R).as_quat()
    return [float(w), float(x), float(y), float(z)]


def scene_start(index: int) -> int:
    """Timestamp (microseconds) of the first sample of the `index`-th scene written."""
    return FIRST_SAMPLE_US + index * 100_000_000


def ego_pose_at(t_us: int, start_us: int) -> tuple[np.ndarray, float]:
    """(x, y) and heading of the ego in the map frame at a time."""
    s = SPEED * (t_us - start_us) * 1e-6
    return np.array([ORIGIN[0] + s * math.cos(HEADING), ORIGIN[1] + s * math.sin(HEADING)]), HEADING


def radar_points(rng: np.random.Generator, n: int) -> np.ndarray:
    points = np.zeros(n, RADAR_DTYPE)
    points["x"] = rng.uniform(2, 80, n)
    points["y"] = rng.uniform(-20, 20, n)
    points["rcs"] = rng.uniform(-5, 30, n)
    for name in ("vx", "vy", "vx_comp", "vy_comp"):
        points[name] = rng.normal(0, 5, n)
    points["dyn_prop"] = rng.integers(0, 8, n)
    points["id"] = rng.integers(0, 32000, n)
    for name in (
        "is_quality_valid",
        "ambig_state",
        "x_rms",
        "y_rms",
        "invalid_state",
        "pdh0",
        "vx_rms",
        "vy_rms",
    ):
        points[name] = rng.integers(-128, 128, n)
    if n >= 2:  # values whose bits a float round trip could change: negative zero and a subnormal
        points["vy"][0] = -0.0
        points["vx"][1] = np.float32(1e-40)
    return points


def radar_pcd_bytes(points: np.ndarray) -> bytes:
    header = "\n".join(
        [
            "# .PCD v0.7 - Point Cloud Data file format",
            "VERSION 0.7",
            "FIELDS " + " ".join(n for n, _, _ in RADAR_PCD_FIELDS),
            "SIZE " + " ".join(str(s) for _, _, s in RADAR_PCD_FIELDS),
            "TYPE " + " ".join(t for _, t, _ in RADAR_PCD_FIELDS),
            "COUNT " + " ".join("1" for _ in RADAR_PCD_FIELDS),
            f"WIDTH {len(points)}",
            "HEIGHT 1",
            "VIEWPOINT 0 0 0 1 0 0 0",
            f"POINTS {len(points)}",
            "DATA binary",
        ]
    )
    return header.encode("ascii") + b"\n" + points.tobytes()


@dataclass
class Dataroot:
    """What was written: the folder, the version and, per scene, the sample_data records of each
    channel in time order and the sample tokens."""

    path: Path
    version: str
    scenes: list[str]
    readings: dict[str, dict[str, list[dict]]] = field(default_factory=dict)  # scene -> channel -> records
    samples: dict[str, list[str]] = field(default_factory=dict)  # scene -> sample tokens in order
    calibrations: dict[str, dict] = field(default_factory=dict)  # channel -> calibrated_sensor record


def write_dataroot(
    root: Path,
    scenes: tuple[tuple[str, int], ...] = (("scene-0061", 3),),
    version: str = "v1.0-mini",
    seed: int = 0,
) -> Dataroot:
    """Write a dataroot at `root` with `scenes` ((name, number of samples), ...)."""
    rng = np.random.default_rng(seed)
    tables: dict[str, list[dict]] = {
        name: []
        for name in (
            "scene",
            "sample",
            "sample_data",
            "ego_pose",
            "calibrated_sensor",
            "sensor",
            "log",
            "sample_annotation",
            "instance",
            "category",
            "attribute",
            "visibility",
            "map",
        )
    }
    log_token = token("log", LOG_NAME)
    tables["log"].append(
        {
            "token": log_token,
            "logfile": LOG_NAME,
            "vehicle": "n015",
            "date_captured": "2018-07-24",
            "location": "singapore-onenorth",
        }
    )
    tables["map"].append(
        {
            "token": token("map"),
            "log_tokens": [log_token],
            "category": "semantic_prior",
            "filename": "maps/x.png",
        }
    )
    for level, (lo, hi) in enumerate(((0, 40), (40, 60), (60, 80), (80, 100)), start=1):
        tables["visibility"].append({"token": str(level), "level": f"v{lo}-{hi}", "description": ""})
    tables["attribute"].append(
        {"token": token("attribute", "vehicle.moving"), "name": "vehicle.moving", "description": ""}
    )
    categories = {}
    for category, *_ in OBJECTS:
        categories[category] = token("category", category)
        tables["category"].append({"token": categories[category], "name": category, "description": ""})
    result = Dataroot(root, version, [name for name, _ in scenes])
    for channel in (*CAMERAS, *RADARS, LIDAR):
        modality = "camera" if channel.startswith("CAM") else channel.split("_")[0].lower()
        tables["sensor"].append({"token": token("sensor", channel), "channel": channel, "modality": modality})
        x, y, z, yaw = MOUNTS[channel]
        record = {
            "token": token("calibrated_sensor", channel),
            "sensor_token": token("sensor", channel),
            "translation": [x, y, z],
            "rotation": quaternion_wxyz(math.radians(yaw), optical=modality == "camera"),
            "camera_intrinsic": K if modality == "camera" else [],
        }
        tables["calibrated_sensor"].append(record)
        result.calibrations[channel] = record

    for scene_index, (name, n_samples) in enumerate(scenes):
        start = scene_start(scene_index)
        sample_times = [start + k * 500_000 for k in range(n_samples)]
        sample_tokens = [token(name, "sample", k) for k in range(n_samples)]
        scene_token = token("scene", name)
        for k, (t, tok) in enumerate(zip(sample_times, sample_tokens)):
            tables["sample"].append(
                {
                    "token": tok,
                    "timestamp": t,
                    "prev": sample_tokens[k - 1] if k else "",
                    "next": sample_tokens[k + 1] if k + 1 < n_samples else "",
                    "scene_token": scene_token,
                }
            )
        tables["scene"].append(
            {
                "token": scene_token,
                "log_token": log_token,
                "nbr_samples": n_samples,
                "first_sample_token": sample_tokens[0],
                "last_sample_token": sample_tokens[-1],
                "name": name,
                "description": "a tiny test scene",
            }
        )
        result.samples[name] = sample_tokens
        result.readings[name] = {}
        end = sample_times[-1] + 60_000
        for channel, (period, offset) in _RATES.items():
            times = list(range(start + offset, end, period))
            # the keyframe of each sample: the reading nearest to it (the LiDAR's is exactly at it)
            keyframes = {int(np.argmin([abs(t - s) for t in times])): k for k, s in enumerate(sample_times)}
            records = []
            for i, t in enumerate(times):
                key = i in keyframes
                nearest = keyframes[i] if key else int(np.argmin([abs(t - s) for s in sample_times]))
                folder = "samples" if key else "sweeps"
                suffix = {"CAM": ".jpg", "RAD": ".pcd", "LID": ".pcd.bin"}[channel[:3]]
                record = {
                    "token": token(name, channel, i),
                    "sample_token": sample_tokens[nearest],
                    "ego_pose_token": token(name, channel, i),
                    "calibrated_sensor_token": token("calibrated_sensor", channel),
                    "timestamp": t,
                    "fileformat": suffix.split(".")[1],
                    "is_key_frame": key,
                    "height": IMAGE_SIZE[1] if channel.startswith("CAM") else 0,
                    "width": IMAGE_SIZE[0] if channel.startswith("CAM") else 0,
                    "filename": f"{folder}/{channel}/{LOG_NAME}__{channel}__{t}{suffix}",
                    "prev": token(name, channel, i - 1) if i else "",
                    "next": token(name, channel, i + 1) if i + 1 < len(times) else "",
                }
                records.append(record)
                xy, heading = ego_pose_at(t, start)
                tables["ego_pose"].append(
                    {
                        "token": record["ego_pose_token"],
                        "timestamp": t,
                        "rotation": quaternion_wxyz(heading),
                        "translation": [float(xy[0]), float(xy[1]), 0.0],
                    }
                )
                _write_sensor_file(root / record["filename"], channel, rng)
            tables["sample_data"] += records
            result.readings[name][channel] = records
        _annotate(tables, name, sample_times, sample_tokens, start, categories)
    folder = root / version
    folder.mkdir(parents=True, exist_ok=True)
    for name, records in tables.items():
        # shuffled, as nothing promises an order in the real files
        order = rng.permutation(len(records))
        (folder / f"{name}.json").write_text(json.dumps([records[i] for i in order], indent=0))
    return result


def _annotate(tables, scene, sample_times, sample_tokens, start, categories) -> None:
    annotations = {i: [] for i in range(len(OBJECTS))}
    for k, (t, sample) in enumerate(zip(sample_times, sample_tokens)):
        xy, heading = ego_pose_at(t, start)  # the LiDAR keyframe is at the sample's time
        c, s = math.cos(heading), math.sin(heading)
        for i, (_category, x, y, yaw, length, width, height) in enumerate(OBJECTS):
            tok = token(scene, "annotation", i, k)
            annotations[i].append(tok)
            tables["sample_annotation"].append(
                {
                    "token": tok,
                    "sample_token": sample,
                    "instance_token": token(scene, "instance", i),
                    "visibility_token": "4",
                    "attribute_tokens": [],
                    "translation": [xy[0] + c * x - s * y, xy[1] + s * x + c * y, height / 2],
                    "size": [width, length, height],
                    "rotation": quaternion_wxyz(heading + yaw),
                    "prev": token(scene, "annotation", i, k - 1) if k else "",
                    "next": token(scene, "annotation", i, k + 1) if k + 1 < len(sample_times) else "",
                    "num_lidar_pts": 10,
                    "num_radar_pts": 1,
                }
            )
    for i, (category, *_) in enumerate(OBJECTS):
        tables["instance"].append(
            {
                "token": token(scene, "instance", i),
                "category_token": categories[category],
                "nbr_annotations": len(annotations[i]),
                "first_annotation_token": annotations[i][0],
                "last_annotation_token": annotations[i][-1],
            }
        )


def _write_sensor_file(path: Path, channel: str, rng: np.random.Generator) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if channel.startswith("CAM"):
        width, height = IMAGE_SIZE
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        ok, encoded = cv2.imencode(".jpg", cv2.GaussianBlur(image, (5, 5), 0), [cv2.IMWRITE_JPEG_QUALITY, 85])
        assert ok
        path.write_bytes(encoded.tobytes())
    elif channel.startswith("RADAR"):
        path.write_bytes(radar_pcd_bytes(radar_points(rng, int(rng.integers(5, 40)))))
    else:
        n = 300
        points = np.zeros((n, 5), np.float32)
        angle = rng.uniform(-math.pi, math.pi, n)
        distance = rng.uniform(3, 60, n)
        points[:, 0], points[:, 1] = distance * np.cos(angle), distance * np.sin(angle)
        points[:, 2] = rng.uniform(-1.8, 2.0, n)
        points[:, 3] = rng.integers(0, 256, n)
        points[:, 4] = rng.integers(0, 32, n)
        path.write_bytes(points.astype("<f4").tobytes())
