"""Saturated pixels explained by the LiDAR (`signal_features.saturated_on_objects`): a white truck
alongside saturates a third of a side camera, every pixel of it on the truck; glare saturates sky,
road and objects alike. At `saturated_object_explains` or more of the saturated pixels within the
rows the LiDAR's object returns span in their column, the saturated share is no glare evidence."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from support.lidar_scene import T_FORWARD, H, K, W, ground, wall

from ros2_lmd.monitor.sensor_checks import OK, SensorCheckConfig, SensorChecks
from ros2_lmd.monitor.signal_features import object_returns, saturated_on_objects
from ros2_lmd.sensors.frame import CameraImage, SensorFrame


def test_share_is_the_saturated_pixels_within_the_rows_objects_span():
    config = SensorCheckConfig()
    # a wall 5 m ahead, y -1..1, 0.5-2.5 m up: columns 64 +- 12.8, rows 48 + 64 (1.5 - z) / 5 = 35.2-60.8
    objects = object_returns(wall(5.0, -1.0, 1.0, n=4000).astype(np.float64))
    grey = np.zeros((H, W), np.uint8)
    assert saturated_on_objects(grey, K, T_FORWARD, objects, config) is None  # nothing saturated
    grey[40:56, 58:70] = 255  # on the wall: 16 x 12 = 192 pixels
    assert saturated_on_objects(grey, K, T_FORWARD, objects, config) == 1.0
    grey[0:8, 0:24] = 255  # sky in the upper left, columns without the wall: 8 x 24 = 192 pixels
    assert saturated_on_objects(grey, K, T_FORWARD, objects, config) == pytest.approx(0.5, abs=1e-12)
    grey[40:56, 58:70] = 0
    assert saturated_on_objects(grey, K, T_FORWARD, objects, config) == 0.0
    # behind the camera the wall explains nothing
    behind = object_returns(wall(-5.0, -1.0, 1.0, n=4000).astype(np.float64))
    grey[40:56, 58:70] = 255
    assert saturated_on_objects(grey, K, T_FORWARD, behind, config) == 0.0


def _run(saturated_rows: slice, frames: int = 60) -> tuple[str, set[str], dict[str, float]]:
    """A camera with a textured view changing every frame, a LiDAR wall 4 m ahead across the whole
    view (rows 32-64), and from frame 40 on 90 % of the given rows' pixels saturated."""
    rng = np.random.default_rng(0)
    checks = SensorChecks()
    lidar = np.concatenate([ground(), wall(4.0, -5.0, 5.0, n=4000)])
    evidence: set[str] = set()
    features: dict[str, float] = {}
    state = OK
    for i in range(frames):
        stamp = 100.0 + 0.1 * i
        image = rng.integers(0, 200, (H, W, 3), dtype=np.uint8)
        if i >= 40:  # 90 % of the rows' pixels, the others keep their texture
            rows = image[saturated_rows]
            rows[rng.random(rows.shape[:2]) < 0.9] = 255
        frame = SensorFrame(
            stamp=stamp,
            cameras=[CameraImage("cam", image, K, T_FORWARD, stamp)],
            sensor_points={"lidar": lidar},
            sensor_modality={"cam": "camera", "lidar": "lidar"},
            sensor_stamps={"cam": stamp, "lidar": stamp},
        )
        verdict = checks.update(frame)["cam"]
        evidence |= {finding.feature for finding in verdict.evidence}
        state, features = verdict.state, dict(verdict.features)
    return state, evidence, features


def test_glare_above_the_objects_is_evidence():
    state, evidence, features = _run(slice(0, 31))  # sky and the wall's top: 31 of 96 rows
    assert state != OK and "saturated_fraction" in evidence
    assert features["saturated_on_objects"] < SensorCheckConfig().saturated_object_explains


def test_a_bright_object_the_lidar_sees_is_not_glare():
    state, evidence, features = _run(slice(33, 64))  # the wall's rows only: 31 of 96 rows
    assert state == OK and not evidence
    assert features["saturated_on_objects"] == 1.0
    # the share is kept under another name: neither judged nor learnt as the camera's healthy share
    assert "saturated_fraction" not in features
    assert features["saturated_fraction_explained"] == pytest.approx(0.9 * 31 / 96, abs=0.01)


@pytest.mark.parametrize("value", [0.0, 1.5])
def test_config_refuses_a_share_outside_zero_to_one(value: float):
    with pytest.raises(ValueError, match="saturated_object_explains"):
        dataclasses.replace(SensorCheckConfig(), saturated_object_explains=value)
