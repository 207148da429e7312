"""Offline analysis end to end: a simulated drive written as rosbag2 (MCAP and sqlite3), analysed
through the shared ingest and Pipeline; every frame accounted for, every output topic written once
per processed frame, identical results from both storages, a clear error for a broken bag."""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
import torch

from ros2_lmd.messages.types import project_typestore
from ros2_lmd.models.registry import build_model
from ros2_lmd.replay.analyze import analyze
from ros2_lmd.replay.bag import BagError, ReadStats, bag_info, message_count, read_messages
from ros2_lmd.replay.simulate import recorded_faults, simulate_to_bag

pytestmark = pytest.mark.slow  # test/conftest.py: tiers

FAULTS = "camera:blackout@0.5-1.2"
OUTPUT_TOPICS = [
    "/lmd/bev/fused",
    "/lmd/bev/camera",
    "/lmd/bev/radar",
    "/lmd/bev/lidar",
    "/lmd/bev/bias",
    "/lmd/bev_image",
    "/lmd/markers",
    "/lmd/decomposition",
]


@pytest.fixture(scope="module")
def drives(tmp_path_factory):
    root = tmp_path_factory.mktemp("drives")
    bags = {}
    for storage in ("mcap", "sqlite3"):
        folder = root / storage
        folder.mkdir()
        result = simulate_to_bag(
            folder / "drive",
            duration_s=1.5,
            seed=3,
            faults=FAULTS,
            storage=storage,
            camera_size=(224, 128),
            progress=False,
        )
        bags[storage] = result
    return bags


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("compact_crl")


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_bags_are_named_as_rosbag2_names_them_and_read_from_folder_or_file(drives, tmp_path):
    from ros2_lmd.replay.bag import bag_info

    for storage, suffix in (("mcap", ".mcap"), ("sqlite3", ".db3")):
        bag = drives[storage].bag
        assert bag.name == "drive" and sorted(p.name for p in bag.iterdir()) == [
            f"drive_0{suffix}",
            "faults.csv",  # the fault timeline travels with its bag; rosbag2 reads what metadata lists
            "metadata.yaml",
        ]
        assert drives[storage].faults_csv == recorded_faults(bag / f"drive_0{suffix}") == bag / "faults.csv"
        info = bag_info(bag)
        assert info.files == [f"drive_0{suffix}"] and info.storage == storage
        assert bag_info(bag / f"drive_0{suffix}") == info  # the storage file names its bag
        assert info.messages == sum(t.count for t in info.topics) == drives[storage].messages
        lidar = next(t for t in info.topics if t.topic == "/lidar_top")
        assert (lidar.msgtype, lidar.count) == ("sensor_msgs/msg/PointCloud2", 15)
        assert info.duration_s == pytest.approx(1.4, abs=0.01)
        text = info.describe()
        assert (
            f"Storage id:        {storage}" in text
            and "Topic: /lidar_top" in text
            and "Count:     15" in text
        )
    # a .mcap suffix on --out is the folder's name without it, as rosbag2 does
    result = simulate_to_bag(tmp_path / "short.mcap", duration_s=0.2, progress=False)
    assert result.bag == tmp_path / "short" and (tmp_path / "short" / "short_0.mcap").is_file()


def test_simulated_bag_holds_the_design_topics(drives):
    stats = ReadStats()
    counts = Counter(
        topic for topic, _, _, _ in read_messages(drives["mcap"].bag, None, project_typestore(), stats)
    )
    assert counts["/tf_static"] == 1
    assert counts["/lidar_top"] == 15 and counts["/radar_front"] == 15
    assert counts["/cam_front/camera_info"] == 15
    assert counts["/cam_front/image_rect_compressed"] == 15
    faults = _rows(drives["mcap"].faults_csv)
    assert {r["sensor"] for r in faults} == {
        "cam_front",
        "cam_front_left",
        "cam_front_right",
        "cam_back",
        "cam_back_left",
        "cam_back_right",
    }
    assert {(r["kind"], r["start"], r["end"]) for r in faults} == {("blackout", "0.5", "1.2")}


def test_analyze_writes_every_output_once_per_processed_frame(drives, model, tmp_path):
    result = analyze(
        drives["mcap"].bag,
        model,
        tmp_path / "out",
        faults_csv=drives["mcap"].faults_csv,
        progress=False,
        keep_reports=True,
        outputs="full",  # every topic every frame (the levels: test_output_levels.py)
    )
    rows = _rows(tmp_path / "out" / "frames.csv")
    assert len(rows) == 15  # one row per LiDAR sweep: every input frame accounted for
    processed = [r for r in rows if r["status"] == "processed"]
    assert len(processed) == result.processed == 15
    stats = ReadStats()
    counts = Counter(
        t for t, _, _, _ in read_messages(tmp_path / "out" / "output", None, project_typestore(), stats)
    )
    for topic in OUTPUT_TOPICS:
        assert counts[topic] == len(processed), topic
    assert counts["/lmd/alerts"] == sum(1 for r in result.reports if r.alerts)
    # stamped like the input
    stamps = sorted(float(r["stamp"]) for r in processed)
    assert stamps[0] == pytest.approx(1.7e9) and stamps[1] - stamps[0] == pytest.approx(0.1, abs=1e-6)
    # and counted from the start of the drive, the t0 of the report (the simulator starts at 1.7e9)
    assert result.t0 == pytest.approx(1.7e9) and float(processed[0]["since_start_s"]) == 0.0
    alerts = _rows(tmp_path / "out" / "alerts.csv")
    assert alerts and {a["sensor"] for a in alerts} >= {"cam_front"}
    for row in rows + alerts:
        assert float(row["since_start_s"]) == pytest.approx(float(row["stamp"]) - result.t0, abs=1e-6)
    for incident in _rows(tmp_path / "out" / "incidents.csv"):
        assert float(incident["start_s"]) == pytest.approx(
            float(incident["start_stamp"]) - result.t0, abs=1e-6
        )
    html = (tmp_path / "out" / "report.html").read_text()
    assert "blackout" in html and "data:image/png;base64," in html
    # /diagnostics as the node publishes them: once per second of bag time, every sensor, modality
    # and the monitor, here at 1.5 s of drive: at 0 s and 1 s, then the state after the last message
    diagnostics = [
        (log_time, m)
        for t, _, log_time, m in read_messages(
            tmp_path / "out" / "output", None, project_typestore(), ReadStats()
        )
        if t == "/diagnostics"
    ]
    assert len(diagnostics) == 3
    periodic = {s.hardware_id: s for s in diagnostics[1][1].status}
    assert {"cam_front", "radar_front", "lidar_top", "camera", "radar", "lidar", "lmd_monitor"} <= set(
        periodic
    )
    monitor = {kv.key: kv.value for kv in periodic["lmd_monitor"].values}
    assert monitor["frames_processed"] == "11" and monitor["frames_dropped"] == "0"
    final_time, final = diagnostics[-1]
    last_message = max(
        log_time
        for _, _, log_time, _ in read_messages(drives["mcap"].bag, None, project_typestore(), ReadStats())
    )
    assert final_time == last_message  # stamped with the bag's last message, after every frame
    assert [(s.hardware_id, s.level, s.message) for s in final.status] == [
        (r.hardware_id, r.level, r.message) for r in result.diagnostics
    ]
    monitor = {kv.key: kv.value for kv in final.status[-1].values}
    assert monitor["frames_processed"] == "15" and final.status[-1].hardware_id == "lmd_monitor"
    last = periodic
    camera = {kv.key: kv.value for kv in last["cam_front"].values}
    assert camera["signal_checks"] in ("ok", "suspect", "failed") and camera["messages_lost"] == "0"
    # summary.json: the same numbers as the CSVs
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["frames"] == {"total": 15, "processed": 15, "dropped": 0, "dropped_by_reason": {}}
    assert summary["alerts"]["count"] == len(result.alerts)
    assert summary["incidents"]["count"] == len(result.incidents)
    assert sum(summary["incidents"]["by_sensor"].values()) == len(result.incidents)
    assert summary["messages"]["read"] == result.stats.messages
    shares = [float(r["share_camera"]) for r in processed]
    assert summary["shares"]["camera"] == pytest.approx(sum(shares) / len(shares), abs=1e-4)
    assert summary["latency_ms"]["p50"] > 0 and summary["decomposition"].startswith("compiled")
    # the progress bar's total: what the index says will be read
    sensor_topics = [t.topic for t in bag_info(drives["mcap"].bag).topics if t.topic != "/tf_static"]
    assert message_count(drives["mcap"].bag, [*sensor_topics, "/tf_static"]) == result.stats.messages
    assert message_count(tmp_path / "nowhere", sensor_topics) is None
    assert max(float(r["conservation_error"]) for r in processed) < 1e-4


def test_a_dead_lidar_is_reported_not_silenced(model, tmp_path):
    # The LiDAR (key sensor) publishes nothing from 0.5 to 1.3 s: the cameras take over as the key
    # (key_fallback), so the monitor keeps producing frames and says the LiDAR is missing.
    drive = simulate_to_bag(
        tmp_path / "drive",
        duration_s=2.0,
        seed=5,
        faults="lidar:dropout@0.5-1.3",
        camera_size=(224, 128),
        progress=False,
    )
    result = analyze(drive.bag, model, tmp_path / "out", progress=False, keep_reports=True)
    rows = _rows(tmp_path / "out" / "frames.csv")
    t = [round(float(r["stamp"]) - 1.7e9, 3) for r in rows]
    assert all(r["status"] == "processed" for r in rows)
    inside = [x for x in t if 0.5 <= x < 1.3]  # camera-triggered: > key_gap_s (0.25 s) from a sweep
    assert len(inside) >= 3 and inside[0] > 0.4 + 0.25 and inside[-1] < 1.3 - 0.25, t
    without = [round(r.stamp - 1.7e9, 3) for r in result.reports if not r.present["lidar"]]
    assert without == inside  # the frames in the dropout and only those lack the LiDAR
    # raised when the LiDAR goes missing (modality) and stale (lidar_top), cleared at the first
    # sweep after the dropout, and at no other time
    lidar = {
        (round(a.stamp - 1.7e9, 3), a.kind)
        for a in result.alerts
        if a.modality == "lidar" and a.kind in ("SENSOR_MISSING", "SENSOR_STALE", "SENSOR_RECOVERED")
    }
    back = min(x for x in t if x > max(inside))
    assert lidar == {
        (inside[0], "SENSOR_MISSING"),
        (inside[0], "SENSOR_STALE"),
        (back, "SENSOR_RECOVERED"),
    }, (lidar, back)


def _without_latency(text: str) -> list[dict[str, str]]:
    """frames.csv rows without the one column that varies from run to run (wall-clock latency)."""
    rows = list(csv.DictReader(text.splitlines()))
    for row in rows:
        row.pop("latency_ms")
    return rows


def test_mcap_and_sqlite3_give_identical_frames(drives, model, tmp_path):
    for storage in ("mcap", "sqlite3"):
        analyze(drives[storage].bag, model, tmp_path / storage, progress=False)
    mcap = (tmp_path / "mcap" / "frames.csv").read_text()
    sqlite = (tmp_path / "sqlite3" / "frames.csv").read_text()
    assert _without_latency(mcap) == _without_latency(sqlite)
    assert (tmp_path / "mcap" / "alerts.csv").read_text() == (tmp_path / "sqlite3" / "alerts.csv").read_text()


def test_truncated_bag_gives_a_clear_error_and_the_frames_before_it(drives, model, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(drives["mcap"].bag, broken)
    data = next(broken.glob("*.mcap"))
    size = data.stat().st_size
    with open(data, "r+b") as handle:
        handle.truncate(size // 2)
    with pytest.raises(BagError, match="broken") as info:
        analyze(broken, model, tmp_path / "out", progress=False)
    rows = _rows(tmp_path / "out" / "frames.csv")
    assert 0 < len(rows) < 15
    assert "frames read before it" in str(info.value)


def test_batch_size_and_worker_threads_do_not_change_the_analysis(drives, model, tmp_path):
    """Frames, detections, alerts and incidents are the same; the shares agree to float rounding:
    the decomposition runs compiled per batch size (and a batch size's kernels round differently,
    which flips the activation rule's secant in a few cells where a pre-activation is ~0)."""
    runs = {}
    for batch, workers in ((1, 1), (3, 2)):
        out = tmp_path / f"b{batch}w{workers}"
        analyze(drives["mcap"].bag, model, out, batch=batch, workers=workers, progress=False)
        frames = _rows(out / "frames.csv")
        alerts = [{k: v for k, v in r.items() if k != "message"} for r in _rows(out / "alerts.csv")]
        runs[batch, workers] = frames, alerts, (out / "incidents.csv").read_text()
    (frames_a, alerts_a, incidents_a), (frames_b, alerts_b, incidents_b) = runs[1, 1], runs[3, 2]
    assert len(frames_a) == len(frames_b) == 15
    assert alerts_a == alerts_b and incidents_a == incidents_b
    measured = ("latency_ms", "conservation_error", "decomposition_error")
    for a, b in zip(frames_a, frames_b):
        assert {k: v for k, v in a.items() if k not in measured and not k.startswith("share_")} == {
            k: v for k, v in b.items() if k not in measured and not k.startswith("share_")
        }
        for key in (k for k in a if k.startswith("share_")):
            assert float(a[key]) == pytest.approx(float(b[key]), abs=2e-3), key


def test_not_a_bag_is_named(tmp_path, model):
    (tmp_path / "empty").mkdir()
    with pytest.raises(BagError, match="empty"):
        analyze(tmp_path / "empty", model, tmp_path / "out", progress=False)
