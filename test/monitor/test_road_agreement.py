"""The road as each camera sees it (`signal_features.road_view`) and each camera's change against the
other cameras' (`SensorChecks._road_agreement`): the LiDAR says which pixels are road, the camera's
own history takes out what is its own, the other cameras' change takes out what all of them see."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ros2_lmd.monitor.sensor_checks import FAILED, OK, SensorCheckConfig, SensorChecks
from ros2_lmd.monitor.signal_features import road_returns, road_view
from ros2_lmd.sensors.frame import CameraImage, SensorFrame

H, W = 96, 128
FY = 64.0
K = np.array([[64.0, 0, W / 2], [0, FY, H / 2], [0, 0, 1]])
CAMERA_HEIGHT = 1.5
CONFIG = SensorCheckConfig()


def _camera_pose(yaw_deg: float) -> np.ndarray:
    """Optical frame (z forward, x right, y down) -> base_link, CAMERA_HEIGHT up, turned by `yaw_deg`."""
    forward = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], dtype=float)
    c, s = np.cos(np.radians(yaw_deg)), np.sin(np.radians(yaw_deg))
    T = np.eye(4)
    T[:3, :3] = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ forward
    T[2, 3] = CAMERA_HEIGHT
    return T


def _road(step: float = 0.25) -> np.ndarray:
    """LiDAR returns (x, y, z, intensity) on a flat road, on a grid 25 m around the ego."""
    x, y = np.meshgrid(np.arange(-25, 25, step), np.arange(-25, 25, step))
    n = x.size
    return np.stack([x.ravel(), y.ravel(), np.zeros(n), np.ones(n)], 1).astype(np.float32)


def _wall(x: float, n: int = 200) -> np.ndarray:
    """Returns on a wall across the road at `x` (y -10 to 10), at two heights only (sparse rings)."""
    y = np.linspace(-10, 10, n)
    rows = [np.stack([np.full(n, x), y, np.full(n, z), np.ones(n)], 1) for z in (1.8, 2.5)]
    return np.concatenate(rows).astype(np.float32)


def _row_of(distance: float) -> float:
    """The image row of the road `distance` m ahead of a level forward camera."""
    return FY * CAMERA_HEIGHT / distance + H / 2


def _painted(near: tuple[int, int, int], far: tuple[int, int, int], split_m: float) -> np.ndarray:
    """A forward camera's image: the road nearer than `split_m` in `near`, farther (and the sky) in `far`."""
    image = np.empty((H, W, 3), np.uint8)
    image[:] = far
    image[int(np.ceil(_row_of(split_m))) :] = near
    return image


def test_road_view_is_the_road_pixels_grey_percentile_and_colour_ratios():
    image = _painted((100, 80, 60), (100, 80, 60), 8.0)  # one colour: every statistic exact
    view = road_view(image, K, _camera_pose(0.0), road_returns(_road()[:, :3].astype(float), CONFIG), CONFIG)
    grey = 0.299 * 101 + 0.587 * 81 + 0.114 * 61  # + 1 on every channel: black has a logarithm
    assert view == pytest.approx(np.log([grey, 101 / 81, 61 / 81]), abs=1e-9)


def test_an_object_hides_the_road_beyond_it_in_its_columns():
    """The far road is white; a wall at 8 m, seen by the LiDAR only at 1.8 and 2.5 m up, stands in
    front of it for the camera: the view is the near road's colour alone. Without the wall the far
    road (most of the road returns) is in the median."""
    near, far = (100, 80, 60), (200, 200, 200)
    image = _painted(near, far, 8.0)
    road = _road()
    walled = road_returns(np.concatenate([road, _wall(8.0)])[:, :3].astype(float), CONFIG)
    view = road_view(image, K, _camera_pose(0.0), walled, CONFIG)
    assert view is not None
    assert view[1:] == pytest.approx(np.log([101 / 81, 61 / 81]), abs=1e-9)
    open_road = road_view(
        image, K, _camera_pose(0.0), road_returns(road[:, :3].astype(float), CONFIG), CONFIG
    )
    assert open_road is not None
    assert open_road[1:] == pytest.approx([0.0, 0.0], abs=1e-9)


def test_no_view_without_enough_road_in_sight():
    returns = road_returns(_road()[:, :3].astype(float), CONFIG)
    image = _painted((100, 80, 60), (100, 80, 60), 8.0)
    # looking straight up: no road in the image
    up = np.eye(4)
    up[2, 3] = CAMERA_HEIGHT
    assert road_view(image, K, up, returns, CONFIG) is None
    # road returns only beside the corridor (a verge): not the road
    verge = _road()
    verge = verge[np.abs(verge[:, 1]) > CONFIG.road_corridor_m]
    assert (
        road_view(image, K, _camera_pose(0.0), road_returns(verge[:, :3].astype(float), CONFIG), CONFIG)
        is None
    )


YAWS = {"cam_front": 0.0, "cam_front_left": 30.0, "cam_front_right": -30.0, "cam_back": 180.0}


def _frame(stamp: float, images: dict[str, np.ndarray], lidar_stuck: bool = False) -> SensorFrame:
    road = _road(0.5)
    if not lidar_stuck:  # a new sweep each frame
        road[:, 3] = np.random.default_rng(int(stamp * 10)).uniform(0, 1, len(road))
    return SensorFrame(
        stamp=stamp,
        cameras=[CameraImage(n, images[n], K, _camera_pose(YAWS[n]), stamp) for n in images],
        sensor_points={"lidar_top": road},
        sensor_modality={**{n: "camera" for n in images}, "lidar_top": "lidar"},
    )


def _scenes(frames: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Each camera's images: grey road with grain, changing from frame to frame."""
    rng = np.random.default_rng(seed)
    return [
        {n: np.clip(rng.normal(110, 12, (H, W, 3)), 0, 255).astype(np.uint8) for n in YAWS}
        for _ in range(frames)
    ]


def test_one_camera_changed_gives_its_own_change_and_the_others_none():
    """After a healthy baseline, one camera's image turns brighter: its road_gap is its own change
    (its view against its own history), the other cameras' is 0 (the median of their changes)."""
    config = SensorCheckConfig()
    checks = SensorChecks(config)
    scenes = _scenes(config.baseline_min_frames + 3)
    for i, images in enumerate(scenes[:-1]):
        checks.update(_frame(0.1 * i, images))
    baseline_views = {}
    returns = road_returns(_road(0.5)[:, :3].astype(float), config)
    last = dict(scenes[-1])
    last["cam_front"] = np.clip(last["cam_front"] * 1.8, 0, 255).astype(np.uint8)
    verdicts = checks.update(_frame(0.1 * (len(scenes) - 1), last))
    for name in YAWS:
        baseline_views[name] = np.median(
            [road_view(s[name], K, _camera_pose(YAWS[name]), returns, config) for s in scenes[:-1]], axis=0
        )
    front = road_view(last["cam_front"], K, _camera_pose(0.0), returns, config)
    changes = {
        n: road_view(last[n], K, _camera_pose(YAWS[n]), returns, config) - baseline_views[n] for n in YAWS
    }
    others = np.median([changes[n] for n in YAWS if n != "cam_front"], axis=0)
    expected = np.abs(front - baseline_views["cam_front"] - others).max()
    assert verdicts["cam_front"].features["road_gap"] == pytest.approx(expected, abs=1e-9)
    assert expected > config.road_gap_failed  # x 1.8 is far beyond the limit
    assert "road_gap" in [e.feature for e in verdicts["cam_front"].evidence]
    for name in ("cam_front_left", "cam_front_right", "cam_back"):
        own = changes[name]
        rest = np.median([changes[n] for n in YAWS if n != name], axis=0)
        assert verdicts[name].features["road_gap"] == pytest.approx(np.abs(own - rest).max(), abs=1e-9)
        assert verdicts[name].features["road_gap"] < config.road_gap_suspect


def test_the_whole_rig_changing_together_is_no_camera_fault():
    """Every camera darker at once (a tunnel, a cloud): each camera's change is the others' change."""
    checks = SensorChecks()
    scenes = _scenes(40)
    for i, images in enumerate(scenes):
        if i >= 25:
            images = {n: (image * 0.5).astype(np.uint8) for n, image in images.items()}
        verdicts = checks.update(_frame(0.1 * i, images))
        assert all(v.state == OK for v in verdicts.values()), i
    assert all(verdicts[n].features["road_gap"] < 0.05 for n in YAWS)


def test_the_faulty_camera_is_raised_and_fewer_than_four_cameras_judge_nothing():
    scenes = _scenes(35)
    checks, three = SensorChecks(), SensorChecks()
    for i, images in enumerate(scenes):
        if i >= 25:
            images = {**images, "cam_front": np.clip(images["cam_front"] * 1.8, 0, 255).astype(np.uint8)}
        verdicts = checks.update(_frame(0.1 * i, images))
        few = three.update(
            _frame(0.1 * i, {n: images[n] for n in ("cam_front", "cam_front_left", "cam_back")})
        )
    assert verdicts["cam_front"].state == FAILED
    assert [n for n, v in verdicts.items() if v.state != OK] == ["cam_front"]
    assert "road_gap" not in few["cam_front"].features  # two others cannot outvote one faulty camera
    with pytest.raises(ValueError, match="road_min_cameras"):
        dataclasses.replace(SensorCheckConfig(), road_min_cameras=3)


def test_a_lidar_not_ok_judges_no_camera():
    """A stuck LiDAR (the same sweep again: failed on its own evidence) is no reference for where the
    road is in the images: no camera gets a road_gap while it is not ok."""
    scenes = _scenes(35)
    checks = SensorChecks()
    for i, images in enumerate(scenes):
        stuck = i >= 25
        if stuck:
            images = {**images, "cam_front": np.clip(images["cam_front"] * 1.8, 0, 255).astype(np.uint8)}
        verdicts = checks.update(_frame(0.1 * i, images, lidar_stuck=stuck))
        if i == 24:
            assert all("road_gap" in verdicts[n].features for n in YAWS)
    assert verdicts["lidar_top"].state == FAILED
    assert all("road_gap" not in verdicts[n].features for n in YAWS)
