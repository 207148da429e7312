"""Automotive radar (Continental ARS408-like, 2D): a few returns per object on its visible faces,
more when close, occlusion by nearer boxes, polar measurement noise, random clutter and multipath
ghosts. Points are in the radar frame (z = 0); velocities are over ground (ego-motion compensated)
expressed in that frame, by default only their radial part as a Doppler radar measures (nuScenes)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ros2_lmd.sensors.frame import RADAR_FIELDS
from ros2_lmd.sim.rig import SensorSpec
from ros2_lmd.sim.world import RCS_MEAN, World

RANGE_NOISE = 0.12  # m
AZIMUTH_NOISE = np.radians(0.3)
VELOCITY_NOISE = 0.1  # m/s
CLUTTER_RATE = 4.0  # mean clutter returns per sweep
GHOST_PROB = 0.04  # chance that a vehicle return also produces a multipath ghost
OCCLUDED_KEEP = 0.1  # returns behind a nearer box survive this often (reflections under cars)
VELOCITY_MODES = ("radial", "full")


@dataclass
class RadarScan:
    """One radar sweep in the radar frame. `object_id` is the source object (-1 for clutter and
    for synthetic ghosts without a source); `is_ghost` marks multipath ghosts."""

    points: np.ndarray  # (N, len(RADAR_FIELDS)) float32
    object_id: np.ndarray  # (N,) int64
    is_ghost: np.ndarray  # (N,) bool

    @classmethod
    def empty(cls) -> RadarScan:
        return cls(np.zeros((0, len(RADAR_FIELDS)), np.float32), np.zeros(0, np.int64), np.zeros(0, bool))

    def concat(self, other: RadarScan) -> RadarScan:
        return RadarScan(
            np.concatenate([self.points, other.points]),
            np.concatenate([self.object_id, other.object_id]),
            np.concatenate([self.is_ghost, other.is_ghost]),
        )

    def subset(self, mask: np.ndarray) -> RadarScan:
        return RadarScan(self.points[mask], self.object_id[mask], self.is_ghost[mask])


def scan_radar(
    world: World, spec: SensorSpec, t: float, rng: np.random.Generator, velocity_mode: str = "radial"
) -> RadarScan:
    """One sweep at time t."""
    if velocity_mode not in VELOCITY_MODES:
        raise ValueError(f"radar velocity_mode must be one of {VELOCITY_MODES}, got {velocity_mode!r}")
    half_fov = np.radians(spec.fov_deg) / 2
    p = spec.T_base_sensor[:3, 3]
    boxes = world.objects_in_base(t, radius=spec.max_range + 10.0).transformed(spec.yaw, p)
    half = boxes.size[:, :2] / 2
    foot = np.hypot(half[:, 0], half[:, 1])
    r_c = np.hypot(boxes.centre[:, 0], boxes.centre[:, 1])
    az_c = np.arctan2(boxes.centre[:, 1], boxes.centre[:, 0])
    ang = np.arcsin(np.clip(foot / np.maximum(r_c, 1e-6), 0, 1))
    seen = (r_c - foot < spec.max_range) & (np.abs(az_c) < half_fov + ang) & (r_c > foot + 0.2)
    k_seen = np.flatnonzero(seen)

    vehicle = boxes.is_vehicle[k_seen]
    size_factor = (boxes.size[k_seen].prod(1) / 12.0) ** 0.3
    lam_vehicle = np.clip(2.5 * (20.0 / np.maximum(r_c[k_seen], 4.0)) ** 0.8 * size_factor, 0.5, 8.0)
    lam_static = np.clip(0.3 + boxes.size[k_seen, 0] / 15.0, 0.3, 3.0) * (r_c[k_seen] < 60)
    n = rng.poisson(np.where(vehicle, lam_vehicle, lam_static))
    n = np.maximum(n, (vehicle & (r_c[k_seen] < 30)).astype(int))  # close vehicles always answer
    src = np.repeat(k_seen, n)
    m = len(src)

    # Sample each return on a face that faces the sensor, weighted by its apparent width.
    c, s = np.cos(boxes.yaw[src]), np.sin(boxes.yaw[src])
    ox, oy = -boxes.centre[src, 0], -boxes.centre[src, 1]
    sx, sy = c * ox + s * oy, -s * ox + c * oy  # sensor position in the box frame
    hl, hw = half[src, 0], half[src, 1]
    dist = np.maximum(np.hypot(sx, sy), 1e-6)
    weights = (
        np.stack(
            [
                (sx > hl) * 2 * hw * sx,
                (sx < -hl) * 2 * hw * -sx,
                (sy > hw) * 2 * hl * sy,
                (sy < -hw) * 2 * hl * -sy,
            ],
            1,
        )
        / dist[:, None]
    )
    cum = np.cumsum(weights, 1)
    face = (rng.random(m)[:, None] * cum[:, -1:] > cum).sum(1).clip(0, 3)
    along = rng.uniform(-1, 1, m)
    bx = np.select([face == 0, face == 1], [hl, -hl], along * hl)
    by = np.select([face == 2, face == 3], [hw, -hw], along * hw)
    px = boxes.centre[src, 0] + c * bx - s * by
    py = boxes.centre[src, 1] + s * bx + c * by

    blocked = _occluded(px, py, src, boxes.centre[:, :2], half, boxes.yaw)
    keep = ~blocked | (rng.random(m) < OCCLUDED_KEEP)
    vel = boxes.velocity[src]
    rcs = RCS_MEAN[boxes.classes[src]] + rng.normal(0, 3.0, m)
    real = _measure(px, py, vel, rcs, rng, velocity_mode)
    real_ok = keep & _in_view(px, py, half_fov, spec.max_range)
    scan = RadarScan(real[real_ok], boxes.ids[src][real_ok], np.zeros(real_ok.sum(), bool))

    # Multipath ghosts from vehicle returns: a mirror image behind a long reflector (wall, guard
    # rail) or a double bounce at twice the range with twice the Doppler.
    is_veh = boxes.is_vehicle[src] & real_ok
    g = np.flatnonzero(is_veh & (rng.random(m) < GHOST_PROB))
    if len(g):
        gx, gy, gv = _ghost_geometry(world, spec, t, px[g], py[g], vel[g], rng)
        ghost = _measure(gx, gy, gv, rcs[g] - 6.0, rng, velocity_mode)
        ok = _in_view(gx, gy, half_fov, spec.max_range)
        scan = scan.concat(RadarScan(ghost[ok], boxes.ids[src[g]][ok], np.ones(ok.sum(), bool)))

    n_clutter = rng.poisson(CLUTTER_RATE)
    cr = rng.uniform(3.0, spec.max_range, n_clutter)
    caz = rng.uniform(-half_fov, half_fov, n_clutter)
    clutter = _measure(
        cr * np.cos(caz),
        cr * np.sin(caz),
        np.zeros((n_clutter, 2)),
        rng.uniform(-10.0, 5.0, n_clutter),
        rng,
        velocity_mode,
    )
    return scan.concat(RadarScan(clutter, np.full(n_clutter, -1, np.int64), np.zeros(n_clutter, bool)))


def random_ghosts(
    count: int, spec: SensorSpec, rng: np.random.Generator, velocity_mode: str = "radial"
) -> RadarScan:
    """Vehicle-like phantom targets (strong RCS, plausible speeds): what a multipath-heavy
    environment or interference produces; used by the `ghosts` fault."""
    half_fov = np.radians(spec.fov_deg) / 2
    r = rng.uniform(5.0, spec.max_range * 0.8, count)
    az = rng.uniform(-half_fov, half_fov, count)
    vel = rng.normal(0, 8.0, (count, 2))
    pts = _measure(r * np.cos(az), r * np.sin(az), vel, rng.uniform(5.0, 20.0, count), rng, velocity_mode)
    return RadarScan(pts, np.full(count, -1, np.int64), np.ones(count, bool))


def _measure(
    x: np.ndarray,
    y: np.ndarray,
    vel: np.ndarray,
    rcs: np.ndarray,
    rng: np.random.Generator,
    velocity_mode: str,
) -> np.ndarray:
    """Noisy radar points (polar noise on position, noise on the Doppler) in RADAR_FIELDS order."""
    n = len(x)
    r = np.hypot(x, y)
    az = np.arctan2(y, x)
    u = np.stack([np.cos(az), np.sin(az)], 1)
    r_m = r + rng.normal(0, RANGE_NOISE, n)
    az_m = az + rng.normal(0, AZIMUTH_NOISE, n)
    if velocity_mode == "radial":
        v_r = np.einsum("nk,nk->n", vel, u) + rng.normal(0, VELOCITY_NOISE, n)
        v = u * v_r[:, None]
    else:
        v = vel + rng.normal(0, VELOCITY_NOISE, (n, 2))
    out = np.stack([r_m * np.cos(az_m), r_m * np.sin(az_m), np.zeros(n), rcs, v[:, 0], v[:, 1]], 1)
    return out.astype(np.float32)


def _in_view(x: np.ndarray, y: np.ndarray, half_fov: float, max_range: float) -> np.ndarray:
    return (np.abs(np.arctan2(y, x)) <= half_fov) & (np.hypot(x, y) <= max_range) & (x > 0)


def _occluded(
    px: np.ndarray, py: np.ndarray, src: np.ndarray, centre: np.ndarray, half: np.ndarray, yaw: np.ndarray
) -> np.ndarray:
    """Whether the segment sensor -> point crosses another box footprint (2D slab test, M x K)."""
    if len(px) == 0 or len(centre) == 0:
        return np.zeros(len(px), bool)
    c, s = np.cos(yaw)[None], np.sin(yaw)[None]
    ox, oy = -centre[:, 0][None], -centre[:, 1][None]
    o = np.stack([c * ox + s * oy, -s * ox + c * oy], -1)  # (1, K, 2) sensor in each box frame
    d = np.stack([c * px[:, None] + s * py[:, None], -s * px[:, None] + c * py[:, None]], -1)  # (M, K, 2)
    d = np.where(np.abs(d) < 1e-12, 1e-12, d)
    t1 = (-half[None] - o) / d
    t2 = (half[None] - o) / d
    t_near = np.minimum(t1, t2).max(-1)
    t_far = np.maximum(t1, t2).min(-1)
    cross = (t_near <= t_far) & (t_near > 0) & (t_near < 0.97)
    cross[np.arange(len(px)), src] = False
    return cross.any(1)


def _ghost_geometry(
    world: World,
    spec: SensorSpec,
    t: float,
    x: np.ndarray,
    y: np.ndarray,
    vel: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(x)
    gx, gy, gv = 2 * x, 2 * y, 2 * vel  # double bounce
    if len(world.reflector_y):
        # Reflector lines y = y_w (world) as n.X = d in the radar frame.
        T_world_sensor = world.T_world_base(t) @ spec.T_base_sensor
        R2, t2 = T_world_sensor[:2, :2], T_world_sensor[:2, 3]
        normal = R2.T @ np.array([0.0, 1.0])
        offsets = world.reflector_y - t2[1]
        choice = rng.integers(0, len(offsets), n)
        d = offsets[choice]
        p = np.stack([x, y], 1)
        dist = p @ normal - d
        mx, my = (p - 2 * dist[:, None] * normal).T
        mv = vel - 2 * (vel @ normal)[:, None] * normal
        mirror = rng.random(n) < 0.6
        gx, gy = np.where(mirror, mx, gx), np.where(mirror, my, gy)
        gv = np.where(mirror[:, None], mv, gv)
    return gx, gy, gv
