"""Faults nobody tuned for (issue #24): kinds of the corruption library's HELD-OUT set
(ros2_lmd.corrupt.registry.HELD_OUT, docs/incidents.md; no evidence was developed on them), one or
more per modality, written into a clean simulated bag by `corrupt_bag` and run through the monitor
as `analyze` runs a bag (replay.analyze.monitor_bag: the Ingest, the time sync, the runner, the
Pipeline with the shipped model). Each opens an incident naming the corrupted sensor within 2 s of
its onset and nothing else; the clean bag opens none. The scorecard over every kind is
bench/bench_faults.py --corrupt."""

from __future__ import annotations

import pytest

from ros2_lmd.corrupt.registry import HELD_OUT
from ros2_lmd.models.io import load_model
from ros2_lmd.monitor.params import MonitorParams
from ros2_lmd.replay.analyze import monitor_bag
from ros2_lmd.replay.corrupt import Fault, corrupt_bag
from ros2_lmd.replay.scoring import score_incidents
from ros2_lmd.replay.simulate import simulate_to_bag
from ros2_lmd.sim.faults import read_faults_csv

pytestmark = pytest.mark.slow  # test/conftest.py: tiers

ONSET_S, END_S, DRIVE_S = 3.0, 6.0, 8.0
# (sensor, held-out kind): every sort of evidence (image content, arrival, stamps, geometry of points)
# and every modality, at the default severity (3)
CASES = [
    ("cam_front_left", "camera", "shot_noise"),
    ("cam_back", "camera", "clock_drift"),
    ("lidar_top", "lidar", "beam_missing"),
    ("lidar_top", "lidar", "rate_drop"),
    ("radar_front_right", "radar", "intermittent"),
    ("radar_back_left", "radar", "clock_drift"),
]


@pytest.fixture(scope="module")
def model():
    return load_model("compact_crl")


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    out = tmp_path_factory.mktemp("clean") / "drive"
    simulate_to_bag(out, duration_s=DRIVE_S, seed=4, camera_size=(224, 128), progress=False)
    return out


def test_the_cases_are_held_out_kinds():
    for _, modality, kind in CASES:
        assert kind in HELD_OUT[modality], (modality, kind)
    assert {modality for _, modality, _ in CASES} == set(HELD_OUT)


def test_the_clean_bag_opens_no_incident(model, clean):
    run = monitor_bag(clean, model, MonitorParams())
    assert [i.summary(run.t0) for i in run.incidents] == []


@pytest.mark.parametrize(("sensor", "modality", "kind"), CASES, ids=[f"{s}:{k}" for s, _, k in CASES])
def test_a_held_out_kind_opens_an_incident_naming_the_sensor(model, clean, tmp_path, sensor, modality, kind):
    result = corrupt_bag(clean, tmp_path / "corrupted", [Fault(sensor, kind, 3, ONSET_S, END_S)], seed=3)
    run = monitor_bag(result.bag, model, MonitorParams())
    score = score_incidents(
        run.incidents, read_faults_csv(result.faults_csv), run.t0, run.sensor_modality, within_s=2.0
    )
    described = [i.summary(run.t0) for i in run.incidents]
    (fault,) = score.faults
    assert fault.detected and fault.right_sensor, described
    assert score.false_incidents == [], described
