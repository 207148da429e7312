"""Detections, evidence shares and the alert state machine on hand-made BEV maps (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from ros2_lmd.geometry.grid import BEVGrid
from ros2_lmd.monitor.alerts import AlertConfig, AlertEngine
from ros2_lmd.monitor.detections import evidence_shares, extract_detections
from ros2_lmd.monitor.report import (
    MODALITY_DISAGREEMENT,
    SENSOR_DEGRADED,
    SENSOR_FAILED,
    SENSOR_MISSING,
    SENSOR_RECOVERED,
    SENSOR_STALE,
    SINGLE_SENSOR_SUPPORT,
)

GRID = BEVGrid(-10, 10, -10, 10, 0.5)  # 40 x 40 cells


def scene(camera_box=4.0, radar_box=4.0, radar_ghost=0.0):
    """Background logit -6 (bias); a 'car' at x=+5 (cells), camera and radar evidence inside it."""
    shape = GRID.shape
    bias = np.full(shape, -6.0)
    camera, radar = np.zeros(shape), np.zeros(shape)
    iy, ix, _ = GRID.cell_of(np.array([5.0]), np.array([2.0]))
    box = (slice(iy[0] - 2, iy[0] + 2), slice(ix[0] - 4, ix[0] + 4))
    camera[box] += camera_box
    radar[box] += radar_box
    if radar_ghost:
        gy, gx, _ = GRID.cell_of(np.array([-6.0]), np.array([-6.0]))
        radar[gy[0] - 1 : gy[0] + 2, gx[0] - 1 : gx[0] + 2] += radar_ghost
    fused = camera + radar + bias
    return fused, {"camera": camera, "radar": radar, "bias": bias}


DEFAULT_CONFIG = AlertConfig()


def detect(fused, comps, config=DEFAULT_CONFIG):
    mods = {m: comps[m] for m in ("camera", "radar")}
    return extract_detections(
        fused,
        mods,
        GRID,
        config.detection_threshold,
        config.min_detection_cells,
        config.support_share,
        config.single_sensor_share,
    )


def test_detection_geometry_and_shares():
    fused, comps = scene(camera_box=6.0, radar_box=2.0)
    dets, labels = detect(fused, comps)
    assert len(dets) == 1
    det = dets[0]
    assert det.cells == 32 and det.area_m2 == pytest.approx(8.0)
    assert det.centroid == pytest.approx((5.0, 2.0), abs=0.3)
    # footprint covers the 8 x 4 cells = 4 m x 2 m
    extent = det.footprint.max(0) - det.footprint.min(0)
    assert sorted(extent.round(3)) == pytest.approx([2.0, 4.0])
    assert det.shares["camera"] == pytest.approx(0.75) and det.shares["radar"] == pytest.approx(0.25)
    assert det.dominant == "camera" and det.supporting == ("camera", "radar") and not det.single_sensor
    assert (labels == det.label).sum() == det.cells


def test_evidence_shares_use_positive_evidence_only():
    comps = {"camera": np.array([3.0, -5.0]), "radar": np.array([1.0, 1.0])}
    assert evidence_shares(comps) == pytest.approx({"camera": 0.6, "radar": 0.4})
    assert evidence_shares({"camera": np.array([-1.0])}) == {"camera": 0.0}


def test_single_sensor_support_alert():
    fused, comps = scene(camera_box=0.2, radar_box=8.0)
    engine = AlertEngine(("camera", "radar"), GRID, AlertConfig())
    dets, labels = detect(fused, comps)
    alerts = engine.update(
        fused, comps, {"camera": 1.0, "radar": 1.0}, {"camera": True, "radar": True}, {}, dets, labels
    )
    single = [a for a in alerts if a.kind == SINGLE_SENSOR_SUPPORT]
    assert len(single) == 1 and single[0].modality == "radar" and single[0].detection is dets[0]
    assert "radar alone" in single[0].message


def test_disagreement_both_directions():
    # radar sees a ghost the fused output rejects? make the camera suppress it strongly
    fused, comps = scene(radar_ghost=9.0)
    gy, gx, _ = GRID.cell_of(np.array([-6.0]), np.array([-6.0]))
    comps["camera"][gy[0] - 1 : gy[0] + 2, gx[0] - 1 : gx[0] + 2] -= 9.0
    fused = comps["camera"] + comps["radar"] + comps["bias"]
    # and inside the real car the camera argues against it, radar carries it
    iy, ix, _ = GRID.cell_of(np.array([5.0]), np.array([2.0]))
    comps["camera"][iy[0] - 2 : iy[0] + 2, ix[0] - 4 : ix[0] + 4] = -3.0
    comps["radar"][iy[0] - 2 : iy[0] + 2, ix[0] - 4 : ix[0] + 4] = 12.0
    fused = comps["camera"] + comps["radar"] + comps["bias"]
    engine = AlertEngine(("camera", "radar"), GRID, AlertConfig())
    dets, labels = detect(fused, comps)
    alerts = [
        a
        for a in engine.update(
            fused, comps, {"camera": 1, "radar": 1}, {"camera": True, "radar": True}, {}, dets, labels
        )
        if a.kind == MODALITY_DISAGREEMENT
    ]
    kinds = {(a.modality, "rejects" in a.message, "argues against" in a.message) for a in alerts}
    assert ("radar", True, False) in kinds
    assert ("camera", False, True) in kinds
    assert len(alerts) == 2


def run_health(energies, config):
    engine = AlertEngine(("camera",), GRID, config)
    fused, comps = (
        np.full(GRID.shape, -5.0),
        {"camera": np.zeros(GRID.shape), "bias": np.full(GRID.shape, -5.0)},
    )
    timeline = []
    for i, e in enumerate(energies):
        for alert in engine.update(
            fused, comps, {"camera": e}, {"camera": True}, {}, [], np.zeros(GRID.shape, int)
        ):
            timeline.append((i, alert.kind))
    return timeline, engine


def test_failure_raised_within_hysteresis_and_cleared_without_flapping():
    config = AlertConfig(baseline_window=20, baseline_min_frames=10, hysteresis_k=3, hysteresis_n=5)
    rng = np.random.default_rng(0)
    healthy = list(1.0 + 0.1 * rng.standard_normal(30))
    failed = [0.02] * 20
    flicker = [1.0, 0.02, 1.0, 1.0, 0.02, 1.0, 1.0, 0.02]  # never 3 bad in any 5 after recovery
    timeline, engine = run_health(healthy + failed + healthy + flicker, config)
    assert timeline[0] == (32, SENSOR_FAILED)  # third bad frame after onset at index 30
    assert timeline[1] == (52, SENSOR_RECOVERED)  # third good frame after the fault ends at 50
    assert len(timeline) == 2
    assert engine.health["camera"].baseline_value() == pytest.approx(1.0, abs=0.1)


def test_degraded_then_failed():
    config = AlertConfig(baseline_window=10, baseline_min_frames=10, hysteresis_k=2, hysteresis_n=3)
    timeline, _ = run_health([1.0] * 10 + [0.3] * 5 + [0.05] * 5, config)
    assert [k for _, k in timeline] == [SENSOR_DEGRADED, SENSOR_FAILED]


def test_no_alert_before_the_baseline_exists():
    timeline, _ = run_health([1.0, 0.0, 0.0, 0.0, 0.0], AlertConfig(baseline_min_frames=10))
    assert timeline == []


def test_missing_and_stale_raise_on_transition_and_recover():
    engine = AlertEngine(("camera", "lidar"), GRID, AlertConfig())
    fused = np.full(GRID.shape, -5.0)
    comps = {"camera": np.zeros(GRID.shape), "lidar": np.zeros(GRID.shape), "bias": fused}
    energy = {"camera": 1.0, "lidar": 1.0}
    labels = np.zeros(GRID.shape, int)
    steps = [
        ({"camera": True, "lidar": False}, {}),
        ({"camera": True, "lidar": False}, {"cam_front": "stale: last image 0.4 s old"}),
        ({"camera": True, "lidar": True}, {}),
    ]
    seen = [
        [(a.kind, a.modality, a.sensor) for a in engine.update(fused, comps, energy, p, s, [], labels)]
        for p, s in steps
    ]
    assert seen[0] == [(SENSOR_MISSING, "lidar", "")]
    assert seen[1] == [(SENSOR_STALE, "camera", "cam_front")]
    assert sorted(seen[2]) == sorted(
        [(SENSOR_RECOVERED, "lidar", ""), (SENSOR_RECOVERED, "camera", "cam_front")]
    )


def test_stale_alerts_name_the_modality_of_any_sensor_name():
    # sensor names are the user's (topic-derived): the modality comes from the frame, not the name
    engine = AlertEngine(("camera", "radar"), GRID, AlertConfig())
    fused = np.full(GRID.shape, -5.0)
    comps = {"camera": np.zeros(GRID.shape), "radar": np.zeros(GRID.shape), "bias": fused}
    present = {"camera": True, "radar": True}
    alerts = engine.update(
        fused,
        comps,
        {"camera": 1.0, "radar": 1.0},
        present,
        {"front_long_range_points": "no message within 0.06 s", "cam_front": ""},
        [],
        np.zeros(GRID.shape, int),
        sensor_modality={"front_long_range_points": "radar", "cam_front": "camera"},
    )
    assert [(a.kind, a.modality, a.sensor) for a in alerts] == [
        (SENSOR_STALE, "radar", "front_long_range_points")
    ]


def test_bad_alert_config_is_named():
    with pytest.raises(ValueError, match="failed_ratio"):
        AlertConfig(failed_ratio=0.6, degraded_ratio=0.5)
    with pytest.raises(ValueError, match="hysteresis"):
        AlertConfig(hysteresis_k=6, hysteresis_n=5)


def _run_three(activities, present=None):
    """activities: list of dicts modality -> activity, one per frame (present: the same, of
    bools; default all present)."""
    mods = ("camera", "radar", "lidar")
    engine = AlertEngine(mods, GRID, AlertConfig(baseline_window=20, baseline_min_frames=10))
    fused = np.full(GRID.shape, -5.0)
    comps = {m: np.zeros(GRID.shape) for m in mods} | {"bias": fused}
    timeline = []
    for i, act in enumerate(activities):
        here = present[i] if present else {m: True for m in mods}
        for alert in engine.update(fused, comps, act, here, {}, [], np.zeros(GRID.shape, int)):
            timeline.append((i, alert.kind, alert.modality))
    return timeline


def test_a_drop_all_sensors_share_is_no_failure():
    # the car stops: every contribution stops changing at once
    healthy = [{"camera": 1.0, "radar": 0.01, "lidar": 0.1}] * 20
    stopped = [{"camera": 0.05, "radar": 0.0005, "lidar": 0.005}] * 10
    assert _run_three(healthy + stopped + healthy) == []


def test_one_sensor_falling_silent_among_three_fails():
    healthy = [{"camera": 1.0, "radar": 0.01, "lidar": 0.1}] * 20
    # camera activity drops to a third while the others' rise (they take over): relative collapse
    blackout = [{"camera": 0.3, "radar": 0.1, "lidar": 0.8}] * 10
    timeline = _run_three(healthy + blackout + healthy)
    assert timeline[0] == (22, SENSOR_FAILED, "camera")
    assert (32, SENSOR_RECOVERED, "camera") in timeline
    assert all(m == "camera" for _, _, m in timeline)


def test_others_are_not_judged_while_a_modality_is_missing():
    healthy = [{"camera": 1.0, "radar": 0.01, "lidar": 0.1}] * 20
    # LiDAR missing: its features are zero, the radar's contribution collapses with the regime
    outage = [{"camera": 1.0, "radar": 0.0001, "lidar": None}] * 10
    everyone = {"camera": True, "radar": True, "lidar": True}
    present = [everyone] * 20 + [everyone | {"lidar": False}] * 10 + [everyone] * 20
    timeline = _run_three(healthy + outage + healthy, present)
    assert timeline == [(20, SENSOR_MISSING, "lidar"), (30, SENSOR_RECOVERED, "lidar")]
    # the same radar collapse with every sensor present is a failure
    assert (22, SENSOR_FAILED, "radar") in _run_three(healthy + outage + healthy)


def test_a_modality_without_sensors_does_not_stop_the_health_checks():
    # a camera+radar rig on a camera+radar+lidar model: LiDAR never present, never expected
    mods = ("camera", "radar", "lidar")
    engine = AlertEngine(mods, GRID, AlertConfig(baseline_window=20, baseline_min_frames=10))
    fused = np.full(GRID.shape, -5.0)
    comps = {m: np.zeros(GRID.shape) for m in mods} | {"bias": fused}
    healthy, blackout = (
        {"camera": 1.0, "radar": 0.01, "lidar": None},
        {"camera": 0.01, "radar": 0.01, "lidar": None},
    )
    kinds = []
    for act in [healthy] * 20 + [blackout] * 5:
        kinds += [
            (a.kind, a.modality)
            for a in engine.update(
                fused,
                comps,
                act,
                {"camera": True, "radar": True, "lidar": False},
                {},
                [],
                np.zeros(GRID.shape, int),
                expected=("camera", "radar"),
            )
        ]
    assert (SENSOR_FAILED, "camera") in kinds


def test_first_frame_without_activity_is_skipped():
    assert _run_three([{"camera": None, "radar": None, "lidar": None}] * 3) == []
