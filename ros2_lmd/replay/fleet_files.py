"""The fleet report's files: each bag's outputs read back as `analyze` wrote them (summary.json,
incidents.csv, frames.csv), and the fleet's tables written: fleet_summary.json, fleet_bags.csv (one
row per bag) and fleet_incidents.csv (one row per incident, with its bag)."""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ros2_lmd.replay.fleet_records import BagOutcome, FleetBag
from ros2_lmd.replay.fleet_stats import BagData, IncidentRecord, utc_time
from ros2_lmd.replay.numbers import format_number

BAG_COLUMNS = (
    "name",
    "bag",
    "status",
    "error",
    "start_stamp",
    "start_utc",
    "duration_s",
    "frames_processed",
    "frames_dropped",
    "incidents",
    "incidents_per_hour",
    "incidents_by_sensor",
)
INCIDENT_COLUMNS = (
    "bag",
    "id",
    "sensor",
    "modality",
    "severity",
    "start_s",
    "end_s",
    "duration_s",
    "open",
    "evidence_kinds",
    "start_stamp",
    "end_stamp",
    "evidence",
)


def load_bag(bag: FleetBag, outcome: BagOutcome, folder: Path) -> BagData:
    """A bag's outputs as `analyze` wrote them into `folder` (nothing for a failed bag)."""
    data = BagData(bag, outcome)
    if not outcome.has_outputs:
        return data
    data.summary = json.loads((folder / "summary.json").read_text())
    data.incidents = _csv_rows(folder / "incidents.csv")
    data.frames = [r for r in _csv_rows(folder / "frames.csv") if r["status"] == "processed"]
    return data


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def write_fleet_summary_json(path: Path, summary: dict[str, Any]) -> None:
    path.write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")


def write_bags_csv(path: Path, bags: Sequence[BagData], modalities: Sequence[str]) -> None:
    """One row per bag: how it ended and, where it has outputs, its drive, incidents and shares."""
    columns = [
        *BAG_COLUMNS,
        *(f"share_{m}" for m in modalities),
        "detections",
        "single_sensor_detections",
        *(f"single_{m}" for m in modalities),
    ]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for data in bags:
            row = [data.bag.name, str(data.bag.path), data.outcome.status, data.outcome.error]
            s = data.summary
            if s is None:
                writer.writerow(row + [""] * (len(columns) - len(row)))
                continue
            hours = data.duration_s / 3600.0
            sensors = Counter(r["sensor"] for r in data.incidents)
            by_modality = s.get("single_sensor_detections_by_modality", {})
            writer.writerow(
                row
                + [
                    f"{data.start:.6f}",
                    utc_time(data.start),
                    f"{data.duration_s:.3f}",
                    s["frames"]["processed"],
                    s["frames"]["dropped"],
                    len(data.incidents),
                    f"{len(data.incidents) / hours:.2f}" if hours > 0 else "",
                    " ".join(f"{sensor}:{n}" for sensor, n in sorted(sensors.items())),
                    *(format_number(s["shares"].get(m)) for m in modalities),
                    s["detections"],
                    s["single_sensor_detections"],
                    *(by_modality.get(m, "") for m in modalities),
                ]
            )


def write_incidents_csv(path: Path, records: Sequence[IncidentRecord]) -> None:
    """One row per incident of the fleet (fleet_stats.incident_records), with its bag and duration."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(INCIDENT_COLUMNS)
        for r in records:
            row = r.row
            writer.writerow(
                [
                    r.bag,
                    row["id"],
                    row["sensor"],
                    row["modality"],
                    row["severity"],
                    row["start_s"],
                    row["end_s"],
                    f"{r.duration_s:.3f}",
                    "yes" if r.open else "",
                    row["evidence_kinds"],
                    row["start_stamp"],
                    row["end_stamp"],
                    row["evidence"],
                ]
            )


__all__ = [
    "BAG_COLUMNS",
    "INCIDENT_COLUMNS",
    "load_bag",
    "write_fleet_summary_json",
    "write_bags_csv",
    "write_incidents_csv",
]
