"""`ros2-lmd robustness` (replay/robustness.py): the corruptions reach the model's inputs as
`corrupt` applies them, an identity corruption has RA exactly 1, a modality the output ignores shows
no share shift, a modality the model lacks is skipped, the report is deterministic, and bad
arguments end in one line. Tiny untrained models on a few small simulated scenes keep it fast."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from support.cli import one_line_error, run_cli
from support.tiny import scene, tiny, tiny_model

from ros2_lmd.corrupt import KINDS, Corruption
from ros2_lmd.corrupt.pointcloud import misalignment_transform
from ros2_lmd.replay.robustness import (
    Selection,
    corrupt_frame,
    corruption_rng,
    frame_sensors,
    parse_kinds,
    parse_severities,
    robustness,
    write_robustness,
)


@pytest.fixture(scope="module", autouse=True)
def _forget_scenes():
    yield
    scene.cache_clear()


def _set(count: int = 2):
    pairs = [scene(i) for i in range(count)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _identity(acts_on: str) -> Corruption:
    return Corruption("identity", acts_on, lambda payload, level, rng: payload.copy(), (1,) * 5, "", "test")


IDENTITY = {"camera": {"identity": _identity("image")}, "radar": {"identity": _identity("points")}}


def _model(name: str = "compact_crl", seed: int = 0):
    torch.manual_seed(seed)
    return tiny(name).eval()


def test_an_identity_corruption_has_ra_exactly_one_and_no_share_shift():
    frames, truths = _set()
    model = _model("compact_cr")
    report = robustness(
        model,
        frames,
        truths,
        Selection(parse_kinds("all", IDENTITY), (5,), 1),
        table=IDENTITY,
        progress=False,
    )
    assert report["clean"]["iou"] > 0
    assert len(report["runs"]) == 2 and report["skipped"] == []
    for run in report["runs"]:
        assert run["ra"] == 1.0
        assert run["iou"] == report["clean"]["iou"]
        assert run["share_shift"] == {"camera": 0.0, "radar": 0.0}
        assert run["alone_iou"] == report["clean"]["alone_iou"]
    assert report["mra"] == 1.0
    assert {r["ra"] for r in report["sensors"]} == {1.0}
    assert len(report["sensors"]) == len(report["sensor_names"]["camera"]) + len(
        report["sensor_names"]["radar"]
    )


def test_corruptions_of_a_modality_the_output_ignores_move_no_evidence():
    frames, truths = _set()
    model = _model("compact_cr")
    camera_channels = model.encode(model.prepare([frames[0]]))["camera"].shape[1]
    with torch.no_grad():  # the fusion layer reads no radar feature: the output ignores radar
        model.bev_compressor[0].weight[:, camera_channels:] = 0
    kinds = parse_kinds("radar:ghosts,radar:noise,radar:dropout,radar:frame_lost")
    report = robustness(model, frames, truths, Selection(kinds, (5,), None), progress=False)
    assert report["clean"]["shares"]["radar"] == 0.0
    assert len(report["runs"]) == 4
    for run in report["runs"]:
        assert run["ra"] == 1.0, run
        assert run["share_shift"]["radar"] == 0.0 and run["share_shift"]["camera"] == 0.0
    # ... while the same corruptions do change a model that uses radar
    used = robustness(_model("compact_cr"), frames, truths, Selection(kinds, (5,), None), progress=False)
    assert any(r["share_shift"]["radar"] != 0.0 for r in used["runs"])


def test_kinds_of_a_modality_the_model_lacks_are_skipped_with_the_reason():
    frames, truths = _set(1)
    report = robustness(
        _model("compact_cr"),
        frames,
        truths,
        Selection(parse_kinds("lidar:density,camera:clock_offset,camera:stuck,camera:crash"), (1,), None),
        progress=False,
    )
    skipped = {(s["modality"], s["kind"]): s["reason"] for s in report["skipped"]}
    assert "no lidar input" in skipped["lidar", "density"]
    assert "stamp" in skipped["camera", "clock_offset"]
    assert "earlier message" in skipped["camera", "stuck"]
    assert [(r["modality"], r["kind"]) for r in report["runs"]] == [("camera", "crash")]
    assert report["worst_kind"]["kind"] == "crash"


def test_the_report_is_deterministic_for_a_seed(tmp_path):
    frames, truths = _set()
    selection = Selection(parse_kinds("camera:fog,camera:frame_lost,lidar:density,radar:ghosts"), (5,), 3)
    texts = []
    for name in ("a", "b"):
        report = robustness(_model(), frames, truths, selection, seed=7, progress=False)
        write_robustness(tmp_path / name, report)
        texts.append((tmp_path / name / "robustness.json").read_text())
    assert texts[0] == texts[1]
    report = json.loads(texts[0])
    assert {k["kind"] for k in report["kinds"]} == {"fog", "frame_lost", "density", "ghosts"}
    assert report["sensor_hurts_most"] and set(report["sensor_mean_ra"]) >= {"cam_front", "radar_front"}
    assert (tmp_path / "a" / "robustness.csv").read_text().startswith("scope,modality,kind,severity")
    page = (tmp_path / "a" / "robustness.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "Clean reference" in page
    other = robustness(
        _model(), frames, truths, dataclasses.replace(selection, sensor_severity=None), seed=8, progress=False
    )
    assert other["runs"] != report["runs"]  # the seed is the corruptions' randomness


def test_a_frame_is_corrupted_with_the_library_function_in_the_sensor_frame():
    frame, _ = scene(0)
    sensors = frame_sensors(frame)
    fog = KINDS["camera"]["fog"]
    out = corrupt_frame(frame, "camera", ["cam_front"], fog, 4, seed=3, index=1, frames=2)
    by_name = {c.name: c for c in frame.cameras}
    expected = fog.function(
        by_name["cam_front"].image, fog.parameter(4), corruption_rng(3, "cam_front", "fog", 4, 1)
    )
    changed = {c.name: c.image for c in out.cameras}
    assert np.array_equal(changed["cam_front"], expected)
    assert all(np.array_equal(changed[n], by_name[n].image) for n in changed if n != "cam_front")
    # LiDAR rotation: the points turned by the mount's transform about the sensor, not base_link
    (lidar,) = sensors["lidar"]
    rotated = corrupt_frame(frame, "lidar", [lidar], KINDS["lidar"]["rotation"], 5, 0, 0, 1)
    T = frame.sensor_extrinsics[lidar]
    in_sensor = (frame.lidar[:, :3] - T[:3, 3]) @ T[:3, :3]
    turned = misalignment_transform(KINDS["lidar"]["rotation"].parameter(5), 0.0)
    expected_points = (in_sensor @ turned[:3, :3].T) @ T[:3, :3].T + T[:3, 3]
    assert np.allclose(rotated.lidar[:, :3], expected_points, atol=1e-3)
    assert np.array_equal(rotated.lidar[:, 3], frame.lidar[:, 3])
    # radar ghosts on one radar: only its points grow, and the modality array is the sensors' concatenation
    radar = sensors["radar"][0]
    ghosted = corrupt_frame(frame, "radar", [radar], KINDS["radar"]["ghosts"], 5, 0, 0, 1)
    assert len(ghosted.sensor_points[radar]) == len(frame.sensor_points[radar]) + 35
    assert len(ghosted.radar) == len(frame.radar) + 35
    assert frame.sensor_points[radar] is not ghosted.sensor_points[radar]  # the input frame is unchanged


def test_arrival_kinds_leave_the_sensor_out_of_the_frames_whose_message_is_lost():
    frame, _ = scene(0)
    drop = KINDS["camera"]["rate_drop"]  # keep 1 in 3 at severity 2
    kept = [
        "cam_front"
        in {c.name for c in corrupt_frame(frame, "camera", ["cam_front"], drop, 2, 0, i, 6).cameras}
        for i in range(6)
    ]
    assert kept == [True, False, False, True, False, False]
    everything = frame_sensors(frame)["radar"]
    lost = corrupt_frame(frame, "radar", everything, KINDS["radar"]["frame_lost"], 5, 0, 0, 1)
    if not len(lost.radar):  # every radar lost (p = 0.95 each): the modality is absent
        assert lost.present["radar"] is False
    assert all(
        lost.sensor_status.get(s, "").startswith("no data") for s in everything if s not in lost.sensor_points
    )


def test_kind_and_severity_arguments_are_checked():
    assert parse_kinds("fog") == (("camera", "fog"), ("lidar", "fog"))
    assert parse_kinds("camera:fog,radar") == (("camera", "fog"), *(("radar", k) for k in KINDS["radar"]))
    assert parse_severities("5,1,3") == (1, 3, 5)
    for bad in ("fgo", "camera:ghosts", "sonar:fog"):
        with pytest.raises(ValueError, match="valid"):
            parse_kinds(bad)
    for bad in ("0", "6", "x", ""):
        with pytest.raises(ValueError, match="severit"):
            parse_severities(bad)


@pytest.mark.parametrize(
    "args, names",
    [
        (["--kinds", "fgo"], ["fgo", "valid"]),
        (["--kinds", "camera:ghosts"], ["ghosts", "camera"]),
        (["--severities", "1,7"], ["--severities", "7"]),
        (["--sensor-severity", "9"], ["--sensor-severity", "9"]),
        (["--frames", "0"], ["--frames"]),
    ],
)
def test_bad_arguments_end_in_one_line_naming_them(tmp_path, capsys, args, names):
    model = tiny_model(tmp_path)
    code, out, err = run_cli(capsys, "robustness", "--model", model, "--out", tmp_path / "out", *args)
    assert code == 2
    one_line_error(err, "ros2-lmd robustness:", *names)
    assert not (tmp_path / "out").exists()


def test_the_command_writes_its_three_files(tmp_path, capsys):
    model = tiny_model(tmp_path, "compact_cr")
    code, out, err = run_cli(
        capsys,
        "robustness",
        "--model",
        model,
        "--out",
        tmp_path / "out",
        "--kinds",
        "camera:crash,lidar:density",
        "--severities",
        "1",
        "--frames",
        "2",
        "--sensor-severity",
        "0",
    )
    assert code == 0, err
    assert "mRA" in out and "worst camera:crash" in out
    report = json.loads((tmp_path / "out" / "robustness.json").read_text())
    assert report["model"] == model and report["frames"] == 2 and report["sensors"] == []
    assert report["skipped"][0]["kind"] == "density"
    assert (tmp_path / "out" / "robustness.html").is_file() and (
        tmp_path / "out" / "robustness.csv"
    ).is_file()


def test_nuscenes_val_samples_with_each_radar_corrupted_in_turn(tmp_path, capsys):
    from support import nuscenes_fixture as fx

    root = fx.write_dataroot(tmp_path / "nuscenes", (("scene-0103", 1),))  # mini_val
    model = tiny_model(tmp_path, "compact_cr")
    code, out, err = run_cli(
        capsys,
        "robustness", "--model", model, "--out", tmp_path / "out", "--dataset", "nuscenes",
        "--dataroot", root.path, "--version", root.version, "--kinds", "radar:ghosts",
        "--severities", "5", "--sensor-severity", "5", "--frames", "4",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads((tmp_path / "out" / "robustness.json").read_text())
    assert report["data"]["dataset"] == "nuscenes" and report["frames"] == 1  # the val split holds one
    radars = [r.lower() for r in fx.RADARS]
    assert sorted(report["sensor_names"]["radar"]) == sorted(radars)
    assert sorted(r["sensor"] for r in report["sensors"]) == sorted(radars)
