"""Per-sensor signal checks (ros2_lmd.monitor.sensor_checks) against the simulator's fault injection:
every signal-visible fault kind, on one sensor and, where a modality has several, on all of them,
is flagged on exactly the faulted sensors within 1.5 s of its onset and clears after its end without
a new alarm; fault-free driving raises nothing; the same frames give the same verdicts; and the time
sync records each point sensor's own points (SensorFrame.sensor_points) as the checks need them.

Dropout and delay are not here: a silent or late sensor is missing from the frame and reported by
the time sync (SensorFrame.sensor_status, test_sensors_tf_sync.py) and sensors/stamps.py.

Speed: small camera images, 7 s drives (a fault at 2.5-5 s). A faulted drive renders only the faulted
modality: the simulator keeps every other sensor bit-identical under a fault and the checks are per
sensor, so the other modalities' verdicts are those of the same seed's fault-free drive, which
`test_the_faulted_drives_seed_without_faults_raises_nothing` checks with every sensor rendered."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.properties import examples

from ros2_lmd.monitor.sensor_checks import (
    FAILED,
    OK,
    STATES,
    SUSPECT,
    SensorCheckConfig,
    SensorChecks,
    SensorVerdict,
)
from ros2_lmd.monitor.signal_features import isolated_count, noise_level, singleton_count
from ros2_lmd.sensors import FrameAssembler, TransformTree
from ros2_lmd.sensors.camera_info import CameraCalibration
from ros2_lmd.sensors.frame import CameraImage, SensorFrame
from ros2_lmd.sim import (
    SimConfig,
    default_rig,
    parse_fault_spec,
    radar_to_base,
    simulate_drive,
)

WIDTH, HEIGHT = 128, 72  # small cameras, the simulator's aspect ratio
SEED = 5
DRIVE_S, ONSET_S, END_S = 7.0, 2.5, 5.0
DETECT_WITHIN_S = 1.5
CLEAR_WITHIN_S = 1.5
RIG = default_rig(WIDTH, HEIGHT)


def run_drive(
    seed: int, duration: float, faults: str | None, modalities: tuple[str, ...] | None = None
) -> list[tuple[float, dict[str, SensorVerdict]]]:
    """(t, verdicts) per frame of a simulated drive at 10 Hz."""
    modalities = modalities or ("camera", "radar", "lidar")
    config = SimConfig(camera_width=WIDTH, camera_height=HEIGHT, modalities=modalities)
    spec = parse_fault_spec(faults, RIG) if faults else None
    checks = SensorChecks()
    return [
        (f.t, checks.update(f.to_sensor_frame())) for f in simulate_drive(seed, duration, 10.0, spec, config)
    ]


def raises(run: list[tuple[float, dict[str, SensorVerdict]]]) -> list[tuple[float, str, str]]:
    """(t, sensor, state) of every move to a worse state."""
    return [(t, name, v.state) for t, verdicts in run for name, v in verdicts.items() if v.raised]


# (spec target, kind[:param], modality) — one sensor, then the whole modality where it has several.
FAULTS = [
    ("cam_front_left", "blackout", "camera"),
    ("camera", "blackout", "camera"),
    ("cam_back", "glare", "camera"),
    ("camera", "glare", "camera"),
    ("cam_front_right", "frozen", "camera"),
    ("camera", "frozen", "camera"),
    ("cam_back_left", "night", "camera"),
    ("camera", "night", "camera"),
    ("cam_front", "occlusion:0.6", "camera"),
    ("camera", "occlusion:0.6", "camera"),
    ("lidar_top", "sector_dropout", "lidar"),
    ("lidar_top", "fog", "lidar"),
    ("radar_back_right", "ghosts:60", "radar"),
    ("radar", "ghosts:60", "radar"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("target", "kind", "modality"), FAULTS, ids=[f"{t}:{k}" for t, k, _ in FAULTS])
def test_fault_is_flagged_on_exactly_the_faulted_sensors_and_clears(target, kind, modality):
    run = run_drive(SEED, DRIVE_S, f"{target}:{kind}@{ONSET_S:g}-{END_S:g}", (modality,))
    faulted = {s.name for s in RIG.of_modality(target)} if target == modality else {target}
    raised = raises(run)
    assert {name for _, name, _ in raised} == faulted, raised
    for name in sorted(faulted):
        states = [(t, v[name]) for t, v in run]
        first = next(t for t, v in states if v.state != OK)
        assert ONSET_S <= first <= ONSET_S + DETECT_WITHIN_S, (name, first)
        flagged = next(v for t, v in states if t == first)
        assert flagged.state in (SUSPECT, FAILED) and flagged.evidence
        assert name in flagged.summary() and flagged.evidence[0].text in flagged.summary()
        # ok again soon after the end, and nothing raised after the end
        cleared = next(t for t, v in states if t >= END_S and v.cleared)
        assert cleared <= END_S + CLEAR_WITHIN_S, (name, cleared)
        assert all(v.state == OK for t, v in states if t >= cleared)
    assert all(t < END_S for t, _, _ in raised)


@pytest.mark.slow
def test_the_faulted_drives_seed_without_faults_raises_nothing():
    run = run_drive(SEED, DRIVE_S, None)
    assert raises(run) == []
    last = run[-1][1]
    assert len(last) == len(RIG.sensors) and all(v.observed and v.state == OK for v in last.values())


@pytest.mark.slow
def test_a_minute_of_fault_free_driving_raises_nothing():
    assert raises(run_drive(11, 60.0, None)) == []


def test_baseline_is_held_while_faulted_and_the_fault_is_not_learnt():
    run = run_drive(SEED, DRIVE_S, f"lidar_top:fog@{ONSET_S:g}-{END_S:g}", ("lidar",))
    frames = {round(t, 1): v["lidar_top"].baseline_frames for t, v in run}
    learnt_before = frames[ONSET_S - 0.1]
    assert frames[END_S] == learnt_before  # nothing learnt while fogged, nor right after
    verdict = next(v["lidar_top"] for t, v in run if abs(t - (ONSET_S + 1.0)) < 1e-6)
    assert verdict.state == FAILED
    assert verdict.evidence[0].feature == "near_clutter" and verdict.evidence[0].baseline is not None
    assert "baseline" in verdict.evidence[0].text and verdict.measures["near_clutter"] > 8


def _camera_frame(stamp: float, image: np.ndarray, name: str = "cam") -> SensorFrame:
    K = np.array([[50.0, 0, 32], [0, 50.0, 24], [0, 0, 1]])
    return SensorFrame(stamp=stamp, cameras=[CameraImage(name, image, K, np.eye(4), stamp)])


def test_absolute_checks_need_no_baseline():
    black = SensorChecks()
    rng = np.random.default_rng(0)
    states = [
        black.update(_camera_frame(0.1 * i, rng.integers(0, 4, (48, 64, 3), dtype=np.uint8)))["cam"]
        for i in range(4)
    ]
    assert [v.state for v in states] == [OK, OK, FAILED, FAILED]  # 3 of 5 frames: the third
    assert states[2].evidence[0].feature == "black_fraction" and states[2].evidence[0].baseline is None
    frozen = SensorChecks()
    image = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    states = [frozen.update(_camera_frame(0.1 * i, image))["cam"].state for i in range(5)]
    assert states == [OK, OK, OK, FAILED, FAILED]  # the first frame has nothing to compare with


def test_missing_sensor_keeps_its_state_and_stale_or_epoch_changes_are_handled():
    checks = SensorChecks()
    rng = np.random.default_rng(1)
    for i in range(3):
        checks.update(_camera_frame(0.1 * i, np.zeros((48, 64, 3), np.uint8)))
    assert checks.states == {"cam": FAILED}
    silent = checks.update(SensorFrame(stamp=0.35, cameras=[]))["cam"]
    assert not silent.observed and silent.state == FAILED and not silent.changed
    assert "no data" in silent.summary()
    # a frame stamped before the last one changes nothing
    again = checks.update(_camera_frame(0.2, rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)))["cam"]
    assert again.state == FAILED and not again.observed
    # a new time epoch (bag loop) starts every sensor afresh
    fresh = checks.update(
        dataclasses.replace(
            _camera_frame(0.0, rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)), time_epoch=1
        )
    )["cam"]
    assert fresh.state == OK and fresh.baseline_frames == 1


def _two_camera_frame(stamp: float, rng: np.random.Generator, latency: dict[str, float]) -> SensorFrame:
    K = np.array([[50.0, 0, 32], [0, 50.0, 24], [0, 0, 1]])
    cameras = [
        CameraImage(name, rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), K, np.eye(4), stamp)
        for name in ("cam_a", "cam_b")
    ]
    return SensorFrame(stamp=stamp, cameras=cameras, sensor_latency=latency)


def test_a_sensor_whose_data_lags_the_others_is_late_and_a_machine_late_for_all_is_not():
    config = SensorCheckConfig()
    checks = SensorChecks(config)
    rng = np.random.default_rng(3)
    jitter = lambda: float(rng.uniform(0.0, 0.02))  # noqa: E731
    for i in range(config.baseline_min_frames + 5):  # healthy history: both within 20 ms
        verdicts = checks.update(_two_camera_frame(0.1 * i, rng, {"cam_a": jitter(), "cam_b": jitter()}))
    assert checks.states == {"cam_a": OK, "cam_b": OK}
    t = 0.1 * (config.baseline_min_frames + 5)
    # the whole machine 0.5 s late (a loaded executor): every sensor equally, no sensor fault
    for i in range(6):
        verdicts = checks.update(_two_camera_frame(t + 0.1 * i, rng, {"cam_a": 0.5, "cam_b": 0.51}))
    assert checks.states == {"cam_a": OK, "cam_b": OK}
    t += 0.6
    # cam_b 0.3 s behind cam_a: late, named, failed (over latency_rise_failed)
    states = []
    for i in range(config.raise_n):
        verdicts = checks.update(_two_camera_frame(t + 0.1 * i, rng, {"cam_a": 0.01, "cam_b": 0.31}))
        states.append(verdicts["cam_b"].state)
    assert states[config.raise_k - 1] == FAILED and verdicts["cam_a"].state == OK
    (finding,) = [e for e in verdicts["cam_b"].evidence if e.feature == "latency"]
    assert finding.value == pytest.approx(0.30) and "late data" in finding.text and " s " in finding.text


def test_config_refuses_inconsistent_thresholds():
    with pytest.raises(ValueError, match="raise_k"):
        SensorCheckConfig(raise_k=6, raise_n=5)
    with pytest.raises(ValueError, match="dim"):
        SensorCheckConfig(dim_suspect=0.2, dim_failed=0.3)
    with pytest.raises(ValueError, match="baseline_min_frames"):
        SensorCheckConfig(baseline_min_frames=200)
    assert SensorCheckConfig().raise_k == 3


def test_feature_helpers():
    rng = np.random.default_rng(2)
    grey = np.clip(100 + rng.normal(0, 3, (200, 300)), 0, 255).astype(np.uint8)
    assert noise_level(grey) == pytest.approx(3.0, rel=0.1)
    assert isolated_count(np.array([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0]]), 1.5) == 1
    assert isolated_count(np.zeros((1, 2)), 1.5) == 1
    assert singleton_count(np.array([[0.1, 0.1, 0.1], [0.2, 0.2, 0.2], [5.0, 5.0, 5.0]]), 0.5) == 1


def test_frame_assembler_records_each_point_sensor_and_checks_agree_with_the_sim_frames():
    tree = TransformTree()
    for spec in RIG.sensors:
        tree.add_transform("base_link", spec.frame_id, spec.T_base_sensor)
    calibrations = {s.name: CameraCalibration(s.K, s.width, s.height) for s in RIG.of_modality("camera")}
    assembler = FrameAssembler(RIG.sensors, 0.05, tree, calibrations=calibrations)
    config = SimConfig(camera_width=WIDTH, camera_height=HEIGHT)
    sim_frames = list(simulate_drive(SEED, 3.0, 10.0, "radar_front:ghosts:60@2-3", config))
    assembled = []
    for sim_frame in sim_frames:
        for name, reading in sim_frame.readings.items():
            data = reading.data
            assembler.add(name, reading.stamp, data.image if reading.modality == "camera" else data.points)
        assembled += assembler.pop_ready()
    assembled += assembler.flush()
    assert len(assembled) == len(sim_frames) and all(isinstance(f, SensorFrame) for f in assembled)
    live, offline = SensorChecks(), SensorChecks()
    for frame, sim_frame in zip(assembled, sim_frames):
        radars = [s.name for s in RIG.of_modality("radar")]
        assert list(frame.sensor_points) == radars + ["lidar_top"]
        np.testing.assert_array_equal(np.concatenate([frame.sensor_points[n] for n in radars]), frame.radar)
        np.testing.assert_array_equal(frame.sensor_points["lidar_top"], frame.lidar)
        np.testing.assert_allclose(frame.sensor_extrinsics["radar_front"], RIG["radar_front"].T_base_sensor)
        expected = radar_to_base(sim_frame.readings["radar_back_left"].data.points, RIG["radar_back_left"])
        np.testing.assert_allclose(frame.sensor_points["radar_back_left"], expected, atol=1e-4)
        a, b = live.update(frame), offline.update(sim_frame.to_sensor_frame())
        assert {n: v.state for n, v in a.items()} == {n: v.state for n, v in b.items()}
        assert {n: [e.feature for e in v.evidence] for n, v in a.items()} == {
            n: [e.feature for e in v.evidence] for n, v in b.items()
        }
    assert live.states["radar_front"] != OK and offline.states["radar_front"] != OK


def _synthetic_frames(seed: int) -> list[SensorFrame]:
    """Random frames: two cameras (sometimes black, repeated or missing), a radar and a LiDAR with
    random points (some NaN), stamps with random gaps, now and then a repeated stamp or a new time
    epoch."""
    rng = np.random.default_rng(seed)
    frames, stamp, epoch = [], 0.0, 0
    previous_image = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
    K = np.array([[20.0, 0, 16], [0, 20.0, 12], [0, 0, 1]])
    for i in range(int(rng.integers(5, 40))):
        stamp += float(rng.choice([0.1, 0.1, 0.1, 0.5, 0.0]))
        epoch += int(rng.random() < 0.03)
        cameras = []
        for name in ("cam_a", "cam_b"):
            if rng.random() < 0.1:
                continue
            roll = rng.random()
            if roll < 0.2:
                image = np.zeros((24, 32, 3), np.uint8)
            elif roll < 0.4:
                image = previous_image
            else:
                image = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
            previous_image = image
            cameras.append(CameraImage(name, image, K, np.eye(4), stamp))
        points = {}
        if rng.random() < 0.9:
            points["radar_x"] = rng.normal(0, 20, (int(rng.integers(0, 60)), 6)).astype(np.float32)
        if rng.random() < 0.9:
            cloud = rng.normal(0, 15, (int(rng.integers(0, 3000)), 4)).astype(np.float32)
            cloud[rng.random(len(cloud)) < 0.05, :3] = np.nan  # an organised cloud's missing returns
            points["lidar_x"] = cloud
        frames.append(
            SensorFrame(stamp=stamp, cameras=cameras, frame_index=i, time_epoch=epoch, sensor_points=points)
        )
    return frames


def _fingerprint(verdicts: dict[str, SensorVerdict]) -> list[tuple]:
    return sorted(
        (
            n,
            v.state,
            v.previous,
            v.observed,
            tuple(e.text for e in v.evidence),
            tuple(sorted(v.features.items())),
        )
        for n, v in verdicts.items()
    )


@settings(max_examples=examples(30), deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_same_frames_give_the_same_verdicts(seed):
    frames = _synthetic_frames(seed)
    config = SensorCheckConfig(baseline_min_frames=3, baseline_window=10)
    first, second = SensorChecks(config), SensorChecks(config)
    for frame in frames:
        a, b = first.update(frame), second.update(frame)
        assert _fingerprint(a) == _fingerprint(b)
        for v in a.values():
            assert v.state in STATES and v.previous in STATES
            assert v.observed or not v.changed
            assert v.raised == (STATES.index(v.state) > STATES.index(v.previous))


def test_measuring_apart_and_in_any_order_gives_the_same_verdicts():
    # the pipeline measures frames in parallel workers (SensorChecks.measure) and concludes them in
    # stamp order: the verdicts must be those of measuring inside `update`
    config = SimConfig(camera_width=WIDTH, camera_height=HEIGHT)
    spec = parse_fault_spec(
        "cam_front:frozen@1.0-2.0,cam_back:glare@1.5-2.5,lidar_top:sector_dropout@1.0-2.5,radar_front:ghosts:60@1.0-2.5",
        RIG,
    )
    frames = [f.to_sensor_frame() for f in simulate_drive(SEED, 3.0, 10.0, spec, config)]
    inline, apart = SensorChecks(), SensorChecks()
    measured = {i: apart.measure(frames[i]) for i in reversed(range(len(frames)))}
    raised = 0
    for i, frame in enumerate(frames):
        expected, got = inline.update(frame), apart.update(frame, measured[i])
        assert got.keys() == expected.keys()
        for name in expected:
            assert got[name].state == expected[name].state, (frame.stamp, name)
            assert got[name].summary() == expected[name].summary(), (frame.stamp, name)
        raised += sum(v.raised for v in expected.values())
    assert raised > 0  # the faults were seen: the comparison covered verdicts that move


def test_a_reading_given_to_two_frames_is_judged_once():
    config = SimConfig(camera_width=WIDTH, camera_height=HEIGHT)
    frames = [f.to_sensor_frame() for f in simulate_drive(SEED, 1.0, 10.0, None, config)]
    checks = SensorChecks()
    for frame in frames[:5]:
        checks.update(frame)
    frame = frames[5]
    first = checks.update(frame)["cam_front"]
    assert first.observed and first.features["change"] > 0  # a moving scene
    # the same reading in the next frame (a slower sensor beside a faster key sensor): its verdict
    # stands, as news of nothing; judged again it would look frozen (change 0, repeat 1)
    again = dataclasses.replace(frames[6], cameras=frame.cameras, sensor_stamps=dict(frame.sensor_stamps))
    reused = checks.update(again)["cam_front"]
    assert reused.features == first.features and reused.state == first.state and not reused.changed
    assert reused.baseline_frames == first.baseline_frames
    # the old payload under a new stamp (a stuck sensor) is a new reading: judged, it is a repeat
    restamped = {name: t + 0.05 for name, t in frame.sensor_stamps.items()}
    stuck = checks.update(dataclasses.replace(frames[7], cameras=frame.cameras, sensor_stamps=restamped))
    assert stuck["cam_front"].features["change"] == 0 and stuck["cam_front"].features["repeat"] == 1
    # and so is a new payload under an old stamp (a stuck clock)
    flipped = [dataclasses.replace(c, image=c.image[::-1].copy()) for c in frame.cameras]
    clock = checks.update(
        dataclasses.replace(frames[8], cameras=flipped, sensor_stamps=dict(frame.sensor_stamps))
    )
    assert clock["cam_front"].features["change"] > 0 and clock["cam_front"].features["repeat"] == 0
