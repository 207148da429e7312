"""Arrival evidence of the signal checks (SensorChecks._timing): a sensor whose stamps move forward
against its own arrival and the other sensors' (`ahead`: a clock offset or drift), and a sensor whose
messages are lost (`gap_ratio`: its arrival gaps against its own history), each naming that sensor and
no other; the same changes on every sensor at once (a machine that is late or stalls) name none. The
FrameAssembler measures the arrival gaps it reports."""

from __future__ import annotations

import numpy as np
import pytest

from ros2_lmd.monitor.sensor_checks import OK, SUSPECT, SensorChecks
from ros2_lmd.sensors.frame import CameraImage, SensorFrame
from ros2_lmd.sensors.sync import FrameAssembler, SensorSource
from ros2_lmd.sensors.tf import TransformTree

CAMERAS = ("cam_a", "cam_b", "cam_c")
RADARS = ("radar_a", "radar_b")
PERIOD = 0.1
K = np.array([[50.0, 0, 32], [0, 50.0, 24], [0, 0, 1]])


def _frame(i: int, rng: np.random.Generator, lag: dict[str, float], gap: dict[str, float]) -> SensorFrame:
    """Frame i of a rig of three cameras and two radars with fresh data, every reading stamped at
    the frame's stamp, arriving `lag[sensor]` (default 0.02 s) after it, `gap[sensor]` (default one
    period) after the sensor's previous message."""
    stamp = 100.0 + PERIOD * i
    cameras = [
        CameraImage(name, rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), K, np.eye(4), stamp)
        for name in CAMERAS
    ]
    points = {name: rng.normal(0, 10, (12, 6)).astype(np.float32) for name in RADARS}
    names = CAMERAS + RADARS
    return SensorFrame(
        stamp=stamp,
        cameras=cameras,
        sensor_points=points,
        sensor_modality={**{n: "camera" for n in CAMERAS}, **{n: "radar" for n in RADARS}},
        sensor_latency={n: lag.get(n, 0.02) for n in names},
        sensor_stamps={n: stamp for n in names},
        sensor_arrival_gaps={n: gap.get(n, PERIOD) for n in names},
    )


def _run(onset: int, frames: int, lag: dict[str, float] | None = None, gap: dict[str, float] | None = None):
    """Every sensor's state and evidence after `frames` frames, `lag` / `gap` from frame `onset` on."""
    rng = np.random.default_rng(0)
    checks = SensorChecks()
    evidence: dict[str, set[str]] = {}
    for i in range(frames):
        after = i >= onset
        verdicts = checks.update(_frame(i, rng, lag if after and lag else {}, gap if after and gap else {}))
        for name, verdict in verdicts.items():
            evidence.setdefault(name, set()).update(e.feature for e in verdict.evidence)
    return {name: v.state for name, v in verdicts.items()}, evidence


@pytest.mark.parametrize("offset", [0.1, 0.3])
def test_a_stamp_moved_forward_names_that_sensor_and_makes_no_other_late(offset):
    # the stamp `offset` s later at the same arrival: its lag falls by offset
    states, evidence = _run(30, 40, lag={"cam_b": 0.02 - offset})
    assert states["cam_b"] != OK and "ahead" in evidence["cam_b"]
    others = {n: s for n, s in states.items() if n != "cam_b"}
    assert set(others.values()) == {OK}, evidence  # nobody else late, although cam_b is now freshest


def test_every_sensor_later_or_earlier_at_once_is_no_sensor_fault():
    for lag in (0.3, -0.2):  # a loaded machine; a replay whose clock moved
        states, evidence = _run(30, 40, lag={n: lag for n in CAMERAS + RADARS})
        assert set(states.values()) == {OK}, evidence


def test_a_sensor_that_loses_every_other_message_is_named_and_a_stalled_machine_is_not():
    states, evidence = _run(30, 40, gap={"radar_b": 2 * PERIOD})
    assert states["radar_b"] == SUSPECT and evidence["radar_b"] == {"gap_ratio"}
    assert {s for n, s in states.items() if n != "radar_b"} == {OK}
    # one message in four: failed
    states, evidence = _run(30, 40, gap={"cam_a": 4 * PERIOD})
    assert states["cam_a"] != OK and "gap_ratio" in evidence["cam_a"]
    # every sensor's gaps twice as long (the node's executor stalled, a slow bag read): nobody
    states, evidence = _run(30, 40, gap={n: 2 * PERIOD for n in CAMERAS + RADARS})
    assert set(states.values()) == {OK}, evidence


def test_a_gap_within_the_sensor_s_own_jitter_is_not_evidence():
    """A sensor whose gaps normally swing between 0.05 and 0.15 s: 0.18 s is within its robust
    spread times min_z, although it is 1.8 times its median."""
    rng = np.random.default_rng(1)
    checks = SensorChecks()
    jitter = np.random.default_rng(2)
    for i in range(60):
        gap = {"cam_a": 0.18 if i >= 40 else float(jitter.uniform(0.05, 0.15))}
        verdicts = checks.update(_frame(i, rng, {}, gap))
    assert verdicts["cam_a"].state == OK
    assert "gap_ratio" in verdicts["cam_a"].features and verdicts["cam_a"].features["gap_ratio"] == 1.0


def test_the_frame_assembler_reports_each_reading_s_gap_to_its_sensor_s_previous_arrival():
    sources = [SensorSource("lidar", "lidar", "lidar"), SensorSource("radar", "radar", "radar")]
    tree = TransformTree.from_matrices({"lidar": np.eye(4), "radar": np.eye(4)})
    assembler = FrameAssembler(sources, 0.05, tree, key_sensor="lidar")
    radar = np.zeros((3, 6), np.float32)
    lidar = np.zeros((10, 4), np.float32)
    arrivals = {"radar": [0.01, 0.11, 0.31], "lidar": [0.02, 0.12, 0.32]}  # the second message lost
    for k in range(3):
        stamp = (0.0, 0.1, 0.3)[k]
        assembler.add("radar", stamp, radar, arrival=arrivals["radar"][k])
        assembler.add("lidar", stamp, lidar, arrival=arrivals["lidar"][k])
    frames = [f for f in assembler.flush() if isinstance(f, SensorFrame)]
    assert [f.sensor_arrival_gaps for f in frames] == [
        {},
        {"radar": pytest.approx(0.1), "lidar": pytest.approx(0.1)},
        {"radar": pytest.approx(0.2), "lidar": pytest.approx(0.2)},
    ]
