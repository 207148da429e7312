"""No crash path from a bag or a command-line argument: each bad input ends `ros2-lmd` with one line
on stderr naming it, a non-zero exit and no traceback, found before any work where it can be, and
without side effects (no half-written output folder, no replaced file). Tiny simulated drives keep
the analyses short; most calls run `cli.main` in-process, `play` runs as a process to be signalled."""

from __future__ import annotations

import csv
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from support.cli import one_line_error, run_cli

from ros2_lmd import cli
from ros2_lmd.messages.types import rosbags_types
from ros2_lmd.models.registry import build_model
from ros2_lmd.monitor.pipeline import Pipeline
from ros2_lmd.replay.analyze import analyze
from ros2_lmd.replay.bag import BagWriter, ReadStats, read_messages
from ros2_lmd.replay.simulate import simulate_to_bag

REPO = Path(__file__).resolve().parents[2]
FRAMES = 6
PLAYER_START_S = 10.0  # process start, rclpy and the bag opened: about 2 s here


@pytest.fixture(scope="module")
def drive(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli_drive")
    return simulate_to_bag(
        folder / "drive",
        duration_s=FRAMES / 10,
        seed=3,
        faults="camera:blackout@0.2-0.4",
        camera_size=(224, 128),
        progress=False,
    )


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (relative path -> content)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def no_model_load(monkeypatch):
    """The checks under test come before the model is loaded."""

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr("ros2_lmd.models.io.load_model", refuse)


# --- 1. the faults file ---------------------------------------------------------------------------


def test_a_missing_or_malformed_faults_file_fails_before_any_work(drive, tmp_path, capsys, no_model_load):
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "analyze", drive.bag, "--faults", tmp_path / "missing.csv", "--out", out)
    assert code == cli.EXIT_USAGE
    assert "No such file" in one_line_error(err, "missing.csv")
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(b"\x00\xff\xfe not a faults file")
    code, _, err = run_cli(capsys, "analyze", drive.bag, "--faults", garbage, "--out", out)
    assert code == cli.EXIT_USAGE
    one_line_error(err, garbage)
    assert not out.exists()


# --- 2. and 3. model and device -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--model", "nonexistent"], ["nonexistent", "compact_crl"]),
        (["--model", "simplebev_c"], ["simplebev_c", "no shipped weights", "compact_crl"]),
        (["--model", "{tmp}/lonely.safetensors"], ["lonely.json", "is missing"]),
        pytest.param(
            ["--device", "cuda"],
            ["'cuda'", "CUDA is not available"],
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here"),
        ),
    ],
    ids=["unknown-model", "model-without-weights", "weights-without-config", "cuda-without-cuda"],
)
def test_model_and_device_are_checked_before_loading(drive, tmp_path, capsys, no_model_load, args, names):
    (tmp_path / "lonely.safetensors").write_bytes(b"")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    code, _, err = run_cli(capsys, "analyze", drive.bag, "--out", tmp_path / "out", *args)
    assert code == cli.EXIT_USAGE
    one_line_error(err, *names)
    assert not (tmp_path / "out").exists()


def test_only_valid_devices_and_loadable_models_are_offered(drive, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["analyze", str(drive.bag), "--out", str(tmp_path / "out"), "--device", "gpu"])
    assert info.value.code == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "Traceback" not in err and "'gpu'" in err.strip().splitlines()[-1]
    with pytest.raises(SystemExit):
        cli.main(["analyze", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "compact_crl" in help_text and "simplebev" not in help_text
    assert "{cpu,cuda,auto}" in help_text
    # a path to a .safetensors file with its config is accepted, a registry name needs weights
    shipped = REPO / "ros2_lmd" / "models" / "weights" / "compact_crl.safetensors"
    assert cli.model_problem(str(shipped)) == "" and cli.model_problem("compact_crl") == ""
    assert cli.shipped_models() == ["compact_cr", "compact_cl", "compact_crl"]


# --- 4. a failed analysis leaves the output folder as it was -------------------------------------


@pytest.mark.slow
def test_a_failed_analysis_leaves_no_half_written_folder_and_keeps_an_earlier_one(
    drive, tmp_path, monkeypatch
):
    torch.manual_seed(0)
    model = build_model("compact_crl")
    earlier = tmp_path / "earlier"
    (earlier / "output").mkdir(parents=True)
    (earlier / "output" / "metadata.yaml").write_text("an earlier run's bag\n")
    (earlier / "frames.csv").write_text("an earlier run's frames\n")
    (earlier / "notes.txt").write_text("the user's own file\n")
    before = _snapshot(earlier)
    calls = []
    compute = Pipeline.compute

    def failing_compute(self, frames):
        calls.append(len(frames))
        if len(calls) == 2:
            raise RuntimeError("model failure in the middle of the drive")
        return compute(self, frames)

    monkeypatch.setattr(Pipeline, "compute", failing_compute)
    fresh = tmp_path / "new" / "nested" / "out"
    for out in (earlier, fresh):
        calls.clear()
        with pytest.raises(RuntimeError, match="middle of the drive"):
            analyze(drive.bag, model, out, batch=1, workers=1, progress=False)
        assert len(calls) >= 2  # it failed part-way, after writing some output
    assert _snapshot(earlier) == before
    assert not [p for p in earlier.iterdir() if p.name.startswith(".")]  # no staging folder left
    assert not (tmp_path / "new").exists()
    # a complete run replaces the earlier outputs and keeps the user's file
    monkeypatch.setattr(Pipeline, "compute", compute)
    result = analyze(drive.bag, model, earlier, batch=2, workers=1, progress=False)
    assert result.processed == FRAMES and result.out_dir == earlier
    assert sorted(p.name for p in earlier.iterdir()) == [
        "alerts.csv",
        "frames.csv",
        "incidents.csv",
        "notes.txt",
        "output",
        "report.html",
        "summary.json",
    ]
    assert (earlier / "notes.txt").read_text() == "the user's own file\n"
    assert (earlier / "frames.csv").read_text().startswith("stamp,since_start_s,status")
    assert (earlier / "output" / "metadata.yaml").read_text() != "an earlier run's bag\n"


# --- 5. --out naming a file -----------------------------------------------------------------------


def test_out_naming_an_existing_file_fails_up_front(drive, tmp_path, capsys, no_model_load):
    afile = tmp_path / "afile"
    afile.write_text("keep me\n")
    for out in (afile, afile / "sub"):
        code, _, err = run_cli(capsys, "analyze", drive.bag, "--out", out)
        assert code == cli.EXIT_USAGE
        assert "not a folder" in one_line_error(err, afile)
    assert afile.read_text() == "keep me\n"


# --- 6. simulate: no silent overwrite, fault windows inside the drive ------------------------------


def test_simulate_refuses_to_replace_a_drive_without_force(tmp_path, capsys):
    bag = tmp_path / "second"
    bag.mkdir()
    (bag / "metadata.yaml").write_text("an earlier bag\n")
    (bag / "faults.csv").write_text("an earlier drive's timeline\n")
    before = _snapshot(bag)
    common = ["simulate", "--out", bag, "--duration", "0.3", "--camera-size", "224x128"]
    code, _, err = run_cli(capsys, *common)
    assert code == cli.EXIT_USAGE
    assert "--force" in one_line_error(err, bag)
    assert _snapshot(bag) == before
    code, out, _ = run_cli(capsys, *common, "--force", "--faults", "lidar:dropout@0.1-0.2")
    assert code == 0 and "wrote 3 frames" in out and str(bag / "faults.csv") in out
    with open(bag / "faults.csv", newline="") as handle:
        assert [row["kind"] for row in csv.DictReader(handle)] == ["dropout"]
    assert (bag / "metadata.yaml").read_text() != "an earlier bag\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["second"]  # the timeline is inside the bag


def test_drives_share_a_parent_folder_and_each_analysis_scores_its_own_faults(tmp_path, capsys):
    """The fault timeline stays with its bag (d1/faults.csv): a second drive into the same folder
    succeeds, info reads the bag beside it, and analyze scores each bag's own faults by default."""
    drives = {"d1": "camera:blackout@0.2-0.4", "d2": "lidar:dropout@0.1-0.3"}
    for name, faults in drives.items():
        code, _, err = run_cli(
            capsys, "simulate", "--out", tmp_path / "bags" / name, "--duration", "0.6",
            "--camera-size", "224x128", "--faults", faults,
        )  # fmt: skip
        assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "bags").iterdir()) == ["d1", "d2"]
    code, out, _ = run_cli(capsys, "info", tmp_path / "bags" / "d1")
    assert code == 0 and "Files:             d1_0.mcap" in out and "faults.csv" not in out
    params = tmp_path / "params.yaml"
    params.write_text("/**:\n  ros__parameters:\n    decomposition: eager\n")
    for name, faults in drives.items():
        out = tmp_path / "analysis" / name
        code, _, err = run_cli(
            capsys, "analyze", tmp_path / "bags" / name, "--out", out, "--params-file", params
        )
        assert code == 0, err
        page = (out / "report.html").read_text()
        kind = faults.split(":")[1].split("@")[0]
        other = "dropout" if kind == "blackout" else "blackout"
        assert "Against the injected faults" in page and "of 1 faults" in page
        assert f"<td>{kind}</td>" in page and f"<td>{other}</td>" not in page


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--duration", "20", "--faults", "camera:blackout@30-40"], ["'camera:blackout@30-40'", "outside"]),
        (["--duration", "1", "--faults", "camera:blackout@0.2-0.4", "--modalities", "radar"], ["camera"]),
        (["--duration", "nan"], ["duration", "nan"]),
        (["--duration", "0.01"], ["duration", "one frame"]),
        (["--duration", "1", "--camera-size", "4x4"], ["4x4"]),
    ],
    ids=["fault-after-the-drive", "fault-on-unrecorded-sensor", "nan-duration", "no-frame", "tiny-camera"],
)
def test_simulate_checks_its_arguments_before_simulating(tmp_path, capsys, args, names):
    started = time.perf_counter()
    code, _, err = run_cli(capsys, "simulate", "--out", tmp_path / "drive.mcap", *args)
    assert code == cli.EXIT_USAGE
    one_line_error(err, *names)
    assert time.perf_counter() - started < 5  # nothing was simulated
    assert list(tmp_path.iterdir()) == []


# --- 7. play stopped by SIGTERM -------------------------------------------------------------------


@pytest.mark.ros
def test_play_stopped_by_sigterm_exits_cleanly(drive):
    pytest.importorskip("rclpy", reason="rclpy is not importable: run `make test`")
    env = dict(os.environ, ROS_DOMAIN_ID=str(random.randint(100, 199)), PYTHONUNBUFFERED="1")
    # at rate 0.02 the 0.6 s drive takes 30 s: the signal comes while the player waits to publish
    process = subprocess.Popen(
        [sys.executable, "-m", "ros2_lmd.cli", "play", str(drive.bag), "--rate", "0.02", "--delay", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True)
    reader.start()
    try:
        try:
            assert "publishing" in lines.get(timeout=PLAYER_START_S)
            time.sleep(0.5)  # past the first messages, waiting for the next one's time
        except queue.Empty:
            pass  # a player that does not say when it starts: signal it anyway
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        err = process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode in (0, 128 + signal.SIGTERM), (process.returncode, err)
    assert "Traceback" not in err and "RCLError" not in err, err
    reader.join(timeout=10)  # the last line, read once the process closed its output
    assert "stopped after" in "".join(lines.queue)


# --- 8. and 9. bags with wrong or missing topics -----------------------------------------------------


def _rewrite(source: Path, target: Path, replace: dict[str, str]) -> None:
    """Copy a bag, with each topic in `replace` carrying that message type instead."""
    types = rosbags_types()
    with BagWriter(target, types.typestore) as writer:
        for topic, msgtype, stamp, message in read_messages(source, None, types.typestore, ReadStats()):
            if topic in replace:
                msgtype = replace[topic]
                fields = {"data": "not a point cloud"} if msgtype == "std_msgs/msg/String" else {}
                if msgtype == "sensor_msgs/msg/LaserScan":
                    fields = {"header": message.header, "range_max": 100.0}
                message = types.new(msgtype, **fields)
            writer.write(topic, msgtype, stamp, message, latched=topic == "/tf_static")


@pytest.mark.slow
@pytest.mark.parametrize("wrong", ["std_msgs/msg/String", "sensor_msgs/msg/LaserScan"])
def test_a_topic_with_the_wrong_type_is_skipped_and_named(drive, tmp_path, capsys, wrong):
    bag = tmp_path / "wrong.mcap"
    _rewrite(drive.bag, bag, {"/lidar_top": wrong})
    out = tmp_path / "out"
    code, stdout, err = run_cli(capsys, "analyze", bag, "--out", out)
    assert code == 0, err
    assert "Traceback" not in err
    assert f"{FRAMES} frames: {FRAMES} processed" in stdout  # the cameras start the frames
    problem = [line for line in stdout.splitlines() if line.strip().startswith("/lidar_top:")]
    assert len(problem) == 1 and wrong in problem[0] and "sensor_msgs/msg/PointCloud2" in problem[0]
    with open(out / "frames.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == FRAMES


def test_a_bag_without_the_expected_topics_is_an_error(tmp_path, capsys):
    types = rosbags_types()
    bag = tmp_path / "chatter.mcap"
    with BagWriter(bag, types.typestore) as writer:
        for i in range(3):
            message = types.new("std_msgs/msg/String", data="hi")
            writer.write("/chatter", "std_msgs/msg/String", 1_000 + i, message)
    out = tmp_path / "out"
    code, stdout, err = run_cli(capsys, "analyze", bag, "--out", out)
    assert code == 1
    one_line_error(err, bag, "/lidar_top", "/cam_front/image_rect_compressed", "/chatter")
    assert "frames" not in stdout and not out.exists()
    # radar alone: sensor data, but neither the key sensor (LiDAR) nor the fallback (camera) to start a frame
    radar = simulate_to_bag(tmp_path / "radar.mcap", duration_s=0.3, modalities=("radar",), progress=False)
    code, stdout, err = run_cli(capsys, "analyze", radar.bag, "--out", out)
    assert code == 1
    one_line_error(
        err, "no frame would start", "/lidar_top", "/cam_front/image_rect_compressed", "/radar_front"
    )
    assert not out.exists()


# --- 8. info: what is in a bag --------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, names",
    [
        (["{tmp}/missing", "--out", "{tmp}/o"], ["{tmp}/missing", "no such file or folder"]),
        (["{tmp}/empty", "--out", "{tmp}/o"], ["{tmp}/empty", "no rosbag2 below it"]),
        (["{tmp}/empty", "--out", "{tmp}/a_file/o"], ["{tmp}/a_file", "is not a folder"]),
        (["{tmp}/empty", "--out", "{tmp}/o", "--workers", "0"], ["--workers", "0"]),
        (["{tmp}/empty", "--out", "{tmp}/o", "--batch", "0"], ["--batch", "0"]),
        (["{tmp}", "--out", "{tmp}/o", "--model", "nope"], ["--model nope", "no such model"]),
    ],
)
def test_fleet_arguments_are_checked_before_ray_starts(tmp_path, capsys, monkeypatch, args, names):
    def refuse(*args, **kwargs):
        raise AssertionError("Ray was started before the arguments were checked")

    monkeypatch.setattr("ros2_lmd.replay.fleet.connect_ray", refuse)
    (tmp_path / "a_file").write_text("")
    (tmp_path / "empty").mkdir()
    code, out, err = run_cli(capsys, "fleet", *(a.format(tmp=tmp_path) for a in args))
    assert code == cli.EXIT_USAGE and out == ""
    assert one_line_error(err, *(n.format(tmp=tmp_path) for n in names)).startswith("ros2-lmd fleet: ")
    assert not (tmp_path / "o").exists()


def test_info_prints_the_bag_like_ros2_bag_info(drive, capsys, tmp_path):
    code, out, _ = run_cli(capsys, "info", drive.bag)
    assert code == 0
    assert f"Files:             {drive.bag.name}_0.mcap" in out and "Storage id:        mcap" in out
    assert f"Messages:          {drive.messages}" in out and "Topic: /lidar_top" in out
    code, _, err = run_cli(capsys, "info", tmp_path / "nowhere")
    assert code == 1
    one_line_error(err, "nowhere", "no such bag")


# --- corrupt ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault,names",
    [
        ("cam_front:fogg@0.1-0.3", ("--fault", "fogg", "valid:", "defocus")),
        ("cam_front:fog:9@0.1-0.3", ("--fault", "severity", "1, 2, 3, 4, 5")),
        ("cam_front:fog@0.3-0.1", ("--fault", "window", "T0-T1")),
        ("lidar_bottom:fog@0.1-0.3", ("--fault", "lidar_bottom", "lidar_top")),
        ("radar_front:jpeg@0.1-0.3", ("--fault", "jpeg", "radar", "ghosts")),
    ],
)
def test_corrupt_names_a_bad_fault_in_one_line_and_writes_nothing(drive, tmp_path, capsys, fault, names):
    code, _, err = run_cli(capsys, "corrupt", drive.bag, "--out", tmp_path / "out", "--fault", fault)
    assert code == cli.EXIT_USAGE
    one_line_error(err, "ros2-lmd corrupt:", *names)
    assert not (tmp_path / "out").exists()


def test_corrupt_writes_a_bag_whose_faults_analyze_scores_by_default(drive, tmp_path, capsys):
    from ros2_lmd.replay.simulate import recorded_faults
    from ros2_lmd.sim.faults import read_faults_csv

    out = tmp_path / "corrupted.mcap"  # the suffix is dropped, as simulate drops it
    argv = (
        "corrupt",
        drive.bag,
        "--out",
        out,
        "--fault",
        "camera:soiling:4@0.1-0.4",
        "--fault",
        "lidar_top:rotation@0.2-0.5",
    )
    code, printed, _ = run_cli(capsys, *argv)
    assert code == cli.EXIT_OK and "corrupted" in printed
    bag = tmp_path / "corrupted"
    events = read_faults_csv(recorded_faults(bag))
    assert len(events) == 7 and events[-1].sensor == "lidar_top" and events[-1].param == 3.0
    code, _, err = run_cli(capsys, *argv)  # again: the bag exists
    assert code == cli.EXIT_USAGE and "exists" in one_line_error(err, "ros2-lmd corrupt:")
    assert run_cli(capsys, *argv, "--force")[0] == cli.EXIT_OK


def test_corrupt_reports_an_unreadable_bag_as_a_failed_input(tmp_path, capsys):
    (tmp_path / "not_a_bag").mkdir()
    code, _, err = run_cli(
        capsys, "corrupt", tmp_path / "not_a_bag", "--out", tmp_path / "o", "--fault", "camera:fog@0-1"
    )
    assert code == cli.EXIT_FAILED
    one_line_error(err, "not_a_bag")
