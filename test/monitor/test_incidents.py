"""Incidents: one fault, one incident (opened once after a few consecutive frames of evidence,
started at the first of them, closed once the evidence is gone), a whole modality's fault as one
incident, and per-object alerts digested so that a model's habit is one line per window."""

from __future__ import annotations

import pytest

from ros2_lmd.monitor.alerts import ObjectAlertDigest
from ros2_lmd.monitor.incidents import (
    CLOSED,
    ESCALATED,
    OPENED,
    Evidence,
    IncidentTracker,
    evidence_from_frame,
)
from ros2_lmd.monitor.report import (
    ERROR,
    MODALITY_DISAGREEMENT,
    SENSOR_FAILED,
    SINGLE_SENSOR_SUPPORT,
    WARN,
    Alert,
)

SENSORS = {"cam_front": "camera", "cam_back": "camera", "radar_front": "radar", "lidar_top": "lidar"}


def _run(tracker: IncidentTracker, timeline):
    """timeline: stamp -> evidence list; returns (stamp, change, sensor) of every change."""
    changes = []
    for stamp, evidence in timeline:
        for change in tracker.update(stamp, round(stamp * 1e9), evidence):
            changes.append((round(stamp, 3), change.change, change.incident.sensor))
    return changes


def _frames(start, end, evidence_at):
    return [
        (round(i * 0.1, 3), evidence_at(round(i * 0.1, 3))) for i in range(int(start * 10), int(end * 10))
    ]


def frozen(sensor="cam_front", severity=WARN):
    return Evidence(sensor, SENSORS.get(sensor, sensor), "frozen", severity, f"{sensor} image frozen")


def test_one_fault_is_one_incident_started_at_its_first_evidence():
    tracker = IncidentTracker(SENSORS, clear_after_s=0.5, open_after_frames=3)
    changes = _run(tracker, _frames(0, 6, lambda t: [frozen()] if 2.0 <= t < 4.0 else []))
    assert changes == [(2.2, OPENED, "cam_front"), (4.4, CLOSED, "cam_front")]  # 0.5 s after 3.9
    (incident,) = tracker.incidents
    assert (incident.start, incident.end, incident.frames) == (2.0, 4.4, 18)
    assert incident.summary().startswith("cam_front: 2.0-4.4 s WARN [frozen]")


def test_a_blip_shorter_than_open_after_frames_opens_nothing():
    tracker = IncidentTracker(SENSORS, open_after_frames=3)
    assert _run(tracker, _frames(0, 3, lambda t: [frozen()] if t in (1.0, 1.1, 1.5, 1.6) else [])) == []


def test_evidence_getting_worse_escalates_the_same_incident():
    tracker = IncidentTracker(SENSORS, open_after_frames=1)
    timeline = _frames(0, 2, lambda t: [frozen(severity=ERROR if t >= 0.5 else WARN)] if t < 1.0 else [])
    assert _run(tracker, timeline) == [
        (0.0, OPENED, "cam_front"),
        (0.5, ESCALATED, "cam_front"),
        (1.5, CLOSED, "cam_front"),
    ]
    assert len(tracker.incidents) == 1 and tracker.incidents[0].peak_severity == ERROR


def test_every_sensor_of_a_modality_at_once_is_one_modality_incident():
    tracker = IncidentTracker(SENSORS, open_after_frames=2)
    both = lambda t: [frozen("cam_front"), frozen("cam_back")] if t < 1.0 else []  # noqa: E731
    changes = _run(tracker, _frames(0, 2, both))
    assert changes == [(0.1, OPENED, "camera"), (1.5, CLOSED, "camera")]
    assert tracker.incidents[0].sensors == ("cam_front", "cam_back")
    # the modality's own evidence (its contribution collapsed) joins the open modality incident
    tracker = IncidentTracker(SENSORS, open_after_frames=1)
    timeline = [(0.0, both(0.0)), (0.1, [Evidence("camera", "camera", "contribution", ERROR, "collapsed")])]
    _run(tracker, timeline)
    assert len(tracker.incidents) == 1 and tracker.incidents[0].kinds == ["contribution", "frozen"]


def test_two_sensors_of_different_modalities_are_two_incidents():
    tracker = IncidentTracker(SENSORS, open_after_frames=1)
    timeline = [(0.0, [frozen("cam_front"), Evidence("radar_front", "radar", "ghosts", WARN, "ghosts")])]
    assert sorted(c[2] for c in _run(tracker, timeline)) == ["cam_front", "radar_front"]


def test_time_going_back_or_close_all_ends_open_incidents():
    tracker = IncidentTracker(SENSORS, open_after_frames=1)
    _run(tracker, [(5.0, [frozen()])])
    (change,) = tracker.close_all(5.1, 5_100_000_000)
    assert change.change == CLOSED and change.incident.end == 5.1 and not tracker.open_incidents()


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="open_after_frames"):
        IncidentTracker(SENSORS, open_after_frames=0)


def test_evidence_from_the_time_sync_and_the_decomposition():
    evidence = evidence_from_frame(
        {"cam_front": "", "radar_front": "no message within 0.06 s of key stamp", "lidar_top": "silent: ..."},
        SENSORS,
        {"camera": "failed", "radar": "ok", "lidar": "degraded"},
        {"camera": 0.1, "lidar": 0.4},
    )
    assert [(e.sensor, e.kind, e.severity) for e in evidence] == [
        ("radar_front", "missing", WARN),
        ("lidar_top", "silent", ERROR),
        ("camera", "contribution", ERROR),
        ("lidar", "contribution", WARN),
    ]
    assert "10% of its baseline" in evidence[2].detail


def test_per_object_alerts_become_one_line_per_kind_and_window():
    digest = ObjectAlertDigest(window_s=10.0, min_frames=5)
    lines = []
    for i in range(300):  # 30 s at 10 Hz, two lidar-only objects in every frame
        stamp = i * 0.1
        alerts = [
            Alert(SINGLE_SENSOR_SUPPORT, WARN, "lidar", "object"),
            Alert(SINGLE_SENSOR_SUPPORT, WARN, "lidar", "o"),
        ]
        if i == 100:
            alerts.append(Alert(SENSOR_FAILED, ERROR, "camera", "camera failing"))
        if i % 50 == 0:
            alerts.append(Alert(MODALITY_DISAGREEMENT, WARN, "radar", "contradiction"))  # too rare
        lines += [(round(stamp, 1), a.kind, a.modality, a.message) for a in digest.update(stamp, alerts)]
    single = [line for line in lines if line[1] == SINGLE_SENSOR_SUPPORT]
    assert [line[0] for line in single] == [0.4, 10.4, 20.4]  # once held in 5 frames, then per window
    assert single[0][3].startswith("10 objects seen by lidar alone in 5 frames over 0.4 s")
    assert [line[1] for line in lines if line[1] != SINGLE_SENSOR_SUPPORT] == [
        SENSOR_FAILED
    ]  # passes through


SIX = {f"cam_{i}": "camera" for i in range(6)} | {"lidar_top": "lidar"}


def _camera_evidence(names, kind="brightness"):
    return [Evidence(n, "camera", kind, ERROR, f"{n} dimmed") for n in names]


def _contribution():
    return Evidence("camera", "camera", "contribution", WARN, "camera contribution degraded")


def test_half_of_a_modalitys_sensors_at_once_is_one_incident_of_the_modality_naming_them():
    tracker = IncidentTracker(SIX, clear_after_s=0.5, open_after_frames=3)
    three = ["cam_0", "cam_2", "cam_4"]
    changes = _run(tracker, _frames(0, 3, lambda t: _camera_evidence(three) if 1.0 <= t < 2.0 else []))
    assert changes == [(1.2, OPENED, "camera"), (2.4, CLOSED, "camera")]
    (incident,) = tracker.incidents
    assert incident.sensors == tuple(three) and incident.who == "camera (3 sensors)"
    # two of six are two faults, each its own incident
    tracker = IncidentTracker(SIX, clear_after_s=0.5, open_after_frames=3)
    changes = _run(tracker, _frames(0, 2, lambda t: _camera_evidence(["cam_1", "cam_3"]) if t >= 1.0 else []))
    assert sorted(c[2] for c in changes) == ["cam_1", "cam_3"]


def test_a_modality_contribution_collapse_with_one_faulty_sensor_is_that_sensors_incident():
    tracker = IncidentTracker(SIX, clear_after_s=0.5, open_after_frames=3)

    def evidence(t):
        return [*_camera_evidence(["cam_5"], "black_fraction"), _contribution()] if 1.0 <= t < 2.0 else []

    changes = _run(tracker, _frames(0, 3, evidence))
    assert changes == [(1.2, OPENED, "cam_5"), (2.4, CLOSED, "cam_5")]
    assert tracker.incidents[0].kinds == ["black_fraction", "contribution"]
    # the contribution alone, no sensor to blame: the modality's incident
    tracker = IncidentTracker(SIX, clear_after_s=0.5, open_after_frames=3)
    changes = _run(tracker, _frames(0, 3, lambda t: [_contribution()] if 1.0 <= t < 2.0 else []))
    assert changes == [(1.2, OPENED, "camera"), (2.4, CLOSED, "camera")]


def test_a_sensor_incident_open_before_its_modalitys_keeps_its_own_evidence_until_it_ends():
    tracker = IncidentTracker(SIX, clear_after_s=0.5, open_after_frames=3)

    def evidence(t):
        names = ["cam_0"] if t < 2.0 else [f"cam_{i}" for i in range(6)]
        return _camera_evidence(names) if 1.0 <= t < 3.0 else []

    changes = _run(tracker, _frames(0, 4, evidence))
    assert changes == [
        (1.2, OPENED, "cam_0"),
        (2.2, OPENED, "camera"),
        (3.4, CLOSED, "cam_0"),
        (3.4, CLOSED, "camera"),
    ]
    assert tracker.incidents[1].sensors == tuple(f"cam_{i}" for i in range(1, 6))
