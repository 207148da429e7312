"""`analyze` end to end on simulated bags with the shipped model: a sensor fault becomes one
incident naming the sensor (incidents.csv, the terminal, report.html, an exit status to gate
bags), a fault-free drive none, and one wild stamp in a fault-free bag costs nothing but a named
problem (it once turned half the frames camera-only and raised false alerts)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from ros2_lmd import cli
from ros2_lmd.messages.types import rosbags_types
from ros2_lmd.models.io import load_model
from ros2_lmd.replay.analyze import analyze
from ros2_lmd.replay.bag import BagWriter, ReadStats, read_messages
from ros2_lmd.replay.simulate import simulate_to_bag

pytestmark = pytest.mark.slow  # test/conftest.py: tiers

DURATION_S = 7.0


@pytest.fixture(scope="module")
def model():
    return load_model("compact_crl")


def _drive(folder: Path, faults: str | None, seed: int = 4) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return simulate_to_bag(
        folder / "drive",
        duration_s=DURATION_S,
        seed=seed,
        faults=faults,
        camera_size=(224, 128),
        progress=False,
    ).bag


def _incident_rows(out: Path) -> list[dict]:
    with open(out / "incidents.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_a_silent_lidar_is_one_incident_naming_it(model, tmp_path, capsys):
    bag = _drive(tmp_path / "fault", "lidar_top:dropout@3-5")
    out = tmp_path / "out"
    code = cli.main(
        [
            "analyze",
            str(bag),
            "--out",
            str(out),
            "--faults",
            str(bag / "faults.csv"),
            "--fail-on-incidents",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 3  # incidents found: the bag fails the gate
    (row,) = _incident_rows(out)
    assert (row["sensor"], row["modality"], row["severity"]) == ("lidar_top", "lidar", "ERROR")
    assert 3.0 <= float(row["start_s"]) <= 3.0 + 1.5 and float(row["end_s"]) >= 5.0
    assert "silent" in row["evidence_kinds"]
    assert "INCIDENT #1 lidar_top: 3." in printed and "ERROR [silent]" in printed
    page = (out / "report.html").read_text()
    assert (
        page.index("Sensor incidents") < page.index("<h2>Summary") and "Detected within 1.5 s: 100%" in page
    )


def test_a_fault_free_drive_opens_no_incident(model, tmp_path):
    result = analyze(_drive(tmp_path, None, seed=6), model, tmp_path / "out", progress=False)
    assert result.incidents == [] and _incident_rows(tmp_path / "out") == []
    assert result.processed == len(result.frames) == round(DURATION_S * 10)


def test_one_future_stamp_in_a_fault_free_bag_costs_one_message(model, tmp_path):
    clean = _drive(tmp_path / "clean", None, seed=6)
    types = rosbags_types()
    stamped = tmp_path / "stamped"
    stats = ReadStats()
    seen = 0
    with BagWriter(stamped, types.typestore) as writer:
        for topic, msgtype, log_time, message in read_messages(clean, None, types.typestore, stats):
            if topic == "/radar_front":
                seen += 1
                if seen == 30:  # one message mid-drive, from 11.6 days in the future
                    message.header.stamp.sec += 1_000_000
            writer.write(topic, msgtype, log_time, message, latched=topic == "/tf_static")
    altered = int(seen >= 30)
    assert altered == 1
    result = analyze(stamped, model, tmp_path / "out", progress=False)
    assert result.incidents == []
    assert result.processed == len(result.frames) == round(DURATION_S * 10)
    # its frame goes without that one radar (stale for one frame at most), nothing more
    assert (
        len([a for a in result.alerts if a.kind.startswith("SENSOR_") and a.kind != "SENSOR_RECOVERED"]) <= 1
    )
    assert (
        [reason for topic, reason in result.problems if topic == "/radar_front"]
        == [reason for topic, reason in result.problems if "implausible stamp" in reason]
        != []
    )


def test_a_camera_radar_model_analyses_a_full_rig_bag_and_names_a_ghosting_radar(tmp_path):
    # compact_cr takes no LiDAR: analyze leaves the LiDAR topic alone, a radar becomes the key sensor,
    # and the LiDAR's own fault (a dropout) is nobody's incident
    bag = _drive(tmp_path, "radar_back_left:ghosts:60@3-5,lidar_top:dropout@3-5", seed=5)
    result = analyze(bag, load_model("compact_cr"), tmp_path / "out", progress=False, keep_reports=True)
    assert result.processed == len(result.frames) >= round(DURATION_S * 10) - 2
    assert all(set(r.components) == {"camera", "radar", "bias"} for r in result.reports)
    (incident,) = result.incidents
    assert (incident.sensor, incident.modality) == ("radar_back_left", "radar")
    assert "isolated" in incident.kinds and 3.0 <= incident.start - result.t0 <= 4.5
    assert not any("lidar" in r["sensor"] for r in _incident_rows(tmp_path / "out"))


@pytest.mark.parametrize(
    "faults, expected",
    [(None, []), ("cam_back_left:frozen@3-5", [("cam_back_left", "camera")])],
    ids=["clean", "frozen-camera"],
)
def test_sensors_at_their_own_rates_judge_each_reading_once(model, tmp_path, faults, expected):
    # --rig nuscenes: 12 Hz cameras and 13 Hz radars beside a 20 Hz LiDAR, so the time sync gives
    # most camera images to two frames; judged twice, every camera looked frozen (a false incident
    # on every drive). A camera that really freezes still opens one.
    bag = simulate_to_bag(
        tmp_path / "drive",
        duration_s=DURATION_S,
        seed=4,
        faults=faults,
        camera_size=(224, 128),
        rig="nuscenes",
        progress=False,
    ).bag
    result = analyze(bag, model, tmp_path / "out", progress=False, outputs="summary")
    assert result.processed == round(DURATION_S * 20)
    assert [(i.sensor, i.modality) for i in result.incidents] == expected
