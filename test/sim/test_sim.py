"""Synthetic world: determinism, camera projection, LiDAR/radar geometry against the boxes, ground
truth occupancy and the SensorFrame assembly. Small resolutions and short drives keep it fast."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from ros2_lmd.sensors.frame import CameraImage, SensorFrame
from ros2_lmd.sim import (
    ObjectBoxes,
    SimConfig,
    Simulator,
    World,
    WorldConfig,
    default_rig,
    lidar_to_base,
    radar_to_base,
    random_frame,
    simulate_drive,
)
from ros2_lmd.sim.lidar import GROUND_ID, N_BEAMS

SMALL = SimConfig(camera_width=96, camera_height=64, lidar_azimuth_steps=360)
EMPTY_ROAD = WorldConfig(vehicle_density=0.0, parked_density=0.0, walls=False, poles=False, guard_rails=False)


def _arrays(frame):
    """Every array a frame carries, keyed, for exact comparisons."""
    out = {"occupancy": frame.ground_truth.occupancy, "gt_centre": frame.ground_truth.boxes.centre}
    for name, r in frame.readings.items():
        d = r.data
        out[name] = d.image if isinstance(d, CameraImage) else d.points
        out[name + ".stamp"] = np.array(r.stamp)
    return out


def test_world_is_deterministic_per_seed():
    a, b, c = random_frame(3, SMALL), random_frame(3, SMALL), random_frame(4, SMALL)
    xa, xb, xc = _arrays(a), _arrays(b), _arrays(c)
    assert xa.keys() == xb.keys()
    for k in xa:
        np.testing.assert_array_equal(xa[k], xb[k], err_msg=k)
    differing = [
        k for k in xa if k in xc and (xa[k].shape != xc[k].shape or not np.array_equal(xa[k], xc[k]))
    ]
    assert "lidar_top" in differing and "cam_front" in differing and "occupancy" in differing


def test_drive_is_deterministic_and_moves():
    first = list(simulate_drive(11, duration_s=0.3, config=SMALL))
    again = list(simulate_drive(11, duration_s=0.3, config=SMALL))
    for f, g in zip(first, again):
        for k, v in _arrays(f).items():
            np.testing.assert_array_equal(v, _arrays(g)[k], err_msg=k)
    assert [f.t for f in first] == [0.0, 0.1, 0.2]
    assert first[1].stamp == pytest.approx(SMALL.start_stamp + 0.1)
    # The ego drives: its pose advances and the world seen from it changes.
    assert first[2].T_world_base[0, 3] > first[0].T_world_base[0, 3]
    assert not np.array_equal(
        first[0].readings["lidar_top"].data.points[:50], first[2].readings["lidar_top"].data.points[:50]
    )


def test_rig_layout():
    rig = default_rig()
    cams = {s.name: s for s in rig.of_modality("camera")}
    assert set(cams) == {
        "cam_front",
        "cam_front_left",
        "cam_front_right",
        "cam_back_left",
        "cam_back_right",
        "cam_back",
    }
    for name, yaw in [
        ("cam_front", 0),
        ("cam_front_left", 55),
        ("cam_front_right", -55),
        ("cam_back_left", 110),
        ("cam_back_right", -110),
    ]:
        assert np.degrees(cams[name].yaw) == pytest.approx(yaw)
    assert abs(np.degrees(cams["cam_back"].yaw)) == pytest.approx(180)
    front = cams["cam_front"].T_base_sensor
    np.testing.assert_allclose(front[:3, :3] @ [0, 0, 1], [1, 0, 0], atol=1e-12)  # optical z -> base x
    np.testing.assert_allclose(front[:3, :3] @ [1, 0, 0], [0, -1, 0], atol=1e-12)  # optical x (right) -> -y
    np.testing.assert_allclose(front[:3, :3] @ [0, 1, 0], [0, 0, -1], atol=1e-12)  # optical y (down) -> -z
    for s in rig.sensors:
        R = s.T_base_sensor[:3, :3]
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    assert len(rig.of_modality("radar")) == 5 and rig["lidar_top"].position[2] == pytest.approx(1.84)
    assert cams["cam_front"].K[0, 2] == 224 and cams["cam_front"].height == 256


def _one_box_world(x: float, y: float, yaw: float = 0.3) -> tuple[World, World]:
    empty = World.generate(0, EMPTY_ROAD, duration_s=0.0)
    empty = replace(empty, objects=empty.objects.subset(np.zeros(len(empty.objects), bool)))
    ex, ey = empty.ego_start
    box = ObjectBoxes(
        np.array([1]),
        np.array([0]),
        np.array([[ex + x, ey + y, 0.75]]),
        np.array([[4.5, 1.8, 1.5]]),
        np.array([yaw]),
        np.zeros((1, 2)),
        np.array([[200.0, 30.0, 30.0]]),
        np.array([0.5]),
    )
    return empty, replace(empty, objects=box)


def test_box_projects_into_its_rendered_region():
    empty, with_box = _one_box_world(12.0, 0.5)
    spec = SMALL.rig()["cam_front"]
    before = Simulator(empty, SMALL).render(spec, 0.0, 0).image
    after = Simulator(with_box, SMALL).render(spec, 0.0, 0).image
    changed = np.argwhere((before != after).any(-1))  # (v, u)
    assert len(changed) > 50
    corners = with_box.objects_in_base(0.0).corners()[0]
    cam = (corners - spec.T_base_sensor[:3, 3]) @ spec.T_base_sensor[:3, :3]
    assert (cam[:, 2] > 0).all()
    uv = cam @ spec.K.T
    uv = uv[:, :2] / uv[:, 2:]
    u_lo, v_lo = uv.min(0)
    u_hi, v_hi = uv.max(0)
    v, u = changed[:, 0], changed[:, 1]
    assert u.min() >= u_lo - 1 and u.max() <= u_hi + 1 and v.min() >= v_lo - 1 and v.max() <= v_hi + 1
    # ... and the corners bound it tightly (no big offset between geometry and image).
    assert u.min() <= u_lo + 2 and u.max() >= u_hi - 2 and v.min() <= v_lo + 2 and v.max() >= v_hi - 2
    back = SMALL.rig()["cam_back"]
    np.testing.assert_array_equal(
        Simulator(empty, SMALL).render(back, 0.0, 0).image,
        Simulator(with_box, SMALL).render(back, 0.0, 0).image,
    )


def test_near_box_is_clipped_not_lost():
    # Corners behind the camera: near-plane clipping must still paint the visible part.
    empty, with_box = _one_box_world(2.5, 3.0, yaw=0.0)
    spec = SMALL.rig()["cam_front_left"]
    before = Simulator(empty, SMALL).render(spec, 0.0, 0).image
    after = Simulator(with_box, SMALL).render(spec, 0.0, 0).image
    assert (before != after).any(-1).mean() > 0.3


def _surface_distance(points: np.ndarray, boxes: ObjectBoxes, index: np.ndarray) -> np.ndarray:
    """Unsigned distance from each point to the surface of its box (oracle independent of the sim)."""
    d = points - boxes.centre[index]
    c, s = np.cos(boxes.yaw[index]), np.sin(boxes.yaw[index])
    local = np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1], d[:, 2]], 1)
    q = np.abs(local) - boxes.size[index] / 2
    outside = np.linalg.norm(np.maximum(q, 0), axis=1)
    inside = np.minimum(q.max(1), 0)
    return np.abs(outside + inside)


def test_lidar_points_lie_on_boxes_or_ground():
    config = replace(SMALL, world=WorldConfig(vehicle_density=5.0, parked_density=10.0))
    frame = next(simulate_drive(21, duration_s=0.1, config=config))
    scan = frame.readings["lidar_top"].data
    spec = frame.rig["lidar_top"]
    xyz = lidar_to_base(scan.points, spec)[:, :3].astype(np.float64)
    world = World.generate(21, config.world, duration_s=0.1)
    boxes = world.objects_in_base(frame.t)
    ground = scan.object_id == GROUND_ID
    assert ground.sum() > 1000 and (~ground).sum() > 500
    assert np.abs(xyz[ground, 2]).max() < 0.05
    pos = {int(i): k for k, i in enumerate(boxes.ids)}
    index = np.array([pos[int(i)] for i in scan.object_id[~ground]])
    assert _surface_distance(xyz[~ground], boxes, index).max() < 0.1
    # Vehicles, not only walls, are hit; and points stay within range.
    assert boxes.is_vehicle[index].sum() > 100
    r = np.linalg.norm(scan.points[:, :3], axis=1)
    assert r.max() <= spec.max_range + 0.1 and 0 <= scan.points[:, 3].min() and scan.points[:, 3].max() <= 255
    assert set(np.unique(scan.ring)) <= set(range(N_BEAMS))


@pytest.mark.parametrize("mode", ["full", "radial"])
def test_radar_velocities_match_object_motion(mode):
    config = replace(SMALL, radar_velocity=mode, world=WorldConfig(vehicle_density=6.0, parked_density=4.0))
    world = World.generate(5, config.world, duration_s=0.0)
    sim = Simulator(world, config)
    boxes = world.objects_in_base(0.0)
    pos = {int(i): k for k, i in enumerate(boxes.ids)}
    moving = 0
    for spec in sim.rig.of_modality("radar"):
        scan = sim.render(spec, 0.0, 0)
        real = (~scan.is_ghost) & (scan.object_id > 0)
        pts = radar_to_base(scan.points[real], spec)
        idx = np.array([pos[int(i)] for i in scan.object_id[real]], dtype=int)
        v_true = boxes.velocity[idx]
        if mode == "full":
            err = np.linalg.norm(pts[:, 4:6] - v_true, axis=1)
        else:
            los = pts[:, :2] - spec.position[:2]
            los /= np.linalg.norm(los, axis=1, keepdims=True)
            radial_true = np.einsum("nk,nk->n", v_true, los)[:, None] * los
            err = np.linalg.norm(pts[:, 4:6] - radial_true, axis=1)
        assert len(err) == 0 or err.max() < 0.6
        moving += int((np.abs(v_true[:, 0]) > 1.0).sum())
        # Real returns sit on their box's footprint outline (within measurement noise).
        flat = pts[:, :3].astype(np.float64).copy()
        flat[:, 2] = boxes.centre[idx, 2]
        assert len(idx) == 0 or _surface_distance(flat, boxes, idx).max() < 1.0
        assert np.all(scan.points[:, 2] == 0)  # 2D radar
    assert moving >= 5


def test_ground_truth_occupancy_covers_footprints():
    frame = random_frame(8, replace(SMALL, modalities=()))
    gt = frame.ground_truth
    assert frame.readings == {}
    assert gt.occupancy.shape == gt.grid.shape and gt.occupancy.dtype == np.uint8
    assert len(gt.objects) > 3
    # Oracle: a cell is occupied exactly when its centre lies inside some vehicle footprint.
    gx, gy = gt.grid.cell_centres()
    oracle = np.zeros(gt.grid.shape, bool)
    for o in gt.objects:
        dx, dy = gx - o.x, gy - o.y
        u = np.cos(o.yaw) * dx + np.sin(o.yaw) * dy
        v = -np.sin(o.yaw) * dx + np.cos(o.yaw) * dy
        oracle |= (np.abs(u) <= o.length / 2) & (np.abs(v) <= o.width / 2)
    np.testing.assert_array_equal(gt.occupancy.astype(bool), oracle)
    # Hence every footprint point deeper than half a cell diagonal from the edge is covered.
    margin = gt.grid.resolution * np.sqrt(0.5) + 1e-6
    for o in gt.objects:
        u, v = np.meshgrid(
            np.linspace(-1, 1, 9) * (o.length / 2 - margin), np.linspace(-1, 1, 5) * (o.width / 2 - margin)
        )
        x = o.x + np.cos(o.yaw) * u - np.sin(o.yaw) * v
        y = o.y + np.sin(o.yaw) * u + np.cos(o.yaw) * v
        iy, ix, inside = gt.grid.cell_of(x, y)
        assert gt.occupancy[iy[inside], ix[inside]].all(), o
    area = sum(o.length * o.width for o in gt.objects if abs(o.x) < 45 and abs(o.y) < 45)
    inner = gt.occupancy[10:-10, 10:-10].sum() * gt.grid.resolution**2
    assert 0.6 * area < inner < 1.4 * area + 5


def test_twenty_frames_and_sensor_frame_assembly():
    frames = list(simulate_drive(2, duration_s=2.0, rate_hz=10.0, config=SMALL))
    assert len(frames) == 20 and frames[-1].t == pytest.approx(1.9)
    f = frames[-1]
    sf = f.to_sensor_frame()
    assert isinstance(sf, SensorFrame) and sf.frame_index == 19 and sf.stamp == f.stamp
    assert [c.name for c in sf.cameras] == [s.name for s in f.rig.of_modality("camera")]
    assert all(c.image.shape == (64, 96, 3) for c in sf.cameras)
    n_radar = sum(len(f.readings[s.name].data.points) for s in f.rig.of_modality("radar"))
    assert sf.radar.shape == (n_radar, 6) and sf.lidar.shape[1] == 4
    assert all(sf.present.values()) and sf.sensor_status == {}
    # base_link: LiDAR ground returns at z ~ 0, radar points at the radars' mounting height.
    ground = f.readings["lidar_top"].data.object_id == GROUND_ID
    assert np.abs(sf.lidar[: len(ground)][ground, 2]).max() < 0.05
    np.testing.assert_allclose(sf.radar[:, 2], 0.5, atol=1e-5)


def test_config_switches_sensors_off_without_changing_others():
    full = random_frame(9, SMALL)
    no_cam = random_frame(9, replace(SMALL, modalities=("radar", "lidar")))
    assert not any(r.modality == "camera" for r in no_cam.readings.values())
    np.testing.assert_array_equal(
        full.readings["lidar_top"].data.points, no_cam.readings["lidar_top"].data.points
    )
    np.testing.assert_array_equal(
        full.readings["radar_front"].data.points, no_cam.readings["radar_front"].data.points
    )
    assert no_cam.to_sensor_frame().present == {"camera": False, "radar": True, "lidar": True}
    with pytest.raises(ValueError, match="modalities"):
        SimConfig(modalities=("sonar",))
