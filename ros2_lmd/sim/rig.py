"""The simulated vehicle's sensor rig: every sensor's name, modality, mounting (T_base_sensor) and,
for cameras, intrinsics. Modelled on the nuScenes car (six cameras, five radars, one 32-beam LiDAR)
so a bag writer can publish per-sensor messages plus /tf_static from this one record."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Camera optical frame (z forward, x right, y down) expressed in a forward-looking body frame
# (x forward, y left, z up): the columns are the optical axes.
R_BODY_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])

DEFAULT_CAMERA_WIDTH = 448
DEFAULT_CAMERA_HEIGHT = 256


def rot_z(yaw: float) -> np.ndarray:
    """3x3 rotation about +z (counter-clockwise seen from above)."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def make_transform(rotation: np.ndarray, translation: np.ndarray | tuple[float, float, float]) -> np.ndarray:
    """4x4 homogeneous transform from a 3x3 rotation and a translation."""
    T = np.eye(4)
    T[:3, :3] = rotation
    T[:3, 3] = translation
    return T


@dataclass(frozen=True, eq=False)  # arrays inside: identity equality, hashable
class SensorSpec:
    """One sensor of the rig. `T_base_sensor` maps points in the sensor frame to base_link.
    Sensor frames: cameras use the optical frame; radars and the LiDAR use x forward (along the
    boresight / the LiDAR's zero azimuth), y left, z up. `frame_id` doubles as the topic name."""

    name: str
    modality: str  # "camera" | "radar" | "lidar"
    T_base_sensor: np.ndarray = field(repr=False)
    fov_deg: float  # horizontal field of view (360 for the spinning LiDAR)
    max_range: float
    K: np.ndarray | None = field(default=None, repr=False)
    width: int = 0
    height: int = 0

    @property
    def frame_id(self) -> str:
        return self.name

    @property
    def topic(self) -> str:
        """Default topic (docs/architecture.md, conventions; cameras: the compressed rectified image)."""
        if self.modality == "camera":
            return f"/{self.name}/image_rect_compressed"
        return f"/{self.name}"

    @property
    def position(self) -> np.ndarray:
        return self.T_base_sensor[:3, 3]

    @property
    def yaw(self) -> float:
        """Heading of the sensor's viewing direction in base_link (radians)."""
        forward = self.T_base_sensor[:3, 2] if self.modality == "camera" else self.T_base_sensor[:3, 0]
        return float(np.arctan2(forward[1], forward[0]))


@dataclass(frozen=True)
class SensorRig:
    """All sensors of the simulated car, in a fixed order (cameras, radars, LiDAR)."""

    sensors: tuple[SensorSpec, ...]

    def __post_init__(self) -> None:
        names = [s.name for s in self.sensors]
        if len(set(names)) != len(names):
            raise ValueError(f"SensorRig: duplicate sensor names in {names}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.sensors)

    def __getitem__(self, name: str) -> SensorSpec:
        for s in self.sensors:
            if s.name == name:
                return s
        raise KeyError(f"unknown sensor {name!r}; the rig has {list(self.names)}")

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def of_modality(self, modality: str) -> tuple[SensorSpec, ...]:
        return tuple(s for s in self.sensors if s.modality == modality)


def camera_intrinsics(width: int, height: int, hfov_deg: float) -> np.ndarray:
    """Pinhole K with square pixels and the principal point at the image centre."""
    fx = (width / 2.0) / np.tan(np.radians(hfov_deg) / 2.0)
    return np.array([[fx, 0.0, width / 2.0], [0.0, fx, height / 2.0], [0.0, 0.0, 1.0]])


# nuScenes-like mounting: (name, x, y, z, yaw_deg, hfov_deg). Positions follow the nuScenes
# calibrated_sensor records (base_link at the rear axle on the ground); BACK is wider as asked.
_CAMERAS = (
    ("cam_front", 1.70, 0.00, 1.51, 0.0, 70.0),
    ("cam_front_left", 1.52, 0.49, 1.51, 55.0, 70.0),
    ("cam_front_right", 1.52, -0.49, 1.51, -55.0, 70.0),
    ("cam_back_left", 1.04, 0.48, 1.56, 110.0, 70.0),
    ("cam_back_right", 1.04, -0.48, 1.56, -110.0, 70.0),
    ("cam_back", 0.03, 0.00, 1.57, 180.0, 110.0),
)
# Continental ARS408-like: 2D radar (z = 0 in its frame), near-range mode +-60 deg, 100 m.
_RADARS = (
    ("radar_front", 3.41, 0.00, 0.50, 0.0),
    ("radar_front_left", 2.42, 0.80, 0.50, 90.0),
    ("radar_front_right", 2.42, -0.80, 0.50, -90.0),
    ("radar_back_left", -0.56, 0.63, 0.50, 150.0),
    ("radar_back_right", -0.56, -0.63, 0.50, -150.0),
)
LIDAR_POSITION = (0.94, 0.0, 1.84)
RADAR_FOV_DEG = 120.0
RADAR_MAX_RANGE = 100.0
LIDAR_MAX_RANGE = 70.0
CAMERA_MAX_RANGE = 150.0


def default_rig(
    camera_width: int = DEFAULT_CAMERA_WIDTH, camera_height: int = DEFAULT_CAMERA_HEIGHT
) -> SensorRig:
    """The nuScenes-like rig. Camera resolution is configurable (nuScenes itself is 1600x900);
    the field of view stays the same at every resolution."""
    if camera_width < 8 or camera_height < 8:
        raise ValueError(f"camera resolution {camera_width}x{camera_height} is too small (min 8x8)")
    sensors = []
    for name, x, y, z, yaw, hfov in _CAMERAS:
        T = make_transform(rot_z(np.radians(yaw)) @ R_BODY_OPTICAL, (x, y, z))
        sensors.append(
            SensorSpec(
                name,
                "camera",
                T,
                hfov,
                CAMERA_MAX_RANGE,
                camera_intrinsics(camera_width, camera_height, hfov),
                camera_width,
                camera_height,
            )
        )
    for name, x, y, z, yaw in _RADARS:
        sensors.append(
            SensorSpec(
                name,
                "radar",
                make_transform(rot_z(np.radians(yaw)), (x, y, z)),
                RADAR_FOV_DEG,
                RADAR_MAX_RANGE,
            )
        )
    sensors.append(
        SensorSpec("lidar_top", "lidar", make_transform(np.eye(3), LIDAR_POSITION), 360.0, LIDAR_MAX_RANGE)
    )
    return SensorRig(tuple(sensors))
