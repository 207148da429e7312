"""SensorFrame: one synchronised instant of every sensor, in base_link (docs/architecture.md, contracts).
Built by the live node, the bag reader and the simulator alike; consumed by monitor.Pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ros2_lmd.sensors.stamps import seconds_to_ns

MODALITIES: tuple[str, ...] = ("camera", "radar", "lidar")

# Radar point columns, in order. nuScenes radar fields; vx_comp/vy_comp are ego-motion compensated.
RADAR_FIELDS: tuple[str, ...] = ("x", "y", "z", "rcs", "vx_comp", "vy_comp")
LIDAR_FIELDS: tuple[str, ...] = ("x", "y", "z", "intensity")
POINT_FIELDS: dict[str, tuple[str, ...]] = {"radar": RADAR_FIELDS, "lidar": LIDAR_FIELDS}


@dataclass
class CameraImage:
    """One rectified pinhole camera image with its calibration."""

    name: str
    image: np.ndarray  # H x W x 3 uint8, RGB
    K: np.ndarray  # 3 x 3 intrinsics
    T_base_cam: np.ndarray  # 4 x 4, camera optical frame (z forward, x right, y down) -> base_link
    stamp: float = 0.0

    def __post_init__(self) -> None:
        if self.image.ndim != 3 or self.image.shape[2] != 3 or self.image.dtype != np.uint8:
            raise ValueError(
                f"camera {self.name!r}: image must be HxWx3 uint8, got {self.image.shape} {self.image.dtype}"
            )
        if np.asarray(self.K).shape != (3, 3):
            raise ValueError(f"camera {self.name!r}: K must be 3x3, got {np.asarray(self.K).shape}")
        if np.asarray(self.T_base_cam).shape != (4, 4):
            raise ValueError(f"camera {self.name!r}: T_base_cam must be 4x4")


@dataclass
class SensorFrame:
    """Everything the fusion model sees at one instant. `present[m]` is False when modality m had no
    data within the sync tolerance: its features are then zero (the LMD reference input)."""

    stamp: float
    cameras: list[CameraImage] = field(default_factory=list)
    radar: np.ndarray = field(default_factory=lambda: np.zeros((0, len(RADAR_FIELDS)), np.float32))
    lidar: np.ndarray = field(default_factory=lambda: np.zeros((0, len(LIDAR_FIELDS)), np.float32))
    present: dict[str, bool] = field(default_factory=lambda: {m: True for m in MODALITIES})
    # Per-sensor detail: sensor name -> reason it is missing/stale for this frame (empty when fine).
    sensor_status: dict[str, str] = field(default_factory=dict)
    frame_index: int = 0
    # Modalities that no configured sensor provides (absent by configuration, not by failure).
    no_sensor: frozenset[str] = frozenset()
    # Sensor name -> modality, for every sensor in sensor_status (names are the user's to choose).
    sensor_modality: dict[str, str] = field(default_factory=dict)
    # The key message's header stamp exactly (outputs carry it unchanged); default: from `stamp`.
    stamp_ns: int | None = None
    # Counts time jumps (bag loop, clock reset) before this frame: history from another epoch
    # (activity, baselines) does not apply to it.
    time_epoch: int = 0
    # Point sensor (radar, LiDAR) name -> its own points in this frame, in base_link, with the columns
    # of `radar` / `lidar` (which concatenate them in sensor order): per-sensor signal checks need to
    # know which sensor each point came from. Only sensors present in the frame; empty when the
    # builder did not record them.
    sensor_points: dict[str, np.ndarray] = field(default_factory=dict)
    # Point sensor name -> the 4 x 4 T_base_sensor its points were moved to base_link with (the
    # sensor's own position and heading, e.g. the centre of its azimuth coverage).
    sensor_extrinsics: dict[str, np.ndarray] = field(default_factory=dict)
    # Sensor name -> how long after its stamp its reading came in (s; arrival time live, log time
    # in a bag), for the sensors used in this frame whose arrival is known: a sensor whose data lags
    # the others' (a delay) is late even when it still falls within the sync tolerance.
    sensor_latency: dict[str, float] = field(default_factory=dict)
    # Sensor name -> the header stamp of its reading used in this frame (s), where known: a reading
    # the time sync gives to two frames (a 12 Hz camera beside a 20 Hz LiDAR) has the same stamp in
    # both, and is not a new reading the second time (the signal checks then skip it).
    sensor_stamps: dict[str, float] = field(default_factory=dict)
    # Sensor name -> when its latest messages came in, up to the reading in this frame (s, arrival
    # clock, oldest first; every message counted, used in a frame or not), where known: a sensor whose
    # messages are lost (a flaky link, a dropped rate) receives fewer in its recent periods than its
    # own history says, whichever sensor starts the frames.
    sensor_arrivals: dict[str, tuple[float, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.stamp_ns is None:
            self.stamp_ns = seconds_to_ns(self.stamp)
        self.radar = np.asarray(self.radar, dtype=np.float32).reshape(-1, len(RADAR_FIELDS))
        self.lidar = np.asarray(self.lidar, dtype=np.float32).reshape(-1, len(LIDAR_FIELDS))
