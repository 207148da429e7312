"""Detections, evidence shares and the alert state machine on hand-made BEV maps (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from ros2_lmd.geometry.grid import BEVGrid
from ros2_lmd.monitor.alerts import AlertConfig, AlertEngine, ModalityHealth
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


# --- ModalityHealth: the k-of-n state machine driven by scripted ratios ---------------------------

OK_, DEGRADED_, FAILED_ = "ok", "degraded", "failed"
HEALTH_CONFIG = AlertConfig(
    degraded_ratio=0.5,
    failed_ratio=0.15,
    baseline_window=10,
    baseline_min_frames=2,
    hysteresis_k=3,
    hysteresis_n=5,
)


def drive(ratios, config=HEALTH_CONFIG, health=None):
    """Feed `relative` ratios (value 1.0) and return (states after each frame, alerts by frame)."""
    health = health or ModalityHealth("camera", config)
    states, alerts = [], {}
    for i, r in enumerate(ratios):
        alert = health.update(1.0, r)
        states.append(health.state)
        if alert is not None:
            alerts[i] = alert.kind
    return states, alerts


def test_ok_to_failed_needs_k_of_the_last_n_below_failed_ratio():
    bad, good = 0.1, 1.0
    # bad at frames 0, 3, 6, 8: every window of the last 5 frames holds at most 2 of them
    # (ending at 4: {0, 3}; at 6: {3, 6}; at 7: {3, 6}; at 8: {6, 8}), so nothing is raised
    states, alerts = drive([bad, good, good, bad, good, good, bad, good, bad])
    assert states == [OK_] * 9 and alerts == {}
    # bad at 0, 2, 4: the window ending at 4 holds all three -> FAILED there, not before, and
    # straight from OK (below failed is also below degraded: FAILED wins)
    states, alerts = drive([bad, good, bad, good, bad])
    assert states == [OK_, OK_, OK_, OK_, FAILED_]
    assert alerts == {4: SENSOR_FAILED}


def test_below_failed_frames_also_count_as_below_degraded():
    # 2 below failed + 1 between failed and degraded: 3 below degraded -> DEGRADED, not FAILED
    states, alerts = drive([1.0, 0.1, 0.3, 0.1])
    assert states == [OK_, OK_, OK_, DEGRADED_] and alerts == {3: SENSOR_DEGRADED}
    # the next failed frame makes 3 below failed in the window -> FAILED
    states, alerts = drive([1.0, 0.1, 0.3, 0.1, 0.05])
    assert states[-1] == FAILED_ and alerts == {3: SENSOR_DEGRADED, 4: SENSOR_FAILED}


def test_failed_never_steps_down_to_degraded_and_clears_to_ok_after_k_healthy():
    between = [0.3, 0.14, 0.16, 0.49, 0.2] * 4  # a fault hovering around the failed ratio
    ratios = [0.05] * 3 + between + [1.0] * 3 + [1.0] * 5
    states, alerts = drive(ratios)
    assert alerts == {2: SENSOR_FAILED, 25: SENSOR_RECOVERED}
    assert states[2:25] == [FAILED_] * 23  # never DEGRADED while the fault lasts
    assert states[25:] == [OK_] * 6
    # clearing needs the last k = 3 frames healthy: 3 healthy of 5 with a bad one between is not
    # enough (an intermittent fault would flap), three in a row are
    states, alerts = drive([0.05] * 3 + [1.0, 1.0, 0.3, 1.0, 1.0, 1.0])
    assert states == [OK_, OK_] + [FAILED_] * 6 + [OK_]


def test_degraded_clears_to_ok_after_k_healthy_or_escalates():
    states, alerts = drive([0.3] * 3 + [0.6, 0.7] + [0.6])
    assert states == [OK_, OK_, DEGRADED_, DEGRADED_, DEGRADED_, OK_]  # healthy 3 of 5 at frame 5
    assert alerts == {2: SENSOR_DEGRADED, 5: SENSOR_RECOVERED}


def test_flicker_with_fewer_than_k_bad_in_any_n_raises_nothing():
    ratios = [1.0, 0.02, 1.0, 1.0, 0.02, 1.0, 1.0, 0.02, 1.0, 1.0, 0.02] * 3  # 2 bad per window at most
    states, alerts = drive(ratios)
    assert alerts == {} and set(states) == {OK_}


def test_a_sensor_bad_every_other_frame_does_not_flap():
    states, alerts = drive([0.02, 1.0] * 10)
    # an intermittent fault is raised once and held (or at least not re-raised every other frame)
    assert list(alerts.values()).count(SENSOR_FAILED) <= 1, alerts


def test_baseline_is_held_while_the_modality_is_degraded_or_failed():
    """Only healthy OK frames teach the baseline: during a fault it stays where it was, so the end
    of the fault raises nothing but SENSOR_RECOVERED."""
    config = AlertConfig(baseline_window=10, baseline_min_frames=5, hysteresis_k=3, hysteresis_n=5)
    health = ModalityHealth("radar", config)
    kinds = []
    for _ in range(10):
        kinds.append(health.update(2.0))  # baseline 2.0 (plain ratio: value / baseline median)
    assert health.baseline_value() == 2.0 and list(health.baseline) == [2.0] * 10
    # a long fault: degraded (0.8 / 2 = 0.4) with some healthy frames inside (1.2 / 2 = 0.6, at most
    # 2 of every 5: it stays degraded), then failed (0.1 / 2 = 0.05), again with healthy frames
    # inside (1.5 / 2 = 0.75, 2 of every 5: the failure goes on)
    fault = [0.8] * 4 + [1.2, 0.8, 0.8, 1.2, 0.8] * 2 + [0.1] * 12 + [1.5, 0.1, 0.1, 1.5, 0.1] * 3
    for value in fault:
        kinds.append(health.update(value))
        assert list(health.baseline) == [2.0] * 10, (value, health.state)  # held: nothing learnt
    assert health.state == ModalityHealth.FAILED
    after = [health.update(v) for v in [2.1, 1.9, 2.0, 2.2, 1.8, 2.0]]
    assert [a.kind for a in kinds if a] == [SENSOR_DEGRADED, SENSOR_FAILED]
    # cleared at the third healthy frame in a row (2.1, 1.9, 2.0), and only that
    assert [a.kind if a else None for a in after] == [None, None, SENSOR_RECOVERED, None, None, None]
    # learning resumes once OK: the clearing frame and the ones after it push out old 2.0s
    assert list(health.baseline) == [2.0] * 6 + [2.0, 2.2, 1.8, 2.0]


def test_baseline_does_not_learn_the_onset_of_a_fault_before_it_is_raised():
    health = ModalityHealth("lidar", AlertConfig(baseline_window=10, baseline_min_frames=5))
    for _ in range(5):
        health.update(1.0)
    health.update(0.3)  # ratio 0.3 < degraded_ratio, state still OK (1 of k = 3)
    health.update(0.9)  # healthy: learnt
    assert health.state == ModalityHealth.OK and list(health.baseline) == [1.0] * 5 + [0.9]


def test_thresholds_are_strict_below():
    # exactly failed_ratio is not "below failed" (-> DEGRADED); exactly degraded_ratio is healthy
    states, alerts = drive([0.15] * 3)
    assert states[-1] == DEGRADED_ and alerts == {2: SENSOR_DEGRADED}
    states, alerts = drive([0.5] * 5)
    assert set(states) == {OK_} and alerts == {}


def test_a_held_frame_teaches_nothing_and_changes_no_state_logic():
    # hold: another source (a sensor's signal checks, the time sync) suspects this modality
    health = ModalityHealth("radar", AlertConfig(baseline_window=10, baseline_min_frames=3))
    for _ in range(3):
        health.update(1.0)
    assert list(health.baseline) == [1.0] * 3
    for value in (3.0, 3.0, 3.0, 3.0):  # radar ghosts: activity surges, ratio 3, no alert
        assert health.update(value, hold=True) is None
    assert list(health.baseline) == [1.0] * 3 and health.state == ModalityHealth.OK
    # the ghosts end: back at 1.0 is ratio 1 against the held baseline, nothing raised
    assert [health.update(1.0) for _ in range(5)] == [None] * 5
    # without the hold, the surge would have been learnt and its end looked like a collapse
    learnt = ModalityHealth("radar", AlertConfig(baseline_window=4, baseline_min_frames=3))
    for value in (1.0, 1.0, 1.0, 3.0, 3.0, 3.0, 3.0):
        learnt.update(value)
    assert [a.kind for a in (learnt.update(1.0) for _ in range(3)) if a] == [SENSOR_DEGRADED]


def test_the_engine_holds_a_modality_whose_sensor_is_left_out_or_named_in_hold():
    mods = ("camera", "radar")
    engine = AlertEngine(mods, GRID, AlertConfig(baseline_window=20, baseline_min_frames=3))
    fused = np.zeros((GRID.ny, GRID.nx), np.float32)
    components = {m: fused for m in (*mods, "bias")}
    labels = np.zeros_like(fused, dtype=np.int32)
    present = {m: True for m in mods}
    sensors = {"cam_front": "camera", "radar_front": "radar"}

    def step(status=None, hold=()):
        engine.update(
            fused,
            components,
            {"camera": 1.0, "radar": 1.0},
            present,
            status or {"cam_front": "", "radar_front": ""},
            [],
            labels,
            sensor_modality=sensors,
            hold=hold,
        )

    for _ in range(3):
        step()
    learnt = {m: len(engine.health[m].baseline) for m in mods}
    step(hold={"radar"})
    step(status={"cam_front": "missing: stamp 0.3 s off", "radar_front": ""})
    assert {m: len(engine.health[m].baseline) for m in mods} == {
        "camera": learnt["camera"] + 1,  # learnt while only the radar was held
        "radar": learnt["radar"] + 1,  # learnt while only the camera's sensor was left out
    }


def test_a_sensors_modality_is_read_from_its_name_whatever_its_case_or_leading_slash():
    from ros2_lmd.monitor.alerts import _modality_of

    names = ["/cam_front", "CAM_BACK", "/radar_front_left", "Radar7", "//lidar_top", "lidar", "imu", "/"]
    assert [_modality_of(n) for n in names] == [
        "camera",
        "camera",
        "radar",
        "radar",
        "lidar",
        "lidar",
        "",
        "",
    ]
