"""A camera's blocked tiles explained by the LiDAR (`SensorChecks._near_objects`): a truck alongside
fills a side camera with a flat, unchanging surface that the camera alone cannot tell from dirt on
its lens; the LiDAR sees the truck (returns a few metres from the camera across its view) and not
the dirt. `near_cover` is the share of the camera's horizontal view, in 2-degree bins, holding a
LiDAR return within `near_object_m`; at `near_cover_explains` or more, tiles that lost texture and
change, or stay static while the scene moves, are that object and no evidence."""

from __future__ import annotations

import numpy as np

from ros2_lmd.monitor.sensor_checks import OK, SensorChecks
from ros2_lmd.sensors.frame import CameraImage, SensorFrame

H, W = 96, 128
K = np.array([[64.0, 0, W / 2], [0, 64.0, H / 2], [0, 0, 1]])  # half view 45 degrees: 45 bins of 2
# optical frame (z forward, x right, y down) -> base_link (x forward, y left, z up), 1.5 m up
T_FORWARD = np.array([[0, 0, 1, 0], [-1, 0, 0, 0], [0, -1, 0, 1.5], [0, 0, 0, 1]], dtype=float)


def _wall(x: float, y0: float, y1: float, n: int = 400) -> np.ndarray:
    """LiDAR returns (x, y, z, intensity) on a vertical wall at `x`, from y0 to y1, 0.5-2.5 m up."""
    rng = np.random.default_rng(1)
    points = np.zeros((n, 4), np.float32)
    points[:, 0] = x
    points[:, 1] = rng.uniform(y0, y1, n)
    points[:, 2] = rng.uniform(0.5, 2.5, n)
    return points


def _ground() -> np.ndarray:
    """A LiDAR's ground ring 6-20 m away, all around (what every sweep holds)."""
    rng = np.random.default_rng(2)
    r, a = rng.uniform(6, 20, 3000), rng.uniform(-np.pi, np.pi, 3000)
    return np.stack([r * np.cos(a), r * np.sin(a), np.zeros(3000), np.ones(3000)], 1).astype(np.float32)


def _near_cover(lidar: np.ndarray) -> float:
    checks = SensorChecks()
    image = np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)
    frame = SensorFrame(
        stamp=1.0,
        cameras=[CameraImage("cam", image, K, T_FORWARD, 1.0)],
        sensor_points={"lidar": lidar},
        sensor_modality={"cam": "camera", "lidar": "lidar"},
    )
    return checks.update(frame)["cam"].features["near_cover"]


def test_near_cover_is_the_share_of_the_view_with_a_near_return():
    ground = _ground()
    assert _near_cover(ground) == 0.0  # the ground is below 0.3 m
    assert _near_cover(np.concatenate([ground, _wall(2.0, -5.0, 5.0, n=4000)])) == 1.0
    # a wall at 2 m from y = 0 to 5: the left half of the view (0 to 45 degrees): 22 or 23 of 45 bins
    half = _near_cover(np.concatenate([ground, _wall(2.0, 0.0, 5.0, n=4000)]))
    assert 22 / 45 <= half <= 23 / 45
    assert _near_cover(np.concatenate([ground, _wall(-2.0, -5.0, 5.0)])) == 0.0  # behind the camera
    assert _near_cover(np.concatenate([ground, _wall(6.0, -1.0, 1.0)])) == 0.0  # beyond near_object_m


def _run(blocked_from: int, wall_from: int | None, frames: int = 60) -> tuple[str, set[str]]:
    """The camera's state and evidence: a textured view changing every frame, its left half flat
    and unchanging from frame `blocked_from` on; a LiDAR wall 2 m in front across the whole view
    from frame `wall_from` on (None: never)."""
    rng = np.random.default_rng(0)
    checks = SensorChecks()
    ground = _ground()
    evidence: set[str] = set()
    state = OK
    for i in range(frames):
        stamp = 100.0 + 0.1 * i
        image = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
        if i >= blocked_from:
            image[:, : W // 2] = 128
        lidar = ground
        if wall_from is not None and i >= wall_from:
            lidar = np.concatenate([ground, _wall(2.0, -5.0, 5.0)])
        frame = SensorFrame(
            stamp=stamp,
            cameras=[CameraImage("cam", image, K, T_FORWARD, stamp)],
            sensor_points={"lidar": lidar},
            sensor_modality={"cam": "camera", "lidar": "lidar"},
            sensor_stamps={"cam": stamp, "lidar": stamp},
        )
        verdict = checks.update(frame)["cam"]
        evidence |= {finding.feature for finding in verdict.evidence}
        state = verdict.state
    return state, evidence


def test_tiles_blocked_with_nothing_near_in_the_lidar_are_evidence():
    state, evidence = _run(blocked_from=40, wall_from=None)
    assert state != OK and "blocked_fraction" in evidence


def test_tiles_blocked_by_an_object_the_lidar_sees_in_front_of_the_camera_are_not():
    state, evidence = _run(blocked_from=40, wall_from=40)
    assert state == OK and not evidence
