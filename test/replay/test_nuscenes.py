"""nuScenes without the real data: a tiny dataroot in the real layout (test/support/nuscenes_fixture.py)
through the file readers, the tables, `nuscenes2bag` (every reading in the bag, stamped as recorded, the JPEG
and point bytes unchanged, the extrinsics on /tf_static, the annotations as ground truth), `analyze`
on its bag, the training and evaluation frames (shapes, stamps, order, ground-truth cells placed by
hand), `train` / `evaluate --dataset nuscenes`, and the converted Simple-BEV checkpoint on the bag."""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import support.nuscenes_fixture as fx
import torch

from ros2_lmd import cli
from ros2_lmd.datasets.nuscenes import (
    CAMERA_CHANNELS,
    CHANNELS,
    RADAR_CHANNELS,
    NuScenesError,
    NuScenesTables,
    read_lidar_bin,
    read_pcd,
)
from ros2_lmd.datasets.nuscenes_frames import NuScenesFrames, occupancy_of_boxes
from ros2_lmd.messages.types import project_typestore
from ros2_lmd.replay.bag import ReadStats, read_messages
from ros2_lmd.replay.nuscenes import GROUND_TRUTH_TOPIC, camera_info_topic, ground_truth_boxes, topic_of
from ros2_lmd.sensors.pointcloud2 import read_points
from ros2_lmd.sensors.tf import TransformTree

SCENE = "scene-0061"  # mini_train
VAL_SCENE = "scene-0103"  # mini_val
SAMPLES = 3


@pytest.fixture(scope="module")
def dataroot(tmp_path_factory) -> fx.Dataroot:
    return fx.write_dataroot(tmp_path_factory.mktemp("nuscenes"), ((SCENE, SAMPLES), (VAL_SCENE, SAMPLES)))


@pytest.fixture(scope="module")
def tables(dataroot) -> NuScenesTables:
    return NuScenesTables(dataroot.path, dataroot.version)


@pytest.fixture(scope="module")
def bag(dataroot, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bags") / "drive"
    assert (
        cli.main(["nuscenes2bag", "--dataroot", str(dataroot.path), "--scene", SCENE, "--out", str(out)]) == 0
    )
    return out


def _messages(bag: Path) -> list[tuple[str, str, int, object]]:
    return list(read_messages(bag, None, project_typestore(), ReadStats()))


def _rot_z(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])  # optical axes in a body frame


def _mount(channel: str) -> np.ndarray:
    """T_base_sensor from the fixture's mounting list, by hand (the oracle for the quaternions)."""
    x, y, z, yaw = fx.MOUNTS[channel]
    T = np.eye(4)
    T[:3, :3] = _rot_z(math.radians(yaw)) @ (OPTICAL if channel.startswith("CAM") else np.eye(3))
    T[:3, 3] = (x, y, z)
    return T


def _ego(t_us: int, scene_index: int = 0) -> np.ndarray:
    """T_map_base at a time, by hand."""
    xy, heading = fx.ego_pose_at(t_us, fx.scene_start(scene_index))
    T = np.eye(4)
    T[:3, :3] = _rot_z(heading)
    T[:2, 3] = xy
    return T


# --- files -----------------------------------------------------------------------------------------


def test_pcd_reader_keeps_the_file_types_and_values_and_names_broken_files(tmp_path):
    points = fx.radar_points(np.random.default_rng(1), 7)
    path = tmp_path / "radar.pcd"
    path.write_bytes(fx.radar_pcd_bytes(points) + b"\n")  # bytes after the last point are ignored
    read = read_pcd(path)
    assert read.dtype.names == tuple(n for n, _, _ in fx.RADAR_PCD_FIELDS)
    assert [read.dtype[n].itemsize for n in read.dtype.names] == [s for _, _, s in fx.RADAR_PCD_FIELDS]
    assert [read.dtype[n].kind for n in read.dtype.names] == [
        {"F": "f", "I": "i"}[t] for _, t, _ in fx.RADAR_PCD_FIELDS
    ]
    assert read.dtype.itemsize == 43 and read.tobytes() == points.tobytes()

    path.write_bytes(fx.radar_pcd_bytes(points)[:-5])
    with pytest.raises(
        NuScenesError, match=r"radar.pcd: binary data truncated: POINTS\*point size = 7\*43 = 301"
    ):
        read_pcd(path)
    path.write_bytes(fx.radar_pcd_bytes(points).replace(b"DATA binary", b"DATA ascii"))
    with pytest.raises(NuScenesError, match="DATA ascii: only binary"):
        read_pcd(path)
    path.write_bytes(fx.radar_pcd_bytes(points).replace(b"POINTS 7", b"POINTS 8"))
    with pytest.raises(NuScenesError, match=r"POINTS 8 != WIDTH\*HEIGHT = 7\*1 = 7"):
        read_pcd(path)
    path.write_bytes(fx.radar_pcd_bytes(points[:0]))
    assert read_pcd(path).shape == (0,)


def test_lidar_bin_reader_reads_five_float32_per_point_and_refuses_a_partial_point(tmp_path):
    values = np.arange(20, dtype="<f4").reshape(4, 5)
    path = tmp_path / "sweep.pcd.bin"
    path.write_bytes(values.tobytes())
    points = read_lidar_bin(path)
    assert points.dtype.names == ("x", "y", "z", "intensity", "ring")
    assert np.array_equal(points["ring"], values[:, 4]) and np.array_equal(points["x"], values[:, 0])
    path.write_bytes(values.tobytes()[:-4])
    with pytest.raises(NuScenesError, match=r"76 bytes is not a whole number of points .*76 / 20 = 3.80"):
        read_lidar_bin(path)


# --- tables ----------------------------------------------------------------------------------------


def test_tables_follow_the_nuscenes_links(dataroot, tables):
    scene = tables.scene(SCENE)
    assert [s["token"] for s in tables.scene_samples(scene)] == dataroot.samples[SCENE]
    for channel in CHANNELS:
        chain = tables.channel_data(scene, channel)
        # every reading, sweeps included, in time order, as written (the JSON files are shuffled)
        assert [r["token"] for r in chain] == [r["token"] for r in dataroot.readings[SCENE][channel]], channel
        assert sum(r["is_key_frame"] for r in chain) == SAMPLES
        assert all(a["timestamp"] < b["timestamp"] for a, b in zip(chain, chain[1:]))
    assert len(tables.channel_data(scene, "LIDAR_TOP")) == 23  # 20 Hz over 1.11 s, a sweep before
    assert tables.split_scenes("train") == [SCENE] and tables.split_scenes("val") == [VAL_SCENE]
    with pytest.raises(NuScenesError, match="scene 'scene-9999' is not in .*: it has scene-0061, scene-0103"):
        tables.scene("scene-9999")
    with pytest.raises(NuScenesError, match="version 'v2.0': expected one of v1.0-mini, v1.0-trainval"):
        NuScenesTables(dataroot.path, "v2.0")


def test_splits_are_the_official_ones_in_simple_bev_order(tmp_path):
    # v1.0-trainval: val is the official list of 150 scenes, train every other scene of the version
    root = fx.write_dataroot(
        tmp_path, (("scene-0001", 2), ("scene-0012", 2), ("scene-0003", 2)), version="v1.0-trainval"
    )
    tables = NuScenesTables(root.path, root.version)
    assert tables.split_scenes("val") == ["scene-0003", "scene-0012"]
    assert tables.split_scenes("train") == ["scene-0001"]
    samples = tables.split_samples("val")
    # by scene token, then time (the md5 tokens put scene-0012 first), as Simple-BEV's loader orders them
    assert [s["token"] for s in samples] == root.samples["scene-0012"] + root.samples["scene-0003"]
    assert NuScenesFrames(tables, "val")[2][0].stamp_ns == samples[2]["timestamp"] * 1000


# --- nuscenes2bag ----------------------------------------------------------------------------------


def test_the_bag_holds_every_reading_stamped_as_recorded(dataroot, bag):
    assert sorted(p.name for p in bag.iterdir()) == ["drive_0.mcap", "metadata.yaml"]
    messages = _messages(bag)
    log_times = [t for _, _, t, _ in messages]
    assert log_times == sorted(log_times)
    assert messages[0][0] == "/tf_static" and log_times[0] < log_times[1]
    counts = Counter(topic for topic, _, _, _ in messages)
    readings = dataroot.readings[SCENE]
    for channel in CHANNELS:
        records = readings[channel]
        stamps = [
            (m.header.stamp.sec * 10**9 + m.header.stamp.nanosec, t, m.header.frame_id)
            for topic, _, t, m in messages
            if topic == topic_of(channel)
        ]
        # microseconds -> nanoseconds exactly, header and log time alike, sweeps included
        assert stamps == [(r["timestamp"] * 1000, r["timestamp"] * 1000, channel.lower()) for r in records]
    for channel in CAMERA_CHANNELS:
        assert counts[camera_info_topic(channel)] == len(readings[channel])
    # one map -> base_link per ego pose (every reading has its own, as in nuScenes)
    assert counts["/tf"] == sum(len(r) for r in readings.values())
    assert counts[GROUND_TRUTH_TOPIC] == SAMPLES


def test_the_bag_keeps_the_jpeg_and_point_bytes_and_the_calibration(dataroot, bag):
    messages = _messages(bag)
    by_topic: dict[str, list] = {}
    for topic, _, _, message in messages:
        by_topic.setdefault(topic, []).append(message)
    readings = dataroot.readings[SCENE]
    for channel in CAMERA_CHANNELS:
        images = by_topic[topic_of(channel)]
        for record, image in zip(readings[channel], images):
            assert image.format == "jpeg"
            assert bytes(image.data) == (dataroot.path / record["filename"]).read_bytes()
        info = by_topic[camera_info_topic(channel)][0]
        assert (info.width, info.height) == fx.IMAGE_SIZE and info.header.frame_id == channel.lower()
        assert np.array_equal(np.asarray(info.k).reshape(3, 3), np.array(fx.K))
    names = [n for n, _, _ in fx.RADAR_PCD_FIELDS]
    for channel in RADAR_CHANNELS:
        for record, cloud in zip(readings[channel], by_topic[topic_of(channel)]):
            stored = read_pcd(dataroot.path / record["filename"])
            assert [f.name for f in cloud.fields] == names and cloud.point_step == 43
            # PointField datatypes: INT8 1, INT16 3, FLOAT32 7; offsets packed as in the file
            assert [f.datatype for f in cloud.fields] == [
                {("F", 4): 7, ("I", 1): 1, ("I", 2): 3}[(t, s)] for _, t, s in fx.RADAR_PCD_FIELDS
            ]
            assert [f.offset for f in cloud.fields] == [stored.dtype.fields[n][1] for n in names]
            assert bytes(cloud.data) == stored.tobytes()  # every field, bit for bit
            back = np.frombuffer(bytes(cloud.data), dtype=fx.RADAR_DTYPE)
            for name in names:
                assert np.array_equal(
                    back[name].view(f"u{back[name].itemsize}"), stored[name].view(f"u{stored[name].itemsize}")
                )
            # and the monitor reads its six fields by name from it
            columns = read_points(
                cloud, ("x", "y", "z", "rcs", "vx_comp", "vy_comp"), topic_of(channel)
            ).points
            assert np.array_equal(columns[:, 3], stored["rcs"]) and np.array_equal(
                columns[:, 5], stored["vy_comp"]
            )
    for record, cloud in zip(readings["LIDAR_TOP"], by_topic["/lidar_top"]):
        assert [(f.name, f.offset, f.datatype) for f in cloud.fields] == [
            (n, 4 * i, 7) for i, n in enumerate(("x", "y", "z", "intensity", "ring"))
        ]
        assert bytes(cloud.data) == (dataroot.path / record["filename"]).read_bytes()
    # /tf_static: base_link -> every sensor, the calibrated sensors (cameras as optical frames)
    tree = TransformTree()
    tree.add_tf_message(by_topic["/tf_static"][0])
    for channel in CHANNELS:
        assert np.allclose(tree.lookup("base_link", channel.lower()), _mount(channel), atol=1e-9), channel
    # /tf: the ego pose of each reading in the map frame
    first = by_topic["/tf"][0].transforms[0]
    assert (first.header.frame_id, first.child_frame_id) == ("map", "base_link")
    t0 = min(r["timestamp"] for chain in readings.values() for r in chain)
    assert first.transform.translation.x == pytest.approx(_ego(t0)[0, 3])


def test_the_annotations_are_ground_truth_in_base_link_at_each_keyframe(dataroot, bag, tables):
    markers = [(t, m) for topic, _, t, m in _messages(bag) if topic == GROUND_TRUTH_TOPIC]
    keyframes = [r["timestamp"] * 1000 for r in dataroot.readings[SCENE]["LIDAR_TOP"] if r["is_key_frame"]]
    assert [t for t, _ in markers] == keyframes
    grid = NuScenesFrames(tables, "train").grid
    for _, message in markers:
        assert message.markers[0].action == 3  # DELETEALL, then one CUBE per annotation
        boxes = ground_truth_boxes(message)
        assert sorted(b.category for b in boxes) == sorted(o[0] for o in fx.OBJECTS)
        assert {m.header.frame_id for m in message.markers} == {"base_link"}
        car = next(b for b in boxes if b.category == "vehicle.car")
        assert np.allclose(car.centre[:2], (10.0, -5.0), atol=1e-6) and np.allclose(
            car.size_lwh, (4.0, 2.0, 1.6)
        )
        vehicles = [b for b in boxes if b.category.startswith("vehicle.")]
        cells = {tuple(c) for c in np.argwhere(occupancy_of_boxes(vehicles, grid))}
        assert cells == fx.EXPECTED_VEHICLE_CELLS


def test_nuscenes2bag_checks_its_inputs_first(dataroot, tmp_path, capsys):
    out = tmp_path / "bag"
    args = ["nuscenes2bag", "--dataroot", str(dataroot.path), "--out", str(out)]
    assert cli.main([*args, "--scene", "scene-0999"]) == 2
    assert "scene 'scene-0999' is not in" in capsys.readouterr().err and not out.exists()
    missing = dataroot.path / dataroot.readings[SCENE]["RADAR_BACK_LEFT"][2]["filename"]
    kept = missing.read_bytes()
    missing.unlink()
    try:
        assert cli.main([*args, "--scene", SCENE]) == 2
        assert f"scene {SCENE}: 1 sensor files missing" in capsys.readouterr().err and not out.exists()
    finally:
        missing.write_bytes(kept)
    # two scenes: one bag each under --out
    assert cli.main([*args, "--scene", SCENE, "--scene", VAL_SCENE]) == 0
    assert sorted(p.name for p in out.iterdir()) == [SCENE, VAL_SCENE]
    assert (out / VAL_SCENE / f"{VAL_SCENE}_0.mcap").is_file()
    assert cli.main([*args, "--scene", SCENE, "--scene", VAL_SCENE]) == 2  # exists: --force replaces
    assert "exists" in capsys.readouterr().err


# --- analyze on a nuScenes bag ---------------------------------------------------------------------


def _eager_params(tmp_path: Path, model: str = "") -> Path:
    path = tmp_path / "params.yaml"
    lines = ["/**:", "  ros__parameters:", "    decomposition: eager", "    device: cpu"]
    path.write_text("\n".join(lines + ([f"    model: {model}"] if model else [])) + "\n")
    return path


@pytest.mark.slow
def test_analyze_processes_every_lidar_sweep_with_the_extrinsics_from_tf_static(dataroot, bag, tmp_path):
    out = tmp_path / "analysis"
    code = cli.main(["analyze", str(bag), "--out", str(out), "--params-file", str(_eager_params(tmp_path))])
    assert code == 0
    with open(out / "frames.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    lidar = dataroot.readings[SCENE]["LIDAR_TOP"]
    assert len(rows) == len(lidar)  # one row per LiDAR sweep, keyframes and sweeps
    assert {r["status"] for r in rows} == {"processed"}
    assert [round(float(r["stamp"]) * 1e6) for r in rows] == [r["timestamp"] for r in lidar]
    # every sensor's extrinsics came from /tf_static: no sensor went missing, every share is defined
    with open(out / "alerts.csv", newline="") as handle:
        alerts = list(csv.DictReader(handle))
    assert not [a for a in alerts if "extrinsic" in a["message"] or a["kind"] == "SENSOR_MISSING"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"]["processed"] == len(lidar)
    assert all(r["share_radar"] != "" and r["share_lidar"] != "" for r in rows)


# --- training and evaluation frames ----------------------------------------------------------------


def test_frames_give_sensor_frames_and_the_ground_truth_cells_in_simple_bev_order(dataroot, tables):
    train = NuScenesFrames(tables, "train")
    assert len(train) == SAMPLES and len(NuScenesFrames(tables, "val")) == SAMPLES
    keyframes = [r for r in dataroot.readings[SCENE]["LIDAR_TOP"] if r["is_key_frame"]]
    for index in range(SAMPLES):
        frame, occupancy = train[index]
        # stamped with the sample's LiDAR keyframe, exactly; in time order within the scene
        assert frame.stamp_ns == keyframes[index]["timestamp"] * 1000 and frame.frame_index == index
        assert occupancy.shape == (200, 200) and occupancy.dtype == np.uint8
        assert {tuple(c) for c in np.argwhere(occupancy)} == fx.EXPECTED_VEHICLE_CELLS
    frame, _ = train[1]
    assert [c.name for c in frame.cameras] == [c.lower() for c in CAMERA_CHANNELS]
    for camera in frame.cameras:
        assert camera.image.shape == (90, 160, 3) and np.array_equal(camera.K, np.array(fx.K))
        assert np.allclose(camera.T_base_cam, _mount(camera.name.upper()), atol=1e-9)
    # the LiDAR keyframe in base_link: its file's points through the calibrated sensor
    stored = read_lidar_bin(dataroot.path / keyframes[1]["filename"])
    xyz = np.stack([stored["x"], stored["y"], stored["z"]], 1).astype(np.float64)
    expected = xyz @ _mount("LIDAR_TOP")[:3, :3].T + _mount("LIDAR_TOP")[:3, 3]
    assert frame.lidar.shape == (300, 4) and np.allclose(frame.lidar[:, :3], expected, atol=1e-4)
    assert np.array_equal(frame.lidar[:, 3], stored["intensity"])
    # the radar keyframes moved to the LiDAR keyframe's ego pose through the map frame
    sample = tables.split_samples("train")[1]
    first = tables.keyframe(sample, "RADAR_FRONT")
    radar = read_pcd(dataroot.path / first["filename"])
    T = np.linalg.inv(_ego(keyframes[1]["timestamp"])) @ _ego(first["timestamp"]) @ _mount("RADAR_FRONT")
    xyz = np.stack([radar["x"], radar["y"], radar["z"]], 1).astype(np.float64)
    assert np.allclose(frame.radar[: len(radar), :3], xyz @ T[:3, :3].T + T[:3, 3], atol=1e-4)
    assert frame.radar.shape == (
        sum(len(read_pcd(dataroot.path / tables.keyframe(sample, c)["filename"])) for c in RADAR_CHANNELS),
        6,
    )
    assert first["timestamp"] != keyframes[1]["timestamp"]  # so the ego motion mattered
    # each point sensor's own points and extrinsics, as the simulator's frames record them
    assert list(frame.sensor_points) == [c.lower() for c in (*RADAR_CHANNELS, "LIDAR_TOP")]
    assert np.array_equal(frame.sensor_points["radar_front"], frame.radar[: len(radar)])
    assert np.allclose(frame.sensor_extrinsics["radar_front"], T, atol=1e-9)
    assert np.array_equal(frame.sensor_points["lidar_top"], frame.lidar)
    assert np.allclose(frame.sensor_extrinsics["lidar_top"], _mount("LIDAR_TOP"), atol=1e-9)
    assert (
        frame.sensor_modality["radar_back_left"] == "radar" and frame.sensor_modality["lidar_top"] == "lidar"
    )
    # a model takes them as it takes simulated frames
    from ros2_lmd.models.registry import build_model

    model = build_model("compact_crl")
    inputs = model.prepare([frame, train[2][0]])
    H, W = model.config.image_size
    assert inputs["images"].shape == (2, 6, 3, H, W) and inputs["present"].tolist() == [[1.0] * 3] * 2


@pytest.mark.slow
def test_train_and_evaluate_on_nuscenes_from_the_command_line(dataroot, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the dataset cache and checkpoint go under .cache/ here
    weights = tmp_path / "weights" / "crl"
    common = ["--dataset", "nuscenes", "--dataroot", str(dataroot.path)]
    assert cli.main(["train", *common, "--architecture", "compact_cr"]) == 2
    assert "--dataset nuscenes needs --out" in capsys.readouterr().err
    assert cli.main(["train", "--dataset", "nuscenes", "--out", str(weights)]) == 2
    assert "needs --dataroot" in capsys.readouterr().err
    args = [
        "train",
        *common,
        "--architecture",
        "compact_cr",
        "--out",
        str(weights),
        "--steps",
        "2",
        "--eval-every",
        "1",
    ]
    assert cli.main([*args, "--batch-size", "2", "--loader-workers", "2"]) == 0
    report = json.loads(weights.with_suffix(".train.json").read_text())
    assert report["config"]["dataset"] == "nuscenes" and report["config"]["train_frames"] == 0
    assert report["check_set"]["frames"] == SAMPLES  # the whole val split: its 3 samples
    assert [h["step"] for h in report["history"]] == [1, 2]
    assert (tmp_path / ".cache" / "ros2_lmd" / "compact_cr-nuscenes-v1.0-mini.ckpt").is_file()
    out = tmp_path / "eval"
    methods = "LMD (Ratio Rule),Baseline"
    assert (
        cli.main(
            [
                "evaluate",
                *common,
                "--model",
                str(weights),
                "--out",
                str(out),
                "--offsets",
                "2",
                "--methods",
                methods,
            ]
        )
        == 0
    )
    tables_md = (out / "tables.md").read_text()
    # 3 val samples, spacing 1 (500 of 6019 scaled), offsets 1 and 2: every ordered pair once per k
    assert "3 nuScenes v1.0-mini val samples (Simple-BEV order), 6 perturbation pairs per column" in tables_md
    with open(out / "metrics.csv", newline="") as handle:
        rows = {r["method"]: r for r in csv.DictReader(handle)}
    assert set(rows) == {"LMD (Ratio Rule)", "Baseline"}
    assert float(rows["LMD (Ratio Rule)"]["PCC R_p/C mean"]) == pytest.approx(1.0, abs=1e-6)
    assert (out / "decomposition.png").is_file()


# --- the Simple-BEV recipe, with a stand-in checkpoint ---------------------------------------------


@pytest.mark.slow
def test_a_converted_simplebev_checkpoint_analyses_a_nuscenes_bag(bag, dataroot, tmp_path, capsys):
    from ros2_lmd.models.simplebev import SimpleBEV, simplebev_config

    torch.manual_seed(0)
    official = SimpleBEV(simplebev_config("c", encoder_type="res50", latent_dim=16))
    src = tmp_path / "model-000025000.pth"
    torch.save({"model_state_dict": {f"module.{k}": v for k, v in official.state_dict().items()}}, src)
    assert cli.main(["convert-simplebev", str(src), str(tmp_path / "default")]) == 0
    config = json.loads((tmp_path / "default.json").read_text())
    assert config["image_size"] == [448, 800]  # the resolution the official checkpoints were trained at
    assert config["camera_names"] == [c.lower() for c in CAMERA_CHANNELS]
    assert (config["grid"]["x_min"], config["grid"]["resolution"], config["grid"]["z_bins"]) == (
        -50.0,
        0.5,
        8,
    )
    small = tmp_path / "small"
    assert cli.main(["convert-simplebev", str(src), str(small), "--input-size", "112x64"]) == 0
    assert "images 112x64" in capsys.readouterr().out
    out = tmp_path / "analysis"
    params = _eager_params(tmp_path, f"{small}.safetensors")
    assert cli.main(["analyze", str(bag), "--out", str(out), "--params-file", str(params)]) == 0
    with open(out / "frames.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    # a camera-only model takes no LiDAR: its frames follow the front camera (the key sensor then)
    front = dataroot.readings[SCENE]["CAM_FRONT"]
    assert [round(float(r["stamp"]) * 1e6) for r in rows] == [r["timestamp"] for r in front]
    assert {r["status"] for r in rows} == {"processed"}
    assert {float(r["share_camera"]) for r in rows} <= {0.0, 1.0}  # all evidence is the camera's
