"""Fault injection: spec parsing and its errors, the timeline CSV, and that a fault changes exactly
the faulted sensor within exactly its window (compared against a clean drive of the same seed)."""

from __future__ import annotations

import numpy as np
import pytest

from ros2_lmd.sensors.frame import CameraImage
from ros2_lmd.sim import (
    FaultEvent,
    FaultSpec,
    SimConfig,
    default_rig,
    expand_faults,
    format_fault_spec,
    parse_fault_spec,
    read_faults_csv,
    simulate_drive,
    timeline_rows,
    write_faults_csv,
)

SMALL = SimConfig(camera_width=64, camera_height=48, lidar_azimuth_steps=256)
RIG = default_rig(64, 48)


def test_parse_and_format_round_trip():
    spec = (
        "camera:blackout@5-9,lidar:dropout@12-16,cam_front:delay:0.25@1.5-3,lidar_top:sector_dropout:45@0-2"
    )
    faults = parse_fault_spec(spec)
    assert faults == [
        FaultSpec("camera", "blackout", 5.0, 9.0),
        FaultSpec("lidar", "dropout", 12.0, 16.0),
        FaultSpec("cam_front", "delay", 1.5, 3.0, 0.25),
        FaultSpec("lidar_top", "sector_dropout", 0.0, 2.0, 45.0),
    ]
    assert format_fault_spec(faults) == spec
    assert parse_fault_spec(format_fault_spec(faults)) == faults
    assert parse_fault_spec(" radar_front_left : ghosts @ 1 - 2 ,") == [
        FaultSpec("radar_front_left", "ghosts", 1, 2)
    ]
    assert parse_fault_spec("") == []


@pytest.mark.parametrize(
    "spec, message",
    [
        ("cam_middle:blackout@1-2", r"'cam_middle:blackout@1-2'.*unknown sensor or modality 'cam_middle'"),
        ("lidar:glare@1-2", r"kind 'glare' does not apply to lidar"),
        ("lidar_top:ghosts@1-2", r"kind 'ghosts' does not apply to lidar"),
        ("radar_front:fog@1-2", r"kind 'fog' does not apply to radar"),
        ("camera:blackout@3-3", r"end \(3\) must be greater than start \(3\)"),
        ("camera:blackout@4-2", r"'camera:blackout@4-2'.*end"),
        ("camera:blackout", r"missing '@start-end'"),
        ("camera:blackout@1", r"window '1' must be start-end"),
        ("camera:blackout@a-2", r"start 'a' is not a number"),
        ("camera@1-2", r"expected target:kind"),
        ("camera:blackout:2@1-2", r"'blackout' takes no parameter"),
        ("camera:delay:x@1-2", r"parameter 'x' is not a number"),
        ("camera:delay:-1@1-2", r"parameter must be > 0"),
        ("camera:blackout@1-2,lidar:dropout@5-x", r"'lidar:dropout@5-x'.*end 'x'"),
    ],
)
def test_parse_errors_name_the_bad_part(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_fault_spec(spec)


def test_modality_targets_expand_per_sensor_and_csv_round_trips(tmp_path):
    spec = "camera:night@1-2,radar_front:ghosts:10@0-0.5,lidar_top:delay@3-4"
    events = expand_faults(spec, RIG)
    assert [e.sensor for e in events[:6]] == [s.name for s in RIG.of_modality("camera")]
    assert events[6] == FaultEvent("radar_front", "ghosts", 0.0, 0.5, 10.0)
    assert events[7] == FaultEvent("lidar_top", "delay", 3.0, 4.0) and events[7].value == 0.3
    rows = timeline_rows(spec, RIG)
    assert rows[0] == {"sensor": "cam_front", "kind": "night", "start": "1", "end": "2", "param": ""}
    path = tmp_path / "faults.csv"
    write_faults_csv(path, spec, RIG)
    assert path.read_text().splitlines()[0] == "sensor,kind,start,end,param"
    assert read_faults_csv(path) == events
    path.write_text("sensor,kind,begin\ncam_front,night,1\n")
    with pytest.raises(ValueError, match="missing columns"):
        read_faults_csv(path)


def test_window_is_inclusive_start_exclusive_end():
    e = FaultEvent("cam_front", "blackout", 0.3, 0.6)
    assert [e.active(t) for t in (0.2, 0.3, 0.5, 0.6)] == [False, True, True, False]


def _same(a, b) -> bool:
    if a.stamp != b.stamp or (a.data is None) != (b.data is None):
        return False
    if a.data is None:
        return True
    x, y = (a.data.image, b.data.image) if isinstance(a.data, CameraImage) else (a.data.points, b.data.points)
    return x.shape == y.shape and np.array_equal(x, y)


FAULTS = (
    "cam_front:blackout@0.2-0.5,cam_back:frozen@0.3-0.7,cam_front_left:occlusion@0.1-0.4,"
    "cam_front_right:glare@0.4-0.6,cam_back_left:night@0-0.2,cam_back_right:delay:0.2@0.3-0.6,"
    "lidar_top:sector_dropout@0.1-0.3,lidar_top:fog@0.5-0.7,radar_front:ghosts@0.2-0.6,"
    "radar_back_left:dropout@0.5-0.9,radar_front_right:delay@0.6-0.8"
)


def test_fault_changes_exactly_the_faulted_sensor_in_its_window():
    clean = list(simulate_drive(4, duration_s=1.0, config=SMALL))
    faulted = list(simulate_drive(4, duration_s=1.0, config=SMALL, faults=FAULTS))
    events = expand_faults(FAULTS, RIG)
    seen_faulted = set()
    for c, f in zip(clean, faulted):
        np.testing.assert_array_equal(c.ground_truth.occupancy, f.ground_truth.occupancy)
        # The window oracle is written out here, not taken from FaultEvent.active.
        assert f.active_faults == [e for e in events if e.start <= f.t < e.end]
        for name in c.readings:
            active = [e.kind for e in events if e.sensor == name and e.start <= f.t < e.end]
            same = _same(c.readings[name], f.readings[name])
            assert same == (not active), (name, f.t, active)
            assert f.readings[name].faults == tuple(active)
            seen_faulted.update(active)
    assert seen_faulted == {e.kind for e in events}


def test_fault_effects():
    faulted = {round(f.t, 3): f for f in simulate_drive(4, duration_s=1.0, config=SMALL, faults=FAULTS)}
    clean = {round(f.t, 3): f for f in simulate_drive(4, duration_s=1.0, config=SMALL)}
    assert faulted[0.3].readings["cam_front"].data.image.max() < 5  # blackout
    # frozen repeats the last good frame (t = 0.2) with a fresh stamp
    for t in (0.3, 0.5, 0.6):
        r = faulted[t].readings["cam_back"]
        np.testing.assert_array_equal(r.data.image, clean[0.2].readings["cam_back"].data.image)
        assert r.stamp == faulted[t].stamp
    assert (
        faulted[0.1].readings["cam_back_left"].data.image.mean()
        < 0.4 * clean[0.1].readings["cam_back_left"].data.image.mean()
    )  # night
    assert (
        faulted[0.4].readings["cam_front_right"].data.image.mean()
        > clean[0.4].readings["cam_front_right"].data.image.mean() + 30
    )  # glare
    delayed = faulted[0.4].readings["cam_back_right"]
    assert delayed.stamp == pytest.approx(faulted[0.4].stamp - 0.2) and delayed.arrival == faulted[0.4].stamp
    assert "cam_back_right" in faulted[0.4].to_sensor_frame(sync_tolerance=0.1).sensor_status
    sf = faulted[0.4].to_sensor_frame(sync_tolerance=None)
    assert sf.sensor_status == {} and len(sf.cameras) == 6
    assert faulted[0.6].readings["radar_back_left"].data is None
    assert faulted[0.6].to_sensor_frame().sensor_status["radar_back_left"] == "no data"
    ghosts = faulted[0.3].readings["radar_front"].data
    assert ghosts.is_ghost.sum() >= 30 and len(ghosts.points) > len(
        clean[0.3].readings["radar_front"].data.points
    )
    # sector dropout: one contiguous 90 degree sector (of the default width) is empty
    pts = faulted[0.2].readings["lidar_top"].data.points
    az = np.sort(np.degrees(np.arctan2(pts[:, 1], pts[:, 0])))
    gaps = np.diff(np.concatenate([az, [az[0] + 360]]))
    assert 89 < gaps.max() < 93
    fog = faulted[0.5].readings["lidar_top"].data
    fog_r = np.linalg.norm(fog.points[:, :3], axis=1)
    clean_r = np.linalg.norm(clean[0.5].readings["lidar_top"].data.points[:, :3], axis=1)
    assert (fog_r > 40).sum() < 0.1 * (clean_r > 40).sum() and (fog_r < 8).sum() > (clean_r < 8).sum()


def test_modality_dropout_marks_modality_absent():
    frames = list(simulate_drive(6, duration_s=0.3, config=SMALL, faults="radar:dropout@0.1-0.2"))
    assert frames[0].to_sensor_frame().present["radar"]
    sf = frames[1].to_sensor_frame()
    assert not sf.present["radar"] and sf.radar.shape == (0, 6)
    assert sorted(sf.sensor_status) == sorted(s.name for s in RIG.of_modality("radar"))
    assert frames[2].to_sensor_frame().present["radar"]
