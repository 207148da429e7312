"""What one reading of one sensor measures, without judging it: the signal features of a camera
image (brightness, black and saturated fractions, noise, texture and change per tile) and of a point
sweep (counts, isolated returns, near clutter, ground tilt per sector), the LiDAR-radar agreement
and a payload fingerprint. monitor/sensor_checks.py judges them against each sensor's own history;
docs/sensor_checks.md says which feature catches which fault. ROS-free: numpy and OpenCV only."""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from ros2_lmd.monitor.sensor_checks import SensorCheckConfig

# Immerkaer's noise estimator: a 3 x 3 kernel blind to planes and ramps, of norm 6; for Gaussian noise
# of sd s the response's median absolute value is 0.6745 * 6 * s.
_NOISE_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)  # filter2D wants float
_NOISE_SCALE = 1 / (0.6745 * 6)


# ---------------------------------------------------------------------------------------------------
# Features: what one frame of one sensor measures


@dataclass
class Observation:
    """Scalar features of one reading plus per-tile / per-sector vectors (baselined element-wise)."""

    scalars: dict[str, float]
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # feature -> what else its evidence says
    z: dict[str, float] = field(default_factory=dict)  # profile feature -> its robust z this frame


def tile_means(values: np.ndarray, grid: int) -> np.ndarray:
    """Mean of `values` (float32 H x W) over a grid x grid tiling (area average)."""
    return cv2.resize(values, (grid, grid), interpolation=cv2.INTER_AREA).ravel()


class CameraFeatures:
    """Per-camera features; keeps the previous image (frozen check, per-tile change). Everything is
    measured at the image's own resolution: its sensor noise is then the floor of texture and change,
    so a well-lit flat surface (a truck's side filling the view) keeps them, while a region that
    blocks the light (dirt) or clips (glare) loses them. Shrinking the image first would average the
    noise away and make every flat surface look blocked (measured: docs/sensor_checks.md)."""

    def __init__(self, config: SensorCheckConfig) -> None:
        self.config = config
        self.previous: np.ndarray | None = None  # grey
        self.previous_stamp = -math.inf

    def observe(
        self, image: np.ndarray, stamp: float, measured: CameraMeasurement | None = None
    ) -> Observation:
        """The features of `image`: what `measure_camera` finds in it alone (`measured`, when it
        was done already, e.g. in the pipeline's parallel step) plus its change against the
        previous image (stateful: call in stamp order)."""
        c = self.config
        if measured is None:
            measured = measure_camera(image, c)
        grey = measured.grey
        obs = Observation(dict(measured.observation.scalars), dict(measured.observation.vectors))
        recent = stamp - self.previous_stamp <= c.max_gap_s
        if recent and self.previous is not None and self.previous.shape == grey.shape:
            change = cv2.absdiff(grey, self.previous)
            obs.scalars["change"] = float(change.mean())
            obs.vectors["tile_change"] = tile_means(change.astype(np.float32), c.tile_grid)
        self.previous, self.previous_stamp = grey, stamp
        return obs


@dataclass(frozen=True)
class CameraMeasurement:
    """What one camera image shows by itself (no history): its features and its grey image (for the
    change against the next one)."""

    observation: Observation
    grey: np.ndarray


def measure_camera(image: np.ndarray, config: SensorCheckConfig) -> CameraMeasurement:
    """The history-free features of one camera image (brightness, black and saturated shares,
    noise, per-tile texture): pure, so it runs in the pipeline's parallel step."""
    c = config
    grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    scalars = {
        "brightness": float(grey.mean()),
        "black_fraction": float(np.count_nonzero(grey <= c.black_level)) / grey.size,
        "saturated_fraction": float(np.count_nonzero(grey >= c.saturated_level)) / grey.size,
        "noise": noise_level(grey),
    }
    texture = np.abs(cv2.Laplacian(grey, cv2.CV_16S, ksize=1)).astype(np.float32)
    vectors = {"tile_texture": tile_means(texture, c.tile_grid)}
    scalars["sharpness"] = float(vectors["tile_texture"].mean())  # blur lowers it (motion, defocus)
    scalars["contrast"] = float(cv2.meanStdDev(grey)[1][0, 0])  # ... and keeps this; a flat wall does not
    return CameraMeasurement(Observation(scalars, vectors), grey)


def noise_level(grey: np.ndarray) -> float:
    """Image noise (grey levels, one standard deviation) by Immerkaer's estimator, with the median of
    the absolute response instead of its mean so that edges and texture do not count as noise. The
    response of a uint8 image is an integer below 4096: its median comes from a histogram."""
    response = cv2.filter2D(grey, cv2.CV_16S, _NOISE_KERNEL, borderType=cv2.BORDER_REFLECT)
    counts = np.bincount(np.abs(response).ravel(), minlength=1)
    median = int(np.searchsorted(np.cumsum(counts), (grey.size + 1) // 2))
    return _NOISE_SCALE * median


def isolated_count(xy: np.ndarray, radius: float, chunk: int = 512) -> int:
    """How many of the points `xy` (N x 2) have no other point within `radius`."""
    n = len(xy)
    if n < 2:
        return n
    xy = xy.astype(np.float64)
    alone = 0
    for i in range(0, n, chunk):
        d2 = ((xy[i : i + chunk, None, :] - xy[None, :, :]) ** 2).sum(-1)
        d2[np.arange(d2.shape[0]), np.arange(i, i + d2.shape[0])] = np.inf
        alone += int(np.count_nonzero(d2.min(1) > radius * radius))
    return alone


def singleton_count(xyz: np.ndarray, voxel: float) -> int:
    """How many of the points `xyz` (N x 3) are alone in their voxel of side `voxel`."""
    if len(xyz) == 0:
        return 0
    keys = np.floor(xyz / voxel).astype(np.int64)  # finite points of a bounded region (no overflow)
    keys -= keys.min(0)
    span = keys.max(0) + 1
    flat = (keys[:, 0] * span[1] + keys[:, 1]) * span[2] + keys[:, 2]
    _, counts = np.unique(flat, return_counts=True)
    return int(np.count_nonzero(counts == 1))


def ground_tilt(
    rel: np.ndarray, az: np.ndarray, config: SensorCheckConfig, mount_height: float
) -> dict[str, float]:
    """The ground's apparent tilt around a LiDAR, in metres: half the difference of the ground height
    ahead and behind (`ground_pitch`), left and right (`ground_roll`). A sensor knocked on its mount
    tilts its whole cloud, and the ground, which is there in every scene, shows it: 3 degrees of
    pitch lift the ground 15 m ahead by 0.8 m. The ground height of a quadrant is the median over its
    10-degree sectors of their low height percentile, among the returns `ground_min_m` to
    `ground_max_m` away; a sector counts only with 10 such returns and that height within 1.5 m of
    base_link's ground plane (z = 0, `mount_height` below the sensor; a truck alongside hides the
    ground: its sectors see only its roof and above), a quadrant with 3 such sectors (otherwise no
    value this sweep)."""
    c = config
    r = np.hypot(rel[:, 0], rel[:, 1])
    ring = (r >= c.ground_min_m) & (r < c.ground_max_m)
    sector = np.floor((az[ring] + np.pi / 4) / (np.pi / 18)).astype(np.int64) % 36  # 0-8: ahead
    z = rel[ring, 2]
    order = np.lexsort((z, sector))  # by sector, then height
    counts = np.bincount(sector, minlength=36)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = starts + np.floor(c.ground_percentile / 100 * np.maximum(counts - 1, 0)).astype(np.int64)
    heights = np.where(
        counts >= 10, z[order][np.minimum(rank, max(len(z) - 1, 0))] if len(z) else 0.0, np.nan
    )
    heights[np.abs(heights + mount_height) > 1.5] = np.nan
    low = []
    for q in range(4):
        valid = heights[9 * q : 9 * q + 9]
        valid = valid[np.isfinite(valid)]
        low.append(float(np.median(valid)) if len(valid) >= 3 else None)
    tilt = {}
    if low[0] is not None and low[2] is not None:
        tilt["ground_pitch"] = (low[0] - low[2]) / 2
    if low[1] is not None and low[3] is not None:
        tilt["ground_roll"] = (low[1] - low[3]) / 2
    return tilt


def object_returns(xyz: np.ndarray) -> np.ndarray:
    """The LiDAR returns 0.3-3 m above the ground (base_link z): on objects, not the road."""
    return xyz[(xyz[:, 2] > 0.3) & (xyz[:, 2] < 3.0)]


def lidar_occupancy(xyz: np.ndarray, cell: float, extent: float) -> np.ndarray:
    """Cells (side `cell`, base_link, +-`extent` m) holding a LiDAR return 0.3-3 m above the ground,
    dilated by one cell: where a radar return on an object should fall."""
    above = object_returns(xyz)
    size = int(2 * extent / cell)
    ij = np.floor((above[:, :2] + extent) / cell).astype(np.int64)
    ij = ij[((ij >= 0) & (ij < size)).all(1)]
    grid = np.zeros((size, size), np.uint8)
    grid[ij[:, 0], ij[:, 1]] = 1
    return cv2.dilate(grid, np.ones((3, 3), np.uint8)).astype(bool)


# The road as one camera sees it (SensorChecks._road_agreement): its median grey level and
# its red and blue against green, each as a natural log, so that a change is a ratio
ROAD_FEATURES = ("road_light", "road_red", "road_blue")
_GREY_WEIGHTS = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601, as cv2.COLOR_RGB2GRAY


@dataclass(frozen=True)
class RoadReturns:
    """One frame's LiDAR returns that `road_view` projects: the road (within `road_height_m` of
    base_link's ground plane, within `road_corridor_m` of the ego's path, base_link y) and the
    objects standing on it (0.3-3 m up) that may hide it from a camera."""

    road: np.ndarray  # N x 3, base_link
    objects: np.ndarray  # M x 3, base_link


def road_returns(xyz: np.ndarray, config: SensorCheckConfig) -> RoadReturns:
    """The returns of a LiDAR cloud (base_link) that `road_view` needs, within `road_max_m` (road)
    and 1.5 x that (objects) of base_link's origin. Why the ego's corridor only: beside it lie
    sidewalks, verges and parking bays, whose colour a side camera sees come and go with the scene
    (measured: docs/sensor_checks.md, fourth round); the lanes around the ego are asphalt."""
    c = config
    xyz = xyz[np.isfinite(xyz).all(1)]
    reach = np.einsum("ij,ij->i", xyz[:, :2], xyz[:, :2])
    road = (np.abs(xyz[:, 2]) < c.road_height_m) & (np.abs(xyz[:, 1]) < c.road_corridor_m)
    road &= reach < c.road_max_m**2
    return RoadReturns(xyz[road], object_returns(xyz[reach < (1.5 * c.road_max_m) ** 2]))


def road_view(
    image: np.ndarray, K: np.ndarray, T_base_cam: np.ndarray, returns: RoadReturns, config: SensorCheckConfig
) -> np.ndarray | None:
    """What one camera sees of the road (ROAD_FEATURES): the pixels where the LiDAR's road returns
    `road_min_m` to `road_max_m` from the camera fall, less those an object hides. A camera fault
    that changes the whole image (brightness, fog, a colour cast, dirt, noise) changes them, and a
    healthy camera sees the same asphalt under the same sky as its neighbours. Why the LiDAR: it
    says which pixels are road, wherever the camera points and whatever stands in the way.
    Occlusion, by image column: an object standing on the road hides all the road farther away in
    its columns (the LiDAR, mounted higher, sees over it; the camera does not), also where its
    sparse rings leave the object's own pixels without a return; the road within
    `road_object_margin_m` of the object is left out too (its base, its shadow, and the camera's and
    the LiDAR's moments apart). None with fewer than `road_min_samples` road pixels in view."""
    c = config
    T = np.asarray(T_base_cam, dtype=np.float64)
    R, origin = T[:3, :3], T[:3, 3]
    road = returns.road - origin
    far = np.einsum("ij,ij->i", road[:, :2], road[:, :2])
    road = road[(far >= c.road_min_m**2) & (far < c.road_max_m**2)] @ R  # camera frame
    objects = (returns.objects - origin) @ R
    h, w = image.shape[:2]
    K = np.asarray(K, dtype=np.float64)

    def pixels(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        points = points[points[:, 2] > 0.5]
        u = np.floor(K[0, 0] * points[:, 0] / points[:, 2] + K[0, 2]).astype(np.int64)
        v = np.floor(K[1, 1] * points[:, 1] / points[:, 2] + K[1, 2]).astype(np.int64)
        inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
        return u[inside], v[inside], points[inside, 2]

    u, v, depth = pixels(road)
    if len(u) < c.road_min_samples:
        return None
    ou, _, odepth = pixels(objects)
    columns = c.road_columns
    nearest = np.full(columns, np.inf)
    np.minimum.at(nearest, ou * columns // w, odepth)
    # and the neighbouring columns: an object's edge falls anywhere in its column
    nearest = np.minimum(nearest, np.minimum(np.r_[np.inf, nearest[:-1]], np.r_[nearest[1:], np.inf]))
    seen = depth < nearest[u * columns // w] - c.road_object_margin_m
    if np.count_nonzero(seen) < c.road_min_samples:
        return None
    rgb = image[v[seen], u[seen]].astype(np.float64) + 1.0  # + 1: a black pixel has a logarithm
    light = float(np.percentile(rgb @ _GREY_WEIGHTS, c.road_percentile))
    red, green, blue = np.median(rgb, axis=0)
    return np.log([light, red / green, blue / green])


def saturated_on_objects(
    grey: np.ndarray, K: np.ndarray, T_base_cam: np.ndarray, objects: np.ndarray, config: SensorCheckConfig
) -> float | None:
    """The share of a camera's saturated pixels (grey at or above `saturated_level`) that lie on an
    object the LiDAR sees: per image column (`road_columns` of them, with their neighbours), within
    the rows that the column's object returns (base_link, 0.3-3 m up) span, padded by 1/64 of the
    image height. A white truck alongside saturates a third of a side camera and every one of those
    pixels is on the truck; glare, a flare or an overexposed sensor saturates sky, road and objects
    alike (measured: docs/sensor_checks.md, fifth round). None without a saturated pixel."""
    saturated = grey >= config.saturated_level
    total = int(np.count_nonzero(saturated))
    if total == 0:
        return None
    T = np.asarray(T_base_cam, dtype=np.float64)
    points = (np.asarray(objects, dtype=np.float64)[:, :3] - T[:3, 3]) @ T[:3, :3]
    points = points[points[:, 2] > 0.5]
    h, w = grey.shape
    K = np.asarray(K, dtype=np.float64)
    u = np.floor(K[0, 0] * points[:, 0] / points[:, 2] + K[0, 2]).astype(np.int64)
    v = np.floor(K[1, 1] * points[:, 1] / points[:, 2] + K[1, 2]).astype(np.int64)
    inside = (u >= 0) & (u < w)
    u, v = u[inside], np.clip(v[inside], -1, h)
    columns = config.road_columns
    column = u * columns // w
    top, bottom = np.full(columns, h + 1), np.full(columns, -2)
    np.minimum.at(top, column, v)
    np.maximum.at(bottom, column, v)
    # an object's edge falls anywhere in its column: the neighbouring columns' extent counts too
    top = np.minimum(top, np.minimum(np.r_[h + 1, top[:-1]], np.r_[top[1:], h + 1]))
    bottom = np.maximum(bottom, np.maximum(np.r_[-2, bottom[:-1]], np.r_[bottom[1:], -2]))
    pad = max(1, h // 64)
    rows, cols = np.nonzero(saturated)
    column = cols * columns // w
    on_object = (rows >= top[column] - pad) & (rows <= bottom[column] + pad)
    return float(np.count_nonzero(on_object)) / total


AGREEMENT_YAWS_DEG = (-4.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0)  # LiDAR-radar yaw candidates
AGREEMENT_SCALES = (0.88, 0.92, 0.96, 1.0, 1.04, 1.08, 1.12)  # radar range-scale candidates
# LiDAR-radar shifts along base_link x (m): the distance the ego covers in 0.05-0.6 s at 7-13 m/s,
# what a LiDAR sweep stamped late or early, or a mount moved along the car, puts between the two
AGREEMENT_SHIFTS_M = (-6.0, -4.5, -3.0, -2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.5, 6.0)


def radar_agreement(
    occupancy: np.ndarray,
    radar: np.ndarray,
    origin: np.ndarray,
    lidar_origin: np.ndarray,
    extent: float,
    cell: float,
) -> np.ndarray:
    """How well a radar sweep's returns (3-60 m from it) fall on LiDAR-occupied cells, under small
    corrections: [returns, hits under each yaw of AGREEMENT_YAWS_DEG about the LiDAR, hits under each
    range scale of AGREEMENT_SCALES about the radar, hits under each shift of AGREEMENT_SHIFTS_M along
    base_link x]. A calibrated pair fits best uncorrected; a correction that fits better says that
    the two disagree, and how."""
    xy = radar[:, :2].astype(np.float64)
    xy = xy[np.isfinite(xy).all(1)]
    r = np.hypot(xy[:, 0] - origin[0], xy[:, 1] - origin[1])
    xy = xy[(r >= 3.0) & (r <= 60.0)]
    rel = xy - lidar_origin[:2]
    candidates = []
    for yaw in np.radians(AGREEMENT_YAWS_DEG):
        c, s = np.cos(yaw), np.sin(yaw)
        candidates.append(rel @ np.array([[c, s], [-s, c]]) + lidar_origin[:2])
    for scale in AGREEMENT_SCALES:
        candidates.append(origin[:2] + scale * (xy - origin[:2]))
    for shift in AGREEMENT_SHIFTS_M:
        candidates.append(xy + (shift, 0.0))
    ij = np.floor((np.stack(candidates) + extent) / cell).astype(np.int64)  # candidates x returns x 2
    inside = ((ij >= 0) & (ij < occupancy.shape[0])).all(-1)
    hit = np.zeros(inside.shape, bool)
    hit[inside] = occupancy[ij[inside][:, 0], ij[inside][:, 1]]
    out = [len(xy), *np.count_nonzero(hit, axis=1)]
    return np.array(out, np.int64)


Digest = tuple[tuple[int, ...], int]  # a payload's shape and the CRC-32 of its bytes


def payload_digest(payload: np.ndarray) -> Digest:
    """A fingerprint of a reading: its shape and the CRC-32 of its bytes, equal for a repeated
    payload. CRC-32 rather than a cryptographic hash: 7 x cheaper, and a chance collision (1 in 4e9
    per reading) would still need 3 of 5 readings to raise."""
    return payload.shape, zlib.crc32(np.ascontiguousarray(payload).data)


class PointFeatures:
    """Per point-sensor (LiDAR or radar) features of one sweep, around the sensor's own position."""

    def __init__(self, config: SensorCheckConfig, modality: str) -> None:
        self.config = config
        self.modality = modality

    def observe(self, points: np.ndarray, origin: np.ndarray, stamp: float) -> Observation:
        c = self.config
        rel = points[:, :3].astype(np.float64) - origin
        rel = rel[np.isfinite(rel).all(1)]  # organised clouds mark missing returns with NaN
        n = len(rel)
        if self.modality == "radar":
            isolated = isolated_count(rel[:, :2], c.isolation_radius_m)
            return Observation({"count": float(n), "isolated": float(isolated)})
        az = np.arctan2(rel[:, 1], rel[:, 0])
        sector = np.clip(((az + np.pi) / (2 * np.pi) * c.sectors).astype(np.int64), 0, c.sectors - 1)
        near = (np.hypot(rel[:, 0], rel[:, 1]) < c.near_range_m) & (np.abs(rel[:, 2]) < c.near_range_m)
        scalars = {
            "count": float(n),
            "near_clutter": float(singleton_count(rel[near], c.clutter_voxel_m)),
        }
        scalars.update(ground_tilt(rel, az, c, float(origin[2])))
        return Observation(scalars, {"sector_counts": np.bincount(sector, minlength=c.sectors).astype(float)})
