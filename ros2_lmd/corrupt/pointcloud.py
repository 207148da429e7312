"""LiDAR and radar corruptions: pure functions (points, severity parameter, seeded Generator) ->
points, where points is a structured numpy array in the sensor frame with at least float fields
x, y, z and any others of the sensor's own layout (intensity, ring, rcs, vx_comp, ...), which are
kept. Added points (ghosts, crosstalk, backscatter) copy a random real point's other fields.

Sources: Dong et al., "Benchmarking Robustness of 3D Object Detection to Common Corruptions in
Autonomous Driving" (CVPR 2023: density, cutout, FOV lost, noise, fog/rain/snow), Robo3D (beam
missing, crosstalk, incomplete echo), MultiCorrupt (spatial misalignment). Radar kinds follow the
same shapes on a radar's sparse targets."""

from __future__ import annotations

import numpy as np

N_BEAMS_WITHOUT_RING = 32  # elevation bins standing for beams where a cloud has no `ring` field


def xyz(points: np.ndarray) -> np.ndarray:
    """(N, 3) float64 positions of a structured cloud."""
    return np.stack([points[n].astype(np.float64) for n in ("x", "y", "z")], axis=1)


def with_xyz(points: np.ndarray, positions: np.ndarray) -> np.ndarray:
    out = points.copy()
    for i, n in enumerate(("x", "y", "z")):
        out[n] = positions[:, i]
    return out


def _extra(points: np.ndarray, positions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """New points at `positions`, their other fields copied from random real points (zeros if none)."""
    if len(points):
        new = points[rng.integers(0, len(points), len(positions))].copy()
    else:
        new = np.zeros(len(positions), points.dtype)
    return with_xyz(new, positions)


def _concat(points: np.ndarray, added: np.ndarray) -> np.ndarray:
    """`points` then `added`, in `points`' own dtype (concatenating would drop its padding)."""
    out = np.empty(len(points) + len(added), points.dtype)
    out[: len(points)], out[len(points) :] = points, added
    return out


def _ranges(points: np.ndarray) -> np.ndarray:
    return np.linalg.norm(xyz(points), axis=1)


def rotation_matrix(roll_deg: float, pitch_deg: float, yaw_deg: float) -> np.ndarray:
    r, p, y = np.radians([roll_deg, pitch_deg, yaw_deg])
    rx = np.array([[1, 0, 0], [0, np.cos(r), -np.sin(r)], [0, np.sin(r), np.cos(r)]])
    ry = np.array([[np.cos(p), 0, np.sin(p)], [0, 1, 0], [-np.sin(p), 0, np.cos(p)]])
    rz = np.array([[np.cos(y), -np.sin(y), 0], [np.sin(y), np.cos(y), 0], [0, 0, 1]])
    return rz @ ry @ rx


def misalignment_transform(rotation_deg: float = 0.0, translation_m: float = 0.0) -> np.ndarray:
    """The 4x4 transform a misaligned mount applies to the points: `rotation_deg` about z (yaw)
    and a quarter of it about x and y, then `translation_m` along x and half of it along y."""
    t = np.eye(4)
    t[:3, :3] = rotation_matrix(rotation_deg / 4, rotation_deg / 4, rotation_deg)
    t[:3, 3] = (translation_m, translation_m / 2, 0.0)
    return t


def _transformed(points: np.ndarray, transform: np.ndarray) -> np.ndarray:
    p = xyz(points)
    return with_xyz(points, p @ transform[:3, :3].T + transform[:3, 3])


def rotation(points: np.ndarray, degrees: float, rng: np.random.Generator) -> np.ndarray:
    """Rotated by `misalignment_transform(degrees, 0)`: a sensor knocked on its mount (MultiCorrupt)."""
    return _transformed(points, misalignment_transform(degrees, 0.0))


def translation(points: np.ndarray, metres: float, rng: np.random.Generator) -> np.ndarray:
    """Shifted by `misalignment_transform(0, metres)`: a sensor moved on its mount."""
    return _transformed(points, misalignment_transform(0.0, metres))


def density(points: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A random `fraction` of the points removed (Dong et al.'s density decrease)."""
    return points[rng.random(len(points)) >= fraction]


def beam_of(points: np.ndarray) -> np.ndarray:
    """Each point's beam: the `ring` field where the cloud has one, else its elevation bin."""
    if points.dtype.names and "ring" in points.dtype.names:
        return points["ring"].astype(np.int64)
    p = xyz(points)
    elevation = np.arctan2(p[:, 2], np.linalg.norm(p[:, :2], axis=1))
    if not len(p):
        return np.zeros(0, np.int64)
    lo, hi = elevation.min(), elevation.max() + 1e-9
    return np.floor((elevation - lo) / (hi - lo) * N_BEAMS_WITHOUT_RING).astype(np.int64)


def beam_missing(points: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A random `fraction` of the beams lost entirely (Robo3D's beam missing)."""
    beams = beam_of(points)
    present = np.unique(beams)
    lost = (
        rng.choice(present, int(round(fraction * len(present))), replace=False) if len(present) else present
    )
    return points[~np.isin(beams, lost)]


def cutout(points: np.ndarray, regions: float, rng: np.random.Generator) -> np.ndarray:
    """`regions` discs of 3 m radius, centred on random points, removed (Dong et al.'s cutout)."""
    if not len(points):
        return points
    p = xyz(points)[:, :2]
    keep = np.ones(len(p), bool)
    for centre in p[rng.integers(0, len(p), int(regions))]:
        keep &= np.linalg.norm(p - centre, axis=1) > 3.0
    return points[keep]


def fov_lost(points: np.ndarray, fov_deg: float, rng: np.random.Generator) -> np.ndarray:
    """Only a `fov_deg` azimuth sector centred on the sensor's forward axis left (Dong et al.'s FOV lost)."""
    p = xyz(points)
    azimuth = np.degrees(np.arctan2(p[:, 1], p[:, 0]))
    return points[np.abs(azimuth) <= fov_deg / 2]


def crosstalk(points: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """`fraction` of the cloud's size added as spurious returns at random places within its range
    (another LiDAR's pulses; Robo3D's crosstalk)."""
    count = max(1, int(round(fraction * len(points))))
    reach = max(10.0, float(_ranges(points).max())) if len(points) else 50.0
    az = rng.uniform(-np.pi, np.pi, count)
    r = rng.uniform(1.0, reach, count)
    z = rng.uniform(-2.0, 2.0, count)
    return _concat(points, _extra(points, np.stack([r * np.cos(az), r * np.sin(az), z], 1), rng))


def noise(points: np.ndarray, std_m: float, rng: np.random.Generator) -> np.ndarray:
    """Every point moved by Gaussian noise of `std_m` metres per axis (Dong et al.'s Gaussian noise)."""
    return with_xyz(points, xyz(points) + rng.normal(0.0, std_m, (len(points), 3)))


def _weather(points: np.ndarray, visibility_m: float, scatter: float, rng: np.random.Generator) -> np.ndarray:
    """Returns lost with probability growing with range over `visibility_m` (Beer-Lambert, two
    ways), jittered, and `scatter` x the cloud's size in near backscatter (droplets, flakes)."""
    r = _ranges(points)
    survive = np.exp(-2.0 * 3.0 * r / (2.0 * visibility_m))  # 3/visibility: extinction coefficient
    kept = points[rng.random(len(points)) < survive]
    kept = with_xyz(kept, xyz(kept) * (1 + rng.normal(0, 0.005, (len(kept), 1))))
    count = int(scatter * len(points))
    az = rng.uniform(-np.pi, np.pi, count)
    near = rng.exponential(3.0, count) + 0.5
    clutter = np.stack([near * np.cos(az), near * np.sin(az), rng.uniform(-1.0, 1.0, count)], 1)
    out = _concat(kept, _extra(points, clutter, rng))
    if out.dtype.names and "intensity" in out.dtype.names:
        out["intensity"][len(kept) :] = 0  # backscatter returns are weak
    return out


def fog(points: np.ndarray, visibility_m: float, rng: np.random.Generator) -> np.ndarray:
    """Fog of `visibility_m` metres visibility (Dong et al.'s LiDAR fog, simplified)."""
    return _weather(points, visibility_m, 0.02, rng)


def rain(points: np.ndarray, visibility_m: float, rng: np.random.Generator) -> np.ndarray:
    """Rain of an equivalent `visibility_m` (Dong et al.'s LiDAR rain, simplified): fewer far
    returns, near drops."""
    return _weather(points, visibility_m, 0.01, rng)


def snow(points: np.ndarray, visibility_m: float, rng: np.random.Generator) -> np.ndarray:
    """Snow of an equivalent `visibility_m` (Dong et al.'s LiDAR snow, simplified): more near
    flakes than rain."""
    return _weather(points, visibility_m, 0.05, rng)


def incomplete_echo(points: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """The darkest `fraction` of the returns (lowest intensity, e.g. dark car paint) lost with
    probability 0.9 (Robo3D's incomplete echo, without object labels); a cloud without intensity
    loses the farthest `fraction` instead."""
    names = points.dtype.names or ()
    key = points["intensity"].astype(np.float64) if "intensity" in names else -_ranges(points)
    if not len(points):
        return points
    dark = key <= np.quantile(key, fraction)
    return points[~(dark & (rng.random(len(points)) < 0.9))]


# --- radar ----------------------------------------------------------------------------------------


def ghosts(points: np.ndarray, count: float, rng: np.random.Generator) -> np.ndarray:
    """`count` phantom targets at random places in the radar's forward 120 degrees up to 80 m, with
    random RCS and velocities (multipath, interference)."""
    n = int(count)
    az = rng.uniform(-np.pi / 3, np.pi / 3, n)
    r = rng.uniform(2.0, 80.0, n)
    new = _extra(points, np.stack([r * np.cos(az), r * np.sin(az), np.zeros(n)], 1), rng)
    for name, (lo, hi) in {"rcs": (-5.0, 20.0), "vx_comp": (-15.0, 15.0), "vy_comp": (-5.0, 5.0)}.items():
        if name in (new.dtype.names or ()):
            new[name] = rng.uniform(lo, hi, n)
    return _concat(points, new)


def dropout(points: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A random `fraction` of the targets lost."""
    return density(points, fraction, rng)


def radar_noise(points: np.ndarray, std_m: float, rng: np.random.Generator) -> np.ndarray:
    """Positions moved by `std_m` metres (x, y) and velocities by `std_m` m/s per target."""
    out = with_xyz(points, xyz(points) + np.c_[rng.normal(0, std_m, (len(points), 2)), np.zeros(len(points))])
    for name in ("vx_comp", "vy_comp", "vx", "vy"):
        if name in (out.dtype.names or ()):
            out[name] = out[name] + rng.normal(0, std_m, len(out))
    return out


def range_bias(points: np.ndarray, metres: float, rng: np.random.Generator) -> np.ndarray:
    """Every target's range lengthened by `metres` along its own bearing (a miscalibrated range)."""
    p = xyz(points)
    ground = np.linalg.norm(p[:, :2], axis=1, keepdims=True)
    scale = np.where(ground > 0, (ground + metres) / np.maximum(ground, 1e-9), 1.0)
    return with_xyz(points, np.c_[p[:, :2] * scale, p[:, 2]])


def azimuth_bias(points: np.ndarray, degrees: float, rng: np.random.Generator) -> np.ndarray:
    """Every target's bearing turned by `degrees` about z (a miscalibrated antenna array)."""
    t = np.eye(4)
    t[:3, :3] = rotation_matrix(0.0, 0.0, degrees)
    return _transformed(points, t)
