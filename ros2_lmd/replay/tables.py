"""The analysis tables: one record per frame (`FrameRow`) and per alert (`AlertRow`) as `analyze`
and the live demo collect them, and frames.csv, alerts.csv and incidents.csv written from them.

Every CSV carries both clocks: bag time (`stamp`, `start_stamp`, `end_stamp`: header stamps in
seconds since the epoch, to join with the bag and output.mcap) and seconds from the start of the
drive (`since_start_s`, `start_s`, `end_s`: from t0, the bag's first message, as faults.csv and the
report's axes count)."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ros2_lmd.monitor.report import SEVERITY_NAMES, FrameReport
from ros2_lmd.replay.numbers import format_number

FRAME_COLUMNS = (
    "stamp",
    "since_start_s",
    "status",
    "skip_reason",
    "share_camera",
    "share_radar",
    "share_lidar",
    "detections",
    "single_sensor_detections",
    "conservation_error",
    "latency_ms",
    "decomposition_error",
    "messages_lost",
)
ALERT_COLUMNS = ("stamp", "since_start_s", "kind", "severity", "modality", "sensor", "message")
INCIDENT_COLUMNS = (
    "id",
    "sensor",
    "modality",
    "sensors",
    "severity",
    "start_s",
    "end_s",
    "evidence_kinds",
    "evidence",
    "start_stamp",
    "end_stamp",
)


@dataclass
class FrameRow:
    """One key-sensor instant of the drive: processed (its shares, detections, timings) or skipped."""

    stamp: float
    status: str  # processed | skipped
    skip_reason: str = ""
    shares: dict[str, float] = field(default_factory=dict)
    detections: int = 0
    single_sensor: int = 0
    conservation_error: float = float("nan")
    latency_ms: float = float("nan")
    decomposition_error: float = float("nan")  # the self-check, on the frames it ran on
    messages_lost: int = 0  # sensor messages lost before the monitor so far (all sensors)
    # modality -> single-sensor detections it alone supports (Detection.dominant); summary.json only
    single_sensor_by_modality: dict[str, int] = field(default_factory=dict)

    @classmethod
    def processed(cls, report: FrameReport, messages_lost: int = 0) -> FrameRow:
        return cls(
            report.stamp,
            "processed",
            "",
            dict(report.shares),
            len(report.detections),
            sum(d.single_sensor for d in report.detections),
            report.conservation_error,
            report.latency_ms,
            report.decomposition_error,
            messages_lost,
            dict(Counter(d.dominant for d in report.detections if d.single_sensor)),
        )

    @classmethod
    def skipped(cls, stamp: float, reason: str, messages_lost: int = 0) -> FrameRow:
        return cls(stamp, "skipped", reason, messages_lost=messages_lost)


@dataclass
class AlertRow:
    """One alert as raised, at the stamp of its frame."""

    stamp: float
    kind: str
    severity: int
    modality: str
    message: str
    sensor: str = ""  # the sensor it names, when it is about one (Alert.sensor)


def _seconds(value: float) -> str:
    # float64 seconds at today's epoch resolve ~0.24 us: a seventh decimal would be rounding noise
    return f"{value:.6f}"


def write_frames_csv(path: Path, rows: Sequence[FrameRow], t0: float) -> None:
    """One row per frame; `t0` is the start of the drive that `since_start_s` counts from."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(FRAME_COLUMNS)
        for r in rows:
            writer.writerow(
                [
                    _seconds(r.stamp),
                    _seconds(r.stamp - t0),
                    r.status,
                    r.skip_reason,
                    *(format_number(r.shares.get(m)) for m in ("camera", "radar", "lidar")),
                    r.detections,
                    r.single_sensor,
                    format_number(r.conservation_error, ".3e"),
                    format_number(r.latency_ms, ".2f"),
                    format_number(r.decomposition_error, ".3e"),
                    r.messages_lost,
                ]
            )


def write_alerts_csv(path: Path, rows: Sequence[AlertRow], t0: float) -> None:
    """One row per alert; `t0` as for write_frames_csv."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(ALERT_COLUMNS)
        for a in rows:
            severity = SEVERITY_NAMES.get(a.severity, a.severity)
            writer.writerow(
                [_seconds(a.stamp), _seconds(a.stamp - t0), a.kind, severity, a.modality, a.sensor, a.message]
            )


def write_incidents_csv(path: Path, incidents: Sequence[Any], t0: float) -> None:
    """One row per incident (monitor.incidents.Incident): `start_s` / `end_s` in seconds from `t0`,
    `start_stamp` / `end_stamp` in bag time; the ends empty for an incident still open at the end of
    the bag."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(INCIDENT_COLUMNS)
        for i in incidents:
            writer.writerow(
                [
                    i.id,
                    i.sensor,
                    i.modality,
                    " ".join(i.sensors),
                    SEVERITY_NAMES.get(i.peak_severity, i.peak_severity),
                    _seconds(i.start - t0),
                    "" if i.end is None else _seconds(i.end - t0),
                    " ".join(i.kinds),
                    i.evidence,
                    _seconds(i.start),
                    "" if i.end is None else _seconds(i.end),
                ]
            )


__all__ = [
    "FrameRow",
    "AlertRow",
    "FRAME_COLUMNS",
    "ALERT_COLUMNS",
    "INCIDENT_COLUMNS",
    "write_frames_csv",
    "write_alerts_csv",
    "write_incidents_csv",
]
