"""TransformTree against explicit matrix products, and FrameAssembler: order independence, missing
sensors with reasons, base_link transforms, and every key stamp accounted for."""

from __future__ import annotations

import random
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation
from support.properties import examples

from ros2_lmd.messages.types import rosbags_types, time_msg
from ros2_lmd.sensors import (
    DroppedFrame,
    FrameAssembler,
    SensorDataError,
    SensorFrame,
    SensorSource,
    TransformLookupError,
    TransformTree,
    camera_info_fields,
    make_tf_message,
    transform_points,
    transform_stamped_fields,
)
from ros2_lmd.sensors.tf import invert_rigid


def _random_transform(rng: np.random.Generator) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.random(random_state=rng).as_matrix()
    T[:3, 3] = rng.normal(size=3) * 3
    return T


def _tf_message(entries):
    """A TFMessage of SimpleNamespaces from (parent, child, T) entries."""
    transforms = []
    for parent, child, T in entries:
        f = transform_stamped_fields(parent, child, T)
        transforms.append(
            SimpleNamespace(
                header=SimpleNamespace(frame_id=f["frame_id"]),
                child_frame_id=f["child_frame_id"],
                transform=SimpleNamespace(
                    translation=SimpleNamespace(**dict(zip("xyz", f["translation"]))),
                    rotation=SimpleNamespace(**dict(zip("xyzw", f["rotation"]))),
                ),
            )
        )
    return SimpleNamespace(transforms=transforms)


@settings(max_examples=examples(40), deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_lookup_composes_chains_and_inverses(seed):
    rng = np.random.default_rng(seed)
    # base_link -> roof -> lidar, base_link -> radar, plus roof -> cam
    T_base_roof, T_roof_lidar, T_base_radar, T_roof_cam = (_random_transform(rng) for _ in range(4))
    tree = TransformTree()
    tree.add_tf_message(
        _tf_message(
            [
                ("base_link", "roof", T_base_roof),
                ("roof", "lidar", T_roof_lidar),
                ("base_link", "radar", T_base_radar),
                ("/roof", "cam", T_roof_cam),
            ]
        )
    )
    T_base_lidar = T_base_roof @ T_roof_lidar
    np.testing.assert_allclose(tree.lookup("base_link", "lidar"), T_base_lidar, atol=1e-9)
    np.testing.assert_allclose(tree.lookup("lidar", "base_link"), np.linalg.inv(T_base_lidar), atol=1e-9)
    np.testing.assert_allclose(
        tree.lookup("radar", "cam"), np.linalg.inv(T_base_radar) @ T_base_roof @ T_roof_cam, atol=1e-9
    )
    np.testing.assert_allclose(
        tree.lookup("cam", "lidar"), np.linalg.inv(T_roof_cam) @ T_roof_lidar, atol=1e-9
    )
    np.testing.assert_allclose(
        tree.lookup("radar", "cam") @ tree.lookup("cam", "radar"), np.eye(4), atol=1e-9
    )
    np.testing.assert_array_equal(tree.lookup("cam", "cam"), np.eye(4))


def test_unnormalised_quaternion_is_normalised_and_zero_refused():
    T = _random_transform(np.random.default_rng(0))
    msg = _tf_message([("base_link", "radar", T)])
    q = msg.transforms[0].transform.rotation
    q.x, q.y, q.z, q.w = (2.5 * v for v in (q.x, q.y, q.z, q.w))
    tree = TransformTree()
    tree.add_tf_message(msg)
    np.testing.assert_allclose(tree.lookup("base_link", "radar"), T, atol=1e-9)

    bad = _tf_message([("base_link", "cam", T), ("base_link", "lidar", T)])
    rotation = bad.transforms[1].transform.rotation
    rotation.x = rotation.y = rotation.z = rotation.w = 0.0
    with pytest.raises(SensorDataError) as info:
        tree.add_tf_message(bad, "/tf_static")
    assert info.value.topic == "/tf_static"
    assert "transforms[1] (base_link<-lidar).rotation: zero quaternion" in info.value.reason
    assert "cam" not in tree  # nothing of a bad message is added


def test_no_path_names_both_frames_and_known_frames():
    tree = TransformTree.from_matrices({"radar_front": np.eye(4)})
    tree.add_transform("odom", "map", np.eye(4))
    with pytest.raises(TransformLookupError) as info:
        tree.lookup("base_link", "lidar_top")
    message = str(info.value)
    assert "base_link<-lidar_top" in message and "'lidar_top' is unknown" in message
    assert "['base_link', 'map', 'odom', 'radar_front']" in message
    with pytest.raises(TransformLookupError, match="separate trees"):
        tree.lookup("map", "radar_front")
    with pytest.raises(SensorDataError, match="loop"):
        tree.add_transform("radar_front", "base_link", np.eye(4))


def _rx(a):
    return Rotation.from_rotvec([a, 0, 0]).as_matrix()


def _ry(a):
    return Rotation.from_rotvec([0, a, 0]).as_matrix()


def _rz(a):
    return Rotation.from_rotvec([0, 0, a]).as_matrix()


def test_from_config_rpy_quaternion_and_parent():
    roll, pitch, yaw = 0.1, -0.2, 1.3
    q = Rotation.from_rotvec([0, 0, 0.5]).as_quat()
    tree = TransformTree.from_config(
        {
            "roof": {"xyz": [1.0, 0.0, 1.8], "rpy": [roll, pitch, yaw]},
            "cam": {"parent": "roof", "translation": [0.2, 0.0, 0.0], "quaternion": list(q)},
            "radar": {"translation": [3.0, 0.0, 0.5], "rotation": list(q)},  # monitor.yaml format
        }
    )
    R_roof = _rz(yaw) @ _ry(pitch) @ _rx(roll)  # URDF: fixed-axis roll, pitch, yaw
    T_base_roof = np.eye(4)
    T_base_roof[:3, :3], T_base_roof[:3, 3] = R_roof, [1.0, 0.0, 1.8]
    T_roof_cam = np.eye(4)
    T_roof_cam[:3, :3], T_roof_cam[:3, 3] = _rz(0.5), [0.2, 0.0, 0.0]
    np.testing.assert_allclose(tree.lookup("base_link", "cam"), T_base_roof @ T_roof_cam, atol=1e-12)
    np.testing.assert_allclose(tree.lookup("base_link", "radar")[:3, :3], _rz(0.5), atol=1e-12)
    with pytest.raises(SensorDataError, match="unknown keys"):
        TransformTree.from_config({"cam": {"xyz": [0, 0, 0], "yaw": 1.0}}, source="extrinsics.yaml")
    with pytest.raises(SensorDataError, match="zero quaternion"):
        TransformTree.from_config({"cam": {"quaternion": [0, 0, 0, 0]}})


def test_tf_message_round_trips_through_rosbags():
    types = rosbags_types()
    store = types.typestore
    rng = np.random.default_rng(5)
    entries = [
        ("base_link", "lidar_top", _random_transform(rng)),
        ("base_link", "cam_front", _random_transform(rng)),
    ]
    msg = make_tf_message(types, time_msg(types, 0.0), entries)
    decoded = store.deserialize_cdr(store.serialize_cdr(msg, msg.__msgtype__), msg.__msgtype__)
    tree = TransformTree()
    tree.add_tf_message(decoded)
    for parent, child, T in entries:
        np.testing.assert_allclose(tree.lookup(parent, child), T, atol=1e-12)


def test_transform_points_rotates_velocities_without_translating_them():
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = _rz(np.pi / 2), [1.0, 2.0, 0.5]
    radar = np.array([[10.0, 0.0, 0.0, 5.0, 3.0, 0.0]], np.float32)  # x, y, z, rcs, vx, vy
    out = transform_points(radar, T, [(4, 5)])
    np.testing.assert_allclose(out, [[1.0, 12.0, 0.5, 5.0, 0.0, 3.0]], atol=1e-5)


# --- FrameAssembler ---------------------------------------------------------------------------------

TOL = 0.06
MAX_DELAY = 0.03
SENSORS = [
    SensorSource("cam_front", "camera"),
    SensorSource("radar_front", "radar"),
    SensorSource("radar_back", "radar"),
    SensorSource("lidar_top", "lidar"),
]
CAM_K = np.array([[50.0, 0, 8], [0, 50.0, 6], [0, 0, 1]])


def _extrinsics(seed=7) -> tuple[TransformTree, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    poses = {s.name: _random_transform(rng) for s in SENSORS}
    return TransformTree.from_matrices(poses), poses


def _assembler(tree, max_delay_s=MAX_DELAY, **kwargs) -> FrameAssembler:
    asm = FrameAssembler(SENSORS, TOL, tree, max_delay_s=max_delay_s, **kwargs)
    info = SimpleNamespace(header=SimpleNamespace(frame_id="cam_front"), **camera_info_fields(CAM_K, 16, 12))
    asm.add_camera_info("cam_front", info)
    return asm


def _stream(seed: int, duration=1.5, gaps=()):
    """(sensor, stamp, payload) readings: LiDAR 10 Hz, radars ~13 Hz, camera ~12 Hz, with jitter.
    Readings of a sensor inside one of its (sensor, start, end) gaps are left out."""
    rng = np.random.default_rng(seed)
    periods = {"lidar_top": 0.1, "radar_front": 0.077, "radar_back": 0.077, "cam_front": 0.083}
    readings = []
    for name, period in periods.items():
        t = rng.uniform(0, period)
        while t < duration:
            stamp = round(t + rng.uniform(-0.004, 0.004), 6)
            if not any(g[0] == name and g[1] <= stamp <= g[2] for g in gaps):
                if name == "cam_front":
                    payload = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
                else:
                    columns = 6 if name.startswith("radar") else 4
                    payload = rng.normal(size=(int(rng.integers(0, 5)), columns)).astype(np.float32)
                readings.append((name, stamp, payload))
            t += period
    return readings


def _run(asm: FrameAssembler, arrivals, pop_every_message=True):
    results = []
    for name, stamp, payload in arrivals:
        asm.add(name, stamp, payload)
        if pop_every_message:
            results += asm.pop_ready()
    return results + asm.flush()


def _assert_same_results(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert type(x) is type(y)
        assert (x.stamp, x.frame_index) == (y.stamp, y.frame_index)
        if isinstance(x, DroppedFrame):
            assert x.reason == y.reason
            continue
        assert x.present == y.present and x.sensor_status == y.sensor_status
        np.testing.assert_array_equal(x.radar, y.radar)
        np.testing.assert_array_equal(x.lidar, y.lidar)
        assert [c.name for c in x.cameras] == [c.name for c in y.cameras]
        for cx, cy in zip(x.cameras, y.cameras):
            assert cx.stamp == cy.stamp
            np.testing.assert_array_equal(cx.image, cy.image)


@settings(max_examples=examples(25), deadline=None)
@given(st.integers(0, 2**32 - 1), st.booleans())
def test_frames_do_not_depend_on_arrival_order(seed, pop_every_message):
    readings = _stream(seed, gaps=[("radar_back", 0.4, 0.8)])
    in_order = sorted(readings, key=lambda r: r[1])
    # Each reading delayed by up to MAX_DELAY: shorter than any sensor period, so every sensor's
    # own readings stay in order (the assembler's documented assumptions).
    rng = random.Random(seed)
    shuffled = sorted(readings, key=lambda r: r[1] + rng.uniform(0, MAX_DELAY * 0.999))
    assert shuffled != in_order or len(readings) < 3
    tree, _ = _extrinsics()
    reference = _run(_assembler(tree), in_order)
    _assert_same_results(reference, _run(_assembler(tree), shuffled, pop_every_message))
    # Every key stamp comes out exactly once, in order, as a frame.
    key_stamps = sorted(s for n, s, _ in readings if n == "lidar_top")
    assert [r.stamp for r in reference] == key_stamps
    assert [r.frame_index for r in reference] == list(range(len(key_stamps)))
    assert all(isinstance(r, SensorFrame) for r in reference)


@settings(max_examples=examples(40), deadline=None)
@given(st.integers(0, 2**32 - 1), st.booleans(), st.sampled_from([MAX_DELAY, 0.5]))
def test_fallback_key_fills_a_silent_key_sensor_whatever_the_arrival_order(
    seed, pop_every_message, max_delay
):
    gap = 0.2
    readings = _stream(seed, gaps=[("lidar_top", 0.4, 1.2)])
    rng = random.Random(seed)
    # Each sensor lags by its own constant plus a little jitter, so its own readings stay in order
    # (as the assembler assumes); the fallback camera lags most, by more than the key gap when
    # max_delay allows: its readings come after the LiDAR's and the radars' of the same time.
    lag = {name: rng.uniform(0, max_delay * 0.2) for name in {n for n, _, _ in readings}}
    lag["cam_front"] = max_delay * 0.9
    shuffled = sorted(readings, key=lambda r: r[1] + lag[r[0]] + rng.uniform(0, max_delay * 0.09))
    tree, _ = _extrinsics()
    make = lambda: _assembler(tree, max_delay_s=max_delay, key_fallback="camera", key_gap_s=gap)  # noqa: E731
    reference = _run(make(), sorted(readings, key=lambda r: r[1]))
    _assert_same_results(reference, _run(make(), shuffled, pop_every_message))
    # independent statement of the rule: every LiDAR sweep, and every camera image with no sweep
    # within the gap, starts exactly one frame, in stamp order
    key = sorted(s for n, s, _ in readings if n == "lidar_top")
    cams = [s for n, s, _ in readings if n == "cam_front"]
    fallback = [c for c in cams if not any(abs(k - c) <= gap for k in key)]
    assert fallback, "the LiDAR gap is longer than twice the key gap: some camera frames expected"
    assert [r.stamp for r in reference] == sorted(key + fallback)
    assert [r.frame_index for r in reference] == list(range(len(reference)))
    for frame in reference:
        if frame.stamp in fallback:  # the LiDAR is missing, the camera that triggered it present
            assert not frame.present["lidar"] and frame.sensor_status["lidar_top"]
            assert frame.present["camera"] and not frame.sensor_status["cam_front"]
        else:
            assert frame.present["lidar"]


def test_fallback_key_must_differ_from_the_key():
    tree, _ = _extrinsics()
    with pytest.raises(ValueError, match="fallback key"):
        FrameAssembler(SENSORS, TOL, tree, key_fallback="lidar")


def _frame_at(results, stamp) -> SensorFrame:
    (frame,) = [r for r in results if r.stamp == stamp]
    return frame


def test_sensor_outside_tolerance_is_missing_with_a_reason():
    tree, _ = _extrinsics()
    asm = _assembler(tree)
    asm.add("radar_front", 0.69, np.zeros((1, 6), np.float32))
    asm.add("radar_back", 0.95, np.zeros((2, 6), np.float32))
    asm.add("cam_front", 1.02, np.zeros((12, 16, 3), np.uint8))
    asm.add("lidar_top", 1.0, np.ones((3, 4), np.float32))
    asm.add("radar_front", 1.31, np.zeros((1, 6), np.float32))
    results = asm.flush()
    frame = _frame_at(results, 1.0)
    assert frame.present == {"camera": True, "radar": True, "lidar": True}
    assert frame.sensor_status["radar_front"] == (
        "no message within 0.06 s of key stamp (previous one 0.31 s before)"
    )
    assert frame.sensor_status["radar_back"] == "" and frame.sensor_status["cam_front"] == ""
    assert len(frame.radar) == 2  # radar_back only
    assert frame.sensor_modality == {s.name: s.modality for s in SENSORS}

    asm = _assembler(tree)
    asm.add("lidar_top", 2.0, np.ones((3, 4), np.float32))
    frame = _frame_at(asm.flush(), 2.0)
    assert frame.present == {"camera": False, "radar": False, "lidar": True}
    assert frame.sensor_status["radar_front"] == "no message within 0.06 s of key stamp (none before it)"
    assert frame.radar.shape == (0, 6)


def test_points_are_transformed_to_base_link():
    tree, poses = _extrinsics()
    asm = _assembler(tree)
    rng = np.random.default_rng(0)
    radar = rng.normal(size=(5, 6)).astype(np.float32)
    lidar = rng.normal(size=(7, 4)).astype(np.float32)
    asm.add("radar_front", 0.51, radar)
    asm.add("lidar_top", 0.5, lidar)
    frame = _frame_at(asm.flush(), 0.5)
    R, t = poses["radar_front"][:3, :3], poses["radar_front"][:3, 3]
    expected_radar = radar.astype(np.float64).copy()
    expected_radar[:, :3] = radar[:, :3] @ R.T + t
    velocity = np.column_stack([radar[:, 4], radar[:, 5], np.zeros(5)]) @ R.T
    expected_radar[:, 4:6] = velocity[:, :2]
    np.testing.assert_allclose(frame.radar, expected_radar, atol=1e-5)
    R, t = poses["lidar_top"][:3, :3], poses["lidar_top"][:3, 3]
    np.testing.assert_allclose(frame.lidar[:, :3], lidar[:, :3] @ R.T + t, atol=1e-5)
    np.testing.assert_array_equal(frame.lidar[:, 3], lidar[:, 3])


def test_camera_needs_camera_info_matching_size_and_extrinsic():
    tree, poses = _extrinsics()
    asm = FrameAssembler(SENSORS, TOL, tree)
    image = np.zeros((12, 16, 3), np.uint8)
    asm.add("cam_front", 0.0, image)
    asm.add("lidar_top", 0.0, np.ones((1, 4), np.float32))
    frame = _frame_at(asm.flush(), 0.0)
    assert not frame.present["camera"] and frame.sensor_status["cam_front"] == "no CameraInfo yet"

    info = SimpleNamespace(
        header=SimpleNamespace(frame_id="cam_front_optical"), **camera_info_fields(CAM_K, 32, 12)
    )
    asm.add_camera_info("cam_front", info)
    asm.add("cam_front", 1.0, image)
    asm.add("lidar_top", 1.0, np.ones((1, 4), np.float32))
    frame = _frame_at(asm.flush(), 1.0)
    assert "16 x 12 disagrees with CameraInfo 32 x 12" in frame.sensor_status["cam_front"]

    info.width = 16
    asm.add_camera_info("cam_front", info)
    asm.add("cam_front", 2.0, image)
    asm.add("lidar_top", 2.0, np.ones((1, 4), np.float32))
    asm.add("radar_front", 2.0, np.ones((1, 6), np.float32), frame_id="radar_front_mount")
    frame = _frame_at(asm.flush(), 2.0)
    # The CameraInfo's frame names the camera's transform; none is known for it.
    assert frame.sensor_status["cam_front"] == "no extrinsic base_link<-cam_front_optical"
    assert frame.sensor_status["radar_front"] == "no extrinsic base_link<-radar_front_mount"

    asm.add("cam_front", 3.0, image, frame_id="cam_front")  # the image header's frame wins
    asm.add("lidar_top", 3.0, np.ones((1, 4), np.float32))
    frame = _frame_at(asm.flush(), 3.0)
    (camera,) = frame.cameras
    np.testing.assert_array_equal(camera.K, CAM_K)
    np.testing.assert_allclose(camera.T_base_cam, poses["cam_front"])
    assert frame.present["camera"] and frame.sensor_status["cam_front"] == ""


def test_readiness_rule():
    tree, _ = _extrinsics()
    asm = _assembler(tree)
    asm.add("lidar_top", 1.0, np.ones((1, 4), np.float32))
    asm.add("radar_front", 1.02, np.ones((1, 6), np.float32))
    asm.add("radar_back", 1.0, np.ones((1, 6), np.float32))
    assert asm.pop_ready() == []  # the camera could still send something nearer
    asm.add("cam_front", 0.99, np.zeros((12, 16, 3), np.uint8))
    assert asm.pop_ready() == []  # ... and still could: its reading is older than the key
    # Once a stamp beyond t + tolerance + max_delay is seen, whatever else comes is late.
    assert asm.pop_ready(now_stamp=1.0 + TOL + MAX_DELAY) == []
    (frame,) = asm.pop_ready(now_stamp=1.0 + TOL + MAX_DELAY + 1e-3)
    assert frame.stamp == 1.0 and frame.present["camera"]

    asm.add("lidar_top", 2.0, np.ones((1, 4), np.float32))
    for name in ("radar_front", "radar_back"):
        asm.add(name, 2.0, np.ones((1, 6), np.float32))
    asm.add("cam_front", 2.01, np.zeros((12, 16, 3), np.uint8))
    (frame,) = asm.pop_ready()  # every sensor has passed t: ready without waiting
    assert frame.frame_index == 1


def test_late_and_duplicate_keys_become_dropped_records():
    tree, _ = _extrinsics()
    asm = _assembler(tree)
    asm.add("lidar_top", 1.0, np.ones((1, 4), np.float32))
    asm.add("lidar_top", 1.0, np.ones((1, 4), np.float32))
    results = asm.flush()
    asm.add("lidar_top", 0.9, np.ones((1, 4), np.float32))
    results += asm.pop_ready()
    assert [type(r).__name__ for r in results] == ["DroppedFrame", "SensorFrame", "DroppedFrame"]
    assert results[0].reason == "duplicate key stamp 1.000000"
    assert "arrived after the frame at 1.000000 was built" in results[2].reason
    assert [r.frame_index for r in results] == [0, 1, 2]
    assert (asm.counters.frames, asm.counters.dropped_frames) == (1, 2)


def test_caches_stay_bounded_without_key_readings():
    tree, _ = _extrinsics()
    asm = _assembler(tree)
    for i in range(2000):  # the LiDAR is silent: nothing would ever release these
        asm.add("radar_front", i * 0.01, np.zeros((1, 6), np.float32))
    assert asm.cache_sizes["radar_front"] <= int((TOL + MAX_DELAY) / 0.01) + 2


def test_bad_readings_raise_naming_the_sensor():
    tree, _ = _extrinsics()
    asm = _assembler(tree)
    with pytest.raises(SensorDataError, match=r"radar_front: points: expected \(N, 6\)"):
        asm.add("radar_front", 0.0, np.zeros((3, 4), np.float32))
    with pytest.raises(SensorDataError, match="cam_front: image"):
        asm.add("cam_front", 0.0, np.zeros((12, 16), np.uint8))
    with pytest.raises(SensorDataError, match="stamp"):
        asm.add("lidar_top", float("nan"), np.zeros((1, 4), np.float32))
    with pytest.raises(KeyError, match="unknown sensor 'radar_left'"):
        asm.add("radar_left", 0.0, np.zeros((1, 6), np.float32))
    with pytest.raises(ValueError, match="key sensor"):
        FrameAssembler(SENSORS[:3], TOL, tree)


def test_key_sensor_by_modality_or_name():
    tree, _ = _extrinsics()
    assert FrameAssembler(SENSORS, TOL, tree).key_sensor == "lidar_top"
    assert FrameAssembler(SENSORS, TOL, tree, key_sensor="radar").key_sensor == "radar_front"
    assert FrameAssembler(SENSORS, TOL, tree, key_sensor="radar_back").key_sensor == "radar_back"
    np.testing.assert_allclose(
        invert_rigid(tree.lookup("base_link", "cam_front")), tree.lookup("cam_front", "base_link"), atol=1e-12
    )


@pytest.mark.parametrize("order", ["earlier_first", "later_first", "key_last", "key_first"])
def test_equidistant_readings_tie_to_the_earlier_one_whatever_the_arrival_order(order):
    """Readings exactly as far before as after the key stamp (dyadic stamps: the distances are
    equal in floating point): the earlier one is in the frame, for a radar and a camera alike."""
    identity = TransformTree.from_matrices({s.name: np.eye(4) for s in SENSORS})
    asm = _assembler(identity)
    t, d = 1.0, 2.0**-5  # 0.03125 s < TOL
    radar = {stamp: np.full((1, 6), value, np.float32) for stamp, value in ((t - d, 1.0), (t + d, 2.0))}
    image = {stamp: np.full((12, 16, 3), value, np.uint8) for stamp, value in ((t - d, 10), (t + d, 20))}
    earlier = [("radar_front", t - d, radar[t - d]), ("cam_front", t - d, image[t - d])]
    later = [("radar_front", t + d, radar[t + d]), ("cam_front", t + d, image[t + d])]
    key = [("lidar_top", t, np.ones((1, 4), np.float32))]
    arrivals = {
        "earlier_first": earlier + key + later,
        "later_first": later + key + earlier,
        "key_last": later + earlier + key,
        "key_first": key + earlier + later,
    }[order]
    results = []
    for name, stamp, payload in arrivals:
        asm.add(name, stamp, payload)
        results += asm.pop_ready()
    frame = _frame_at(results + asm.flush(), t)
    assert abs(t - (t - d)) == abs((t + d) - t)  # a true tie
    assert frame.present["radar"] and frame.sensor_status["radar_front"] == ""
    np.testing.assert_array_equal(frame.radar, radar[t - d])  # identity extrinsics: payload as is
    (camera,) = frame.cameras
    assert camera.stamp == t - d
    np.testing.assert_array_equal(camera.image, image[t - d])


def test_nearest_reading_wins_over_an_earlier_one():
    # the tie rule only breaks ties: a later reading that is nearer is taken
    identity = TransformTree.from_matrices({s.name: np.eye(4) for s in SENSORS})
    asm = _assembler(identity)
    asm.add("radar_front", 1.0 - 2.0**-5, np.full((1, 6), 1.0, np.float32))
    asm.add("radar_front", 1.0 + 2.0**-6, np.full((1, 6), 2.0, np.float32))
    asm.add("lidar_top", 1.0, np.ones((1, 4), np.float32))
    frame = _frame_at(asm.flush(), 1.0)
    np.testing.assert_array_equal(frame.radar, np.full((1, 6), 2.0, np.float32))


def test_each_used_reading_carries_its_latency_and_arrival_never_changes_the_frames():
    readings = _stream(7)
    tree, _ = _extrinsics()
    late = {"radar_front": 0.2}  # radar_front's messages come in 0.2 s after their stamps
    with_arrival = _assembler(tree)
    results = []
    for name, stamp, payload in sorted(readings, key=lambda r: r[1]):
        with_arrival.add(name, stamp, payload, arrival=stamp + late.get(name, 0.01))
        results += with_arrival.pop_ready()
    results += with_arrival.flush()
    _assert_same_results(_run(_assembler(tree), sorted(readings, key=lambda r: r[1])), results)
    frames = [f for f in results if isinstance(f, SensorFrame)]
    assert frames
    for frame in frames:
        used = {n for n, reason in frame.sensor_status.items() if not reason}
        assert set(frame.sensor_latency) == used
        for name, value in frame.sensor_latency.items():
            assert value == pytest.approx(late.get(name, 0.01))
    # without an arrival time nothing is claimed
    assert all(f.sensor_latency == {} for f in _run(_assembler(tree), readings) if isinstance(f, SensorFrame))
