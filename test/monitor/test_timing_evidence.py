"""Arrival evidence of the signal checks (SensorChecks._timing): a sensor whose stamps move forward
against its own arrival and the other sensors' (`ahead`: a clock offset or drift), and a sensor whose
messages are lost (`received`: the share of its usual messages that came lately), each naming that sensor and
no other; the same changes on every sensor at once (a machine that is late or stalls) name none. The
FrameAssembler reports each reading's recent arrivals."""

from __future__ import annotations

import numpy as np
import pytest

from ros2_lmd.monitor.sensor_checks import OK, SensorChecks
from ros2_lmd.sensors.frame import CameraImage, SensorFrame
from ros2_lmd.sensors.sync import FrameAssembler, SensorSource
from ros2_lmd.sensors.tf import TransformTree

CAMERAS = ("cam_a", "cam_b", "cam_c")
RADARS = ("radar_a", "radar_b")
PERIOD = 0.1
K = np.array([[50.0, 0, 32], [0, 50.0, 24], [0, 0, 1]])


def _frame(
    i: int, rng: np.random.Generator, lag: dict[str, float], arrivals: dict[str, list[float]], lost: set[str]
) -> SensorFrame:
    """Frame i of a rig of three cameras and two radars with fresh data, every reading stamped at
    the frame's stamp, arriving `lag[sensor]` (default 0.02 s) after it; a sensor in `lost` sends
    nothing this frame. `arrivals`: every sensor's arrival times so far (appended to)."""
    stamp = 100.0 + PERIOD * i
    names = [n for n in CAMERAS + RADARS if n not in lost]
    for name in names:
        arrivals.setdefault(name, []).append(stamp + lag.get(name, 0.02))
    cameras = [
        CameraImage(name, rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), K, np.eye(4), stamp)
        for name in CAMERAS
        if name in names
    ]
    points = {name: rng.normal(0, 10, (12, 6)).astype(np.float32) for name in RADARS if name in names}
    return SensorFrame(
        stamp=stamp,
        cameras=cameras,
        sensor_points=points,
        sensor_modality={**{n: "camera" for n in CAMERAS}, **{n: "radar" for n in RADARS}},
        sensor_latency={n: lag.get(n, 0.02) for n in names},
        sensor_stamps={n: stamp for n in names},
        sensor_arrivals={n: tuple(arrivals[n][-32:]) for n in names},
    )


def _run(onset: int, frames: int, lag: dict[str, float] | None = None, lose=None):
    """Every sensor's state (its last verdict) and evidence after `frames` frames, `lag` from frame
    `onset` on, and from there the sensors `lose(i)` send nothing in frame i."""
    rng = np.random.default_rng(0)
    checks = SensorChecks()
    evidence: dict[str, set[str]] = {}
    arrivals: dict[str, list[float]] = {}
    states: dict[str, str] = {}
    for i in range(frames):
        after = i >= onset
        lost = lose(i) if after and lose else set()
        verdicts = checks.update(_frame(i, rng, lag if after and lag else {}, arrivals, lost))
        for name, verdict in verdicts.items():
            evidence.setdefault(name, set()).update(e.feature for e in verdict.evidence)
            states[name] = verdict.state
    return states, evidence


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


def test_a_sensor_that_loses_messages_is_named_and_a_stalled_machine_is_not():
    states, evidence = _run(30, 45, lose=lambda i: {"radar_b"} if i % 2 else set())  # every other one
    assert states["radar_b"] != OK and evidence["radar_b"] == {"received"}, evidence
    assert {s for n, s in states.items() if n != "radar_b"} == {OK}
    # bursts: 4 messages lost in every 8 (a loose connector)
    states, evidence = _run(30, 45, lose=lambda i: {"cam_a"} if i % 8 < 4 else set())
    assert states["cam_a"] != OK and "received" in evidence["cam_a"], evidence
    # every sensor loses every other message (the node's executor starved, a slow bag read): nobody
    states, evidence = _run(30, 45, lose=lambda i: set(CAMERAS + RADARS) if i % 2 else set())
    assert set(states.values()) == {OK}, evidence


def test_one_lost_message_is_within_a_sensor_s_normal_life():
    states, evidence = _run(30, 45, lose=lambda i: {"cam_c"} if i == 35 else set())
    assert set(states.values()) == {OK}, evidence


def test_the_frame_assembler_reports_each_reading_with_its_sensor_s_recent_arrivals():
    sources = [SensorSource("lidar", "lidar"), SensorSource("radar", "radar")]
    tree = TransformTree.from_matrices({"lidar": np.eye(4), "radar": np.eye(4)})
    assembler = FrameAssembler(sources, 0.05, tree, key_sensor="lidar")
    radar = np.zeros((3, 6), np.float32)
    lidar = np.zeros((10, 4), np.float32)
    arrivals = {"radar": [0.01, 0.11, 0.31], "lidar": [0.02, 0.12, 0.32]}  # the third message lost
    for k, stamp in enumerate((0.0, 0.1, 0.3)):
        assembler.add("radar", stamp, radar, arrival=arrivals["radar"][k])
        assembler.add("lidar", stamp, lidar, arrival=arrivals["lidar"][k])
    frames = [f for f in assembler.flush() if isinstance(f, SensorFrame)]
    assert [f.sensor_arrivals for f in frames] == [
        {name: tuple(times[: k + 1]) for name, times in arrivals.items()} for k in range(3)
    ]


def test_a_sensor_back_from_a_silence_is_not_judged_on_the_messages_of_the_silence():
    """A silence longer than the window (2 s of a 1 s window) is the time sync's to report (silent);
    the messages the sensor did not send in it are no loss once it is back."""
    states, evidence = _run(30, 70, lose=lambda i: {"cam_a"} if i < 50 else set())
    assert "received" not in evidence["cam_a"], evidence
    assert set(states.values()) == {OK}


@pytest.mark.parametrize("ahead_sensor", ["radar_a", "lidar"])
def test_a_sensor_stamped_ahead_of_the_others_is_named_and_does_not_leave_them_out(ahead_sensor):
    """One sensor's stamps 0.5 s ahead of its arrival (a clock offset), a non-key radar or the key
    LiDAR itself: the time sync still waits for the other sensors' readings (each stamp trusted as
    far as its lag agrees with the others', FrameAssembler._trusted_newest), so every other sensor
    stays in every frame; the checks name the sensor ahead and no other. Counted as stamped, the
    stamp 0.5 s ahead built each frame before the others' readings came in, and all were missing."""
    radars = ("radar_a", "radar_b", "radar_c")
    sources = [SensorSource("lidar", "lidar")] + [SensorSource(n, "radar") for n in radars]
    tree = TransformTree.from_matrices({n: np.eye(4) for n in ("lidar", *radars)})
    assembler = FrameAssembler(sources, 0.05, tree, key_sensor="lidar", max_delay_s=0.3)
    rng = np.random.default_rng(0)
    checks = SensorChecks()
    onset, offset = 30, 0.5
    states: dict[str, str] = {}
    evidence: dict[str, set[str]] = {}
    for i in range(50):
        stamp = 100.0 + PERIOD * i
        arrival = stamp + 0.02
        for name in (*radars, "lidar"):
            points = rng.normal(0, 10, (200, 4) if name == "lidar" else (12, 6)).astype(np.float32)
            shift = offset if i >= onset and name == ahead_sensor else 0.0
            assembler.add(name, stamp + shift, points, arrival=arrival)
        for frame in assembler.pop_ready(now_stamp=arrival):
            assert isinstance(frame, SensorFrame)
            left_out = {n for n, reason in frame.sensor_status.items() if reason}
            assert left_out <= {ahead_sensor} - {"lidar"}, (frame.stamp, frame.sensor_status)
            for name, verdict in checks.update(frame).items():
                states[name] = verdict.state
                evidence.setdefault(name, set()).update(e.feature for e in verdict.evidence)
    assert states[ahead_sensor] != OK and "ahead" in evidence[ahead_sensor], evidence
    assert {s for n, s in states.items() if n != ahead_sensor} == {OK}, evidence
