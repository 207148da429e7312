"""Every fault kind the simulator injects, through the monitor as `analyze` runs it (messages in
log-time order, the Ingest, the runner, the Pipeline with the shipped model): one incident, naming
the faulted sensor (or the modality when all its sensors fail), opened within 1.5 s of the onset,
closed after the fault ends with no new sensor alert; and a fault-free drive opens none. The
scorecard over many seeds and 30 fault-free minutes is bench/bench_faults.py."""

from __future__ import annotations

import pytest

from ros2_lmd.models.io import load_model
from ros2_lmd.monitor.params import MonitorParams
from ros2_lmd.monitor.report import SENSOR_DEGRADED, SENSOR_FAILED, SENSOR_MISSING, SENSOR_STALE
from ros2_lmd.replay.analyze import monitor_drive
from ros2_lmd.replay.scoring import score_incidents
from ros2_lmd.sim import SimConfig, default_rig, simulate_drive
from ros2_lmd.sim.faults import expand_faults

pytestmark = pytest.mark.slow  # test/conftest.py: tiers

ONSET_S, END_S, DRIVE_S = 2.5, 4.5, 7.0
SIZE = (224, 128)
RIG = default_rig(*SIZE)
RAISING = (SENSOR_DEGRADED, SENSOR_FAILED, SENSOR_STALE, SENSOR_MISSING)

# (target, kind[:param]): every kind on one sensor, and a whole modality for a few
FAULTS = [
    ("cam_front_left", "blackout"),
    ("cam_back", "glare"),
    ("cam_front_right", "frozen"),
    ("cam_back_left", "night"),
    ("cam_front", "occlusion:0.6"),
    ("cam_back_right", "dropout"),
    ("cam_front", "delay"),
    ("lidar_top", "dropout"),
    ("lidar_top", "sector_dropout"),
    ("lidar_top", "fog"),
    ("lidar_top", "delay"),
    ("radar_back_left", "dropout"),
    ("radar_front", "ghosts:60"),
    ("radar_front_right", "delay"),
    ("camera", "blackout"),
    ("radar", "ghosts:60"),
]


@pytest.fixture(scope="module")
def model():
    return load_model("compact_crl")


def _run(model, seed: int, duration: float, faults: str | None):
    config = SimConfig(camera_width=SIZE[0], camera_height=SIZE[1])
    alerts = []
    run = monitor_drive(
        simulate_drive(seed, duration, 10.0, faults, config),
        model,
        MonitorParams(),
        on_report=lambda report: alerts.extend((report.stamp, a) for a in report.alerts),
    )
    return run, alerts


@pytest.mark.parametrize(("target", "kind"), FAULTS, ids=[f"{t}:{k}" for t, k in FAULTS])
def test_each_fault_kind_is_one_incident_naming_the_sensor(model, target, kind):
    spec = f"{target}:{kind}@{ONSET_S:g}-{END_S:g}"
    run, alerts = _run(model, 3, DRIVE_S, spec)
    # a silent LiDAR (the key sensor) leaves frames to the fallback key: a few fewer; a delayed one
    # goes back 0.3 s in time, and its first sweeps, older than frames built, are counted dropped
    frames = round(DRIVE_S * 10)
    assert frames - 6 <= run.processed + run.dropped <= frames
    assert run.dropped <= (3 if (target, kind) == ("lidar_top", "delay") else 0)
    score = score_incidents(run.incidents, expand_faults(spec, RIG), run.t0, run.sensor_modality)
    described = [i.summary(run.t0) for i in run.incidents]
    (fault,) = score.faults
    assert fault.detected and fault.right_sensor, described
    assert score.false_incidents == [], described
    (incident,) = [i for i in run.incidents if i.sensor == fault.target]
    assert incident.sensor == target and ONSET_S - 0.05 <= incident.start - run.t0 <= ONSET_S + 1.5
    assert incident.end is not None and END_S <= incident.end - run.t0 < DRIVE_S, described
    # nothing raised about any sensor once the fault is over (recoveries only)
    late = [a.message for t, a in alerts if t - run.t0 >= END_S and a.kind in RAISING]
    assert late == []


def test_a_fault_free_drive_opens_no_incident_and_raises_no_sensor_alert(model):
    run, alerts = _run(model, 8, 30.0, None)
    assert run.incidents == [] and run.dropped == 0
    assert [a.message for _, a in alerts if a.kind in RAISING] == []
