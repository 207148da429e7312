"""Spinning 32-beam LiDAR (nuScenes HDL-32E-like): vectorised ray casting against the ground
plane and the boxes (slab method), with per-box ray culling by azimuth/elevation window so the
work scales with what each box covers, not rays x boxes. Points are in the LiDAR frame."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ros2_lmd.sim.camera import GroundTexture
from ros2_lmd.sim.rig import SensorSpec
from ros2_lmd.sim.world import World

N_BEAMS = 32
ELEVATION_RANGE_DEG = (-30.0, 10.0)
DEFAULT_AZIMUTH_STEPS = 1024
MIN_RANGE = 1.0
RANGE_NOISE = 0.02  # metres, 1 sigma
RETURN_DROP = 0.03  # fraction of returns lost at random (dark or specular spots)
GROUND_ID, CLUTTER_ID = 0, -1


@dataclass
class LidarScan:
    """One sweep in the LiDAR frame. `object_id` names what each point hit: a world object id,
    GROUND_ID for the ground, CLUTTER_ID for weather clutter (fog fault)."""

    points: np.ndarray  # (N, 4) float32: x, y, z, intensity (0..255)
    object_id: np.ndarray  # (N,) int64
    ring: np.ndarray  # (N,) int16 beam index, 0 = lowest

    def subset(self, mask: np.ndarray) -> LidarScan:
        return LidarScan(self.points[mask], self.object_id[mask], self.ring[mask])


def beam_directions(azimuth_steps: int) -> np.ndarray:
    """(N_BEAMS, azimuth_steps, 3) unit ray directions; azimuth starts at -pi (behind)."""
    el = np.radians(np.linspace(*ELEVATION_RANGE_DEG, N_BEAMS))
    az = -np.pi + (np.arange(azimuth_steps) + 0.5) * (2 * np.pi / azimuth_steps)
    ce = np.cos(el)[:, None]
    return np.stack(
        np.broadcast_arrays(ce * np.cos(az)[None], ce * np.sin(az)[None], np.sin(el)[:, None]), -1
    )


def scan_lidar(
    world: World,
    spec: SensorSpec,
    t: float,
    rng: np.random.Generator,
    texture: GroundTexture,
    azimuth_steps: int = DEFAULT_AZIMUTH_STEPS,
) -> LidarScan:
    """Ray-cast one sweep at time t (the whole sweep at one instant: no motion distortion)."""
    if azimuth_steps < 8:
        raise ValueError(f"lidar azimuth_steps must be >= 8, got {azimuth_steps}")
    dirs = beam_directions(azimuth_steps)
    n_rays = dirs.size // 3
    flat = dirs.reshape(-1, 3)
    R, p = spec.T_base_sensor[:3, :3], spec.T_base_sensor[:3, 3]
    flat_base = flat @ R.T
    height = p[2]  # ground is z = 0 in base_link
    with np.errstate(divide="ignore"):
        t_ground = np.where(flat_base[:, 2] < -1e-9, -height / flat_base[:, 2], np.inf)
    t_best = np.full(n_rays, np.inf)
    hit_id = np.zeros(n_rays, np.int64)
    hit_cos = np.zeros(n_rays)
    hit_refl = np.zeros(n_rays)

    boxes = world.objects_in_base(t, radius=spec.max_range + 5.0)
    step = 2 * np.pi / azimuth_steps
    el_step = np.radians(ELEVATION_RANGE_DEG[1] - ELEVATION_RANGE_DEG[0]) / (N_BEAMS - 1)
    el_beams = np.radians(np.linspace(*ELEVATION_RANGE_DEG, N_BEAMS))
    centre = (boxes.centre - p) @ R  # box centres in the LiDAR frame
    yaw = boxes.yaw - np.arctan2(R[1, 0], R[0, 0])
    half = boxes.size / 2
    foot = np.hypot(half[:, 0], half[:, 1])
    d_xy = np.hypot(centre[:, 0], centre[:, 1])
    for k in np.flatnonzero(d_xy - foot < spec.max_range):
        d_min = max(d_xy[k] - foot[k], 0.3)
        if d_xy[k] - foot[k] < 0.5:
            cols = np.arange(azimuth_steps)
        else:
            az_c = np.arctan2(centre[k, 1], centre[k, 0])
            half_ang = np.arcsin(min(foot[k] / d_xy[k], 1.0))
            c_lo = int(np.floor((az_c - half_ang + np.pi) / step - 0.5))
            c_hi = int(np.ceil((az_c + half_ang + np.pi) / step - 0.5))
            cols = np.arange(c_lo, c_hi + 1) % azimuth_steps
        # Conservative elevation window from the nearest horizontal distance to the footprint.
        z_lo, z_hi = centre[k, 2] - half[k, 2], centre[k, 2] + half[k, 2]
        el_lo, el_hi = np.arctan2(z_lo, d_min) - el_step, np.arctan2(z_hi, d_min) + el_step
        beams = np.flatnonzero((el_beams >= el_lo) & (el_beams <= el_hi))
        if len(beams) == 0:
            continue
        idx = (beams[:, None] * azimuth_steps + cols[None, :]).ravel()
        d = flat[idx]
        c, s = np.cos(yaw[k]), np.sin(yaw[k])
        d_box = np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1], d[:, 2]], 1)
        o = -centre[k]
        o_box = np.array([c * o[0] + s * o[1], -s * o[0] + c * o[1], o[2]])
        d_box = np.where(np.abs(d_box) < 1e-12, 1e-12, d_box)
        t1 = (-half[k] - o_box) / d_box
        t2 = (half[k] - o_box) / d_box
        t_axis_near = np.minimum(t1, t2)
        t_near = t_axis_near.max(1)
        t_far = np.maximum(t1, t2).min(1)
        hit = (t_near <= t_far) & (t_near > 0) & (t_near < t_best[idx])
        if not hit.any():
            continue
        axis = t_axis_near[hit].argmax(1)
        rays = idx[hit]
        t_best[rays] = t_near[hit]
        hit_id[rays] = boxes.ids[k]
        hit_cos[rays] = np.abs(d_box[hit][np.arange(len(rays)), axis])
        hit_refl[rays] = boxes.reflectivity[k]

    on_ground = t_ground < t_best
    rng_true = np.where(on_ground, t_ground, t_best)
    valid = (rng_true >= MIN_RANGE) & (rng_true <= spec.max_range)
    valid &= rng.random(n_rays) >= RETURN_DROP
    rays = np.flatnonzero(valid)
    r = rng_true[rays]
    ground = on_ground[rays]
    cos_inc = np.where(ground, np.abs(flat_base[rays, 2]), hit_cos[rays])
    refl = hit_refl[rays].copy()
    if ground.any():
        hit_base = p + flat_base[rays[ground]] * r[ground, None]
        xy, eyaw = world.ego_pose(t)
        ce, se = np.cos(eyaw), np.sin(eyaw)
        wx = xy[0] + ce * hit_base[:, 0] - se * hit_base[:, 1]
        wy = xy[1] + se * hit_base[:, 0] + ce * hit_base[:, 1]
        refl[ground] = texture.lookup_reflectivity(wx, wy)
    r_meas = r + rng.normal(0, RANGE_NOISE, len(r))
    intensity = 255.0 * refl * (0.25 + 0.75 * cos_inc) * np.exp(-r / 150.0)
    intensity = np.clip(intensity + rng.normal(0, 2.0, len(r)), 0, 255)
    xyz = flat[rays] * r_meas[:, None]
    points = np.concatenate([xyz, intensity[:, None]], 1).astype(np.float32)
    object_id = np.where(ground, GROUND_ID, hit_id[rays])
    return LidarScan(points, object_id, (rays // azimuth_steps).astype(np.int16))
