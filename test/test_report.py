"""The analysis report's tables, from hand-made rows (no model, no bag): both clocks in every CSV."""

from __future__ import annotations

import csv

import pytest

from ros2_lmd.monitor.incidents import Incident
from ros2_lmd.monitor.report import ERROR, SENSOR_FAILED, WARN
from ros2_lmd.replay.report import (
    AlertRow,
    FrameRow,
    write_alerts_csv,
    write_frames_csv,
    write_incidents_csv,
)

T0 = 1_700_000_000.0


def _read(path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _incident(n: int, sensor: str, modality: str, start: float, end: float | None, severity: int) -> Incident:
    return Incident(
        id=n,
        sensor=sensor,
        modality=modality,
        sensors=(sensor,),
        kinds=["silent"],
        evidence="no messages",
        start=T0 + start,
        start_ns=int(round((T0 + start) * 1e9)),
        peak_severity=severity,
        last_evidence=T0 + start,
        end=None if end is None else T0 + end,
    )


# --- CSV: bag time and time since the start of the drive ------------------------------------------


def test_frames_and_alerts_carry_the_stamp_and_the_seconds_since_the_start(tmp_path):
    frames = [
        FrameRow.skipped(T0 + 0.05, "late"),
        FrameRow(T0 + 0.1, "processed", shares={"camera": 0.5, "radar": 0.2, "lidar": 0.3}),
        FrameRow(T0 + 12.345678, "processed"),
    ]
    alerts = [AlertRow(T0 + 2.2, SENSOR_FAILED, ERROR, "camera", "black", "cam_front")]
    write_frames_csv(tmp_path / "frames.csv", frames, T0)
    write_alerts_csv(tmp_path / "alerts.csv", alerts, T0)
    frame_rows, alert_rows = _read(tmp_path / "frames.csv"), _read(tmp_path / "alerts.csv")
    assert list(frame_rows[0])[:3] == ["stamp", "since_start_s", "status"]
    assert [r["stamp"] for r in frame_rows] == [f"{T0 + s:.6f}" for s in (0.05, 0.1, 12.345678)]
    assert [r["since_start_s"] for r in frame_rows] == ["0.050000", "0.100000", "12.345678"]
    assert list(alert_rows[0]) == [
        "stamp",
        "since_start_s",
        "kind",
        "severity",
        "modality",
        "sensor",
        "message",
    ]
    assert (alert_rows[0]["stamp"], alert_rows[0]["since_start_s"]) == (f"{T0 + 2.2:.6f}", "2.200000")
    assert alert_rows[0]["sensor"] == "cam_front"


def test_incidents_carry_both_clocks_and_an_open_incident_has_no_end(tmp_path):
    incidents = [
        _incident(1, "lidar_top", "lidar", 3.1, 5.25, ERROR),
        _incident(2, "radar_front", "radar", 4, None, WARN),
    ]
    write_incidents_csv(tmp_path / "incidents.csv", incidents, T0)
    closed, still_open = _read(tmp_path / "incidents.csv")
    assert float(closed["start_s"]) == pytest.approx(float(closed["start_stamp"]) - T0, abs=1e-6) == 3.1
    assert float(closed["end_s"]) == pytest.approx(float(closed["end_stamp"]) - T0, abs=1e-6) == 5.25
    assert (still_open["end_s"], still_open["end_stamp"]) == ("", "")
