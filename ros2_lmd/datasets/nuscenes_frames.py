"""nuScenes keyframe samples as the pairs training and evaluation take: a SensorFrame (six camera
images with their calibration, the five radars' and the LiDAR's keyframe points in base_link) and
the BEV vehicle occupancy, as the simulator's `random_frame` gives them.

Ground truth as Simple-BEV makes it: every annotation whose category starts with "vehicle." (cars,
trucks, buses, trailers, construction vehicles, motorcycles, bicycles, emergency vehicles), whatever
its visibility, as a box footprint in base_link at the ego pose of the sample's LiDAR keyframe,
rasterised on the BEV grid by the simulator's rule (`geometry.footprints.footprint_occupancy`: a
cell is occupied when its centre lies inside a footprint). The radar keyframes are moved to that ego
pose through the global frame (their own ego poses are up to ~40 ms away), as Simple-BEV does; the
LiDAR keyframe is at it. Camera images are the keyframe JPEGs at full size (models resize them); their
extrinsics are the calibrated sensors, also as in Simple-BEV.

The order of the samples is Simple-BEV's (`NuScenesTables.split_samples`): sample k of the paper's
perturbation pairs is `frames[k]`."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ros2_lmd.datasets.nuscenes import (
    CAMERA_CHANNELS,
    LIDAR_CHANNEL,
    RADAR_CHANNELS,
    AnnotationBox,
    NuScenesTables,
    pcd_columns,
    read_lidar_bin,
    read_pcd,
    ros_name,
)
from ros2_lmd.geometry.footprints import footprint_occupancy
from ros2_lmd.geometry.grid import BEVGrid
from ros2_lmd.sensors.errors import SensorDataError
from ros2_lmd.sensors.frame import LIDAR_FIELDS, RADAR_FIELDS, CameraImage, SensorFrame
from ros2_lmd.sensors.image import compressed_to_rgb
from ros2_lmd.sensors.tf import invert_rigid, transform_points

VEHICLE_PREFIX = "vehicle."


@dataclass(frozen=True)
class _JpegFile:
    """A JPEG file shaped like a sensor_msgs/CompressedImage, so the monitor's decoder (with its
    header and size checks) reads it as it reads the bag's images."""

    format: str
    data: np.ndarray


def read_camera_image(path: Path) -> np.ndarray:
    """H x W x 3 uint8 RGB of a camera JPEG."""
    try:
        data = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    except OSError as error:
        raise SensorDataError(str(path), f"cannot read ({error.strerror or error})") from None
    return compressed_to_rgb(_JpegFile("jpeg", data), str(path))


def vehicle_boxes_in_base(tables: NuScenesTables, sample: dict[str, Any]) -> list[AnnotationBox]:
    """The sample's vehicle annotations in base_link at the ego pose of its LiDAR keyframe."""
    T_base_global = invert_rigid(tables.ego_pose(tables.keyframe(sample, LIDAR_CHANNEL)))
    return [
        box.transformed(T_base_global)
        for box in tables.sample_boxes(sample)
        if box.category.startswith(VEHICLE_PREFIX)
    ]


def occupancy_of_boxes(boxes: Sequence[AnnotationBox], grid: BEVGrid) -> np.ndarray:
    """(ny, nx) uint8 BEV occupancy of base_link boxes, by the simulator's rasterisation rule
    (geometry/footprints.py)."""
    n = len(boxes)
    return footprint_occupancy(
        np.array([b.centre for b in boxes], dtype=np.float64).reshape(n, 3),
        np.array([b.size_lwh for b in boxes], dtype=np.float64).reshape(n, 3),
        np.array([b.yaw for b in boxes], dtype=np.float64),
        grid,
    )


def sample_frame(tables: NuScenesTables, sample: dict[str, Any], index: int = 0) -> SensorFrame:
    """The SensorFrame of a keyframe sample, stamped with its LiDAR keyframe."""
    lidar = tables.keyframe(sample, LIDAR_CHANNEL)
    T_global_base = tables.ego_pose(lidar)
    T_base_global = invert_rigid(T_global_base)
    cameras = []
    for channel in CAMERA_CHANNELS:
        record = tables.keyframe(sample, channel)
        cameras.append(
            CameraImage(
                name=ros_name(channel),
                image=read_camera_image(tables.path(record)),
                K=tables.camera_intrinsics(record),
                T_base_cam=tables.sensor_pose(record),
                stamp=record["timestamp"] * 1e-6,
            )
        )
    radar = []
    points, extrinsics, modality = {}, {}, {}  # per point sensor, as the simulator's frames record them
    for channel in RADAR_CHANNELS:
        record = tables.keyframe(sample, channel)
        path = tables.path(record)
        columns = pcd_columns(read_pcd(path), RADAR_FIELDS, path)
        T = T_base_global @ tables.ego_pose(record) @ tables.sensor_pose(record)
        radar.append(transform_points(columns, T, vector_columns=((4, 5),)))
        name = ros_name(channel)
        points[name], extrinsics[name], modality[name] = radar[-1], T, "radar"
    path = tables.path(lidar)
    lidar_points = transform_points(
        pcd_columns(read_lidar_bin(path), LIDAR_FIELDS, path), tables.sensor_pose(lidar)
    )
    name = ros_name(LIDAR_CHANNEL)
    points[name], extrinsics[name], modality[name] = lidar_points, tables.sensor_pose(lidar), "lidar"
    return SensorFrame(
        stamp=lidar["timestamp"] * 1e-6,
        stamp_ns=int(lidar["timestamp"]) * 1000,
        cameras=cameras,
        radar=np.concatenate(radar),
        lidar=lidar_points,
        frame_index=index,
        sensor_points=points,
        sensor_extrinsics=extrinsics,
        sensor_modality=modality,
    )


class NuScenesFrames(Sequence):
    """The keyframe samples of one split as (SensorFrame, vehicle occupancy (ny, nx) uint8), loaded
    on access (a sample reads 6 JPEGs, 5 radar files and a LiDAR sweep: ~26 MB decoded)."""

    def __init__(self, tables: NuScenesTables, split: str, grid: BEVGrid | None = None) -> None:
        self.tables = tables
        self.split = split
        self.grid = grid or BEVGrid()
        self.samples = tables.split_samples(split)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[SensorFrame, np.ndarray]:
        sample = self._sample(index)
        frame = sample_frame(self.tables, sample, index % len(self))
        return frame, occupancy_of_boxes(vehicle_boxes_in_base(self.tables, sample), self.grid)

    def frame(self, index: int) -> SensorFrame:
        """The SensorFrame of sample `index` alone (no ground truth)."""
        return sample_frame(self.tables, self._sample(index), index % len(self))

    def _sample(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"sample {index} of the {len(self)} of {self.tables.version} {self.split}")
        return self.samples[index]

    def key(self) -> str:
        """What identifies these pairs for a dataset cache: version, split, grid, the samples, and the
        source of this module and of the rasterisation rule (a change to either rebuilds it)."""
        import ros2_lmd.datasets.nuscenes as tables_module
        import ros2_lmd.geometry.footprints as rule_module

        digest = hashlib.sha256()
        digest.update(f"{self.tables.version}/{self.split}/{self.grid}".encode())
        for sample in self.samples:
            digest.update(sample["token"].encode())
        for module in (tables_module, rule_module):
            digest.update(Path(module.__file__).read_bytes())
        digest.update(Path(__file__).read_bytes())
        return f"nuscenes-{self.tables.version}-{self.split}-{digest.hexdigest()[:16]}"
