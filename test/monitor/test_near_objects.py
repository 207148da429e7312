"""A camera's blocked tiles explained by the LiDAR (`SensorChecks._near_objects`): a truck alongside
fills a side camera with a flat, unchanging surface that the camera alone cannot tell from dirt on
its lens; the LiDAR sees the truck (returns a few metres from the camera across its view) and not
the dirt. `near_cover` is the share of the camera's horizontal view, in 2-degree bins, holding a
LiDAR return within `near_object_m`; at `near_cover_explains` or more, tiles that lost texture and
change, or stay static while the scene moves, are that object and no evidence."""

from __future__ import annotations

import numpy as np
from support.lidar_scene import T_FORWARD, H, K, W, ground, wall

from ros2_lmd.monitor.sensor_checks import OK, SensorChecks
from ros2_lmd.sensors.frame import CameraImage, SensorFrame


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
    floor = ground()
    assert _near_cover(floor) == 0.0  # the ground is below 0.3 m
    assert _near_cover(np.concatenate([floor, wall(2.0, -5.0, 5.0, n=4000)])) == 1.0
    # a wall at 2 m from y = 0 to 5: the left half of the view (0 to 45 degrees): 22 or 23 of 45 bins
    half = _near_cover(np.concatenate([floor, wall(2.0, 0.0, 5.0, n=4000)]))
    assert 22 / 45 <= half <= 23 / 45
    assert _near_cover(np.concatenate([floor, wall(-2.0, -5.0, 5.0)])) == 0.0  # behind the camera
    assert _near_cover(np.concatenate([floor, wall(6.0, -1.0, 1.0)])) == 0.0  # beyond near_object_m


def _run(blocked_from: int, wall_from: int | None, frames: int = 60) -> tuple[str, set[str]]:
    """The camera's state and evidence: a textured view changing every frame, its left half flat
    and unchanging from frame `blocked_from` on; a LiDAR wall 2 m in front across the whole view
    from frame `wall_from` on (None: never)."""
    rng = np.random.default_rng(0)
    checks = SensorChecks()
    floor = ground()
    evidence: set[str] = set()
    state = OK
    for i in range(frames):
        stamp = 100.0 + 0.1 * i
        image = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
        if i >= blocked_from:
            image[:, : W // 2] = 128
        lidar = floor
        if wall_from is not None and i >= wall_from:
            lidar = np.concatenate([floor, wall(2.0, -5.0, 5.0)])
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
