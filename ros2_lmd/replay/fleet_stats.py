"""Fleet statistics over the analysed bags (`ros2-lmd fleet`): everything fleet_summary.json holds,
computed from each bag's outputs as read back (BagData). Pure: no file, no figure; fleet_files.py
reads and writes, fleet_report.py draws.

What it answers, overall and per bag: incidents per sensor per hour of driving, how long they last
and on what evidence; how each modality's share of the evidence is spread over bags and over the
time of day (UTC hours of the frames' stamps, when they are wall-clock times); how often a
detection rests on one modality alone; whether a modality's share drifts over the fleet's timeline
(a slowly degrading sensor: the Theil-Sen slope of the bags' mean shares against their start
times, robust to the few bags whose share a fault pulls down); and whether the model leans on one
modality more than its quality alone justifies (eval/imbalance.py).

The imbalance diagnosis uses each modality's mean share over the fleet's *healthy* frames:
processed frames outside every incident of their bag, with positive evidence, each frame counted
once. A mean, not a median: per-frame shares sum to 1 over the modalities and so do their means,
which is what the comparison with the quality-justified split (also summing to 1) needs. Healthy
frames only: a sensor fault lowers that sensor's share while it lasts, which says nothing about the
model's habits."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from ros2_lmd.eval.imbalance import ImbalanceRule, ModalityQuality, diagnose_imbalance
from ros2_lmd.replay.fleet_records import BagOutcome, FleetBag
from ros2_lmd.replay.numbers import finite_mean, finite_or_none, finite_values

FLEET_SUMMARY_VERSION = 1
SECONDS_PER_DAY = 86400.0
WALL_CLOCK_FROM = 946684800.0  # 2000-01-01 UTC: earlier stamps are not times of day (sim time, uptime)
DRIFT_MIN_BAGS = 3
DRIFT_CHANGE = 0.05  # a fitted change of the share over the fleet's span that counts as drift
DRIFT_METHOD = (
    "Theil-Sen slope (median of pairwise slopes, scipy.stats.theilslopes) of each bag's mean share "
    "against its start time, with its 95 % confidence interval; drifting when the interval excludes 0 "
    f"and the fitted change over the fleet's span is at least {DRIFT_CHANGE:.2f}"
)
SHARE_STATISTIC = (
    "mean share over the fleet's healthy frames (processed, outside every incident of their bag, with "
    "positive evidence; each frame counted once): means of per-frame shares sum to 1 like the "
    "quality-justified split they are compared with, and a fault's frames say nothing about the model"
)
QUALITY_STATISTIC = (
    "IoU of each modality's prediction alone (the other modalities' features zeroed: LMD's reference "
    "input) against ground-truth vehicle occupancy, on simulated validation scenes with the same model "
    "(the bags carry no ground truth); IoU, the BEV head's task metric, because cell accuracy would be "
    "~99 % for a modality that predicts nothing"
)
RSC_MD = (
    "Representation Space Constrained Learning with Modality Decoupling for Multimodal Object "
    "Detection (Shao and Shi, arXiv:2511.15433, 2025)"
)


@dataclass
class BagData:
    """One bag's outcome and, where it has outputs, what they hold."""

    bag: FleetBag
    outcome: BagOutcome
    summary: dict[str, Any] | None = None
    incidents: list[dict[str, str]] = field(default_factory=list)  # incidents.csv rows
    frames: list[dict[str, str]] = field(default_factory=list)  # frames.csv rows, processed frames

    @property
    def start(self) -> float:
        return float(self.summary["drive"]["start_stamp"]) if self.summary else math.nan

    @property
    def duration_s(self) -> float:
        return float(self.summary["drive"]["duration_s"]) if self.summary else 0.0

    @property
    def end(self) -> float:
        return self.start + self.duration_s


@dataclass
class IncidentRecord:
    bag: str
    row: dict[str, str]
    duration_s: float
    open: bool

    @property
    def kinds(self) -> list[str]:
        return self.row["evidence_kinds"].split()


def incident_records(bags: Sequence[BagData]) -> list[IncidentRecord]:
    """Every incident of the fleet; an incident still open at the end of its bag lasts to that end."""
    records = []
    for data in bags:
        for row in data.incidents:
            start = float(row["start_stamp"])
            is_open = row["end_stamp"] == ""
            end = data.end if is_open else float(row["end_stamp"])
            records.append(IncidentRecord(data.bag.name, row, max(0.0, end - start), is_open))
    return records


def _distribution(values: Sequence[float | None]) -> dict[str, float | int | None]:
    values = finite_values(values)
    if not values:
        return {"n": 0, "mean": None, "median": None, "p10": None, "p90": None, "min": None, "max": None}
    return {
        "n": len(values),
        "mean": float(np.mean(values)),
        "median": float(np.median(values)),
        "p10": float(np.percentile(values, 10)),
        "p90": float(np.percentile(values, 90)),
        "min": float(min(values)),
        "max": float(max(values)),
    }


def _by_sensor(records: Sequence[IncidentRecord], hours: float) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for sensor in sorted({r.row["sensor"] for r in records}):
        mine = [r for r in records if r.row["sensor"] == sensor]
        durations = [r.duration_s for r in mine]
        out[sensor] = {
            "modality": mine[0].row["modality"],
            "count": len(mine),
            "per_hour": len(mine) / hours if hours > 0 else None,
            "duration_s": {
                "median": float(statistics.median(durations)),
                "max": float(max(durations)),
                "total": float(sum(durations)),
            },
            "open_at_end": sum(r.open for r in mine),
            "evidence_kinds": dict(sorted(Counter(k for r in mine for k in r.kinds).items())),
        }
    return out


def _share(row: dict[str, str], modality: str) -> float:
    value = row.get(f"share_{modality}", "")
    return float(value) if value != "" else math.nan


def healthy_frames(data: BagData, modalities: Sequence[str]) -> list[dict[str, float]]:
    """Shares of the bag's processed frames outside all its incidents, with positive evidence."""
    windows = [
        (float(r["start_stamp"]), math.inf if r["end_stamp"] == "" else float(r["end_stamp"]))
        for r in data.incidents
    ]
    healthy = []
    for row in data.frames:
        stamp = float(row["stamp"])
        if any(start <= stamp <= end for start, end in windows):
            continue
        shares = {m: _share(row, m) for m in modalities}
        if all(math.isfinite(s) for s in shares.values()) and sum(shares.values()) > 0:
            healthy.append(shares)
    return healthy


def time_of_day(bags: Sequence[BagData], modalities: Sequence[str]) -> dict[str, Any]:
    """Mean share per UTC hour of the frames' stamps, when they are wall-clock times spanning at
    least two hours of the day; otherwise the reason there is none."""
    stamps = [(float(r["stamp"]), r) for data in bags for r in data.frames]
    if not stamps:
        return {"reason": "no processed frames"}
    if min(s for s, _ in stamps) < WALL_CLOCK_FROM:
        return {"reason": "the stamps are not wall-clock times (before 2000): no time of day"}
    hours: dict[int, list[dict[str, str]]] = {}
    for stamp, row in stamps:
        hours.setdefault(datetime.fromtimestamp(stamp, timezone.utc).hour, []).append(row)
    if len(hours) < 2:
        (hour,) = hours
        return {"reason": f"every frame falls in the hour {hour:02d}:00-{hour:02d}:59 UTC"}
    return {
        "hours_utc": {
            f"{hour:02d}": {
                "frames": len(rows),
                **{m: finite_mean([_share(r, m) for r in rows]) for m in modalities},
            }
            for hour, rows in sorted(hours.items())
        }
    }


def drift(bags: Sequence[BagData], modalities: Sequence[str]) -> dict[str, Any]:
    """Per modality the trend of the bags' mean shares over their start times (DRIFT_METHOD)."""
    from scipy.stats import theilslopes

    points = [(data.start, data.summary["shares"]) for data in bags if data.summary]
    starts = sorted({start for start, _ in points})
    if len(starts) < DRIFT_MIN_BAGS:
        return {
            "method": DRIFT_METHOD,
            "reason": f"{len(starts)} distinct bag start times: a trend needs at least {DRIFT_MIN_BAGS}",
        }
    first = starts[0]
    span_days = (starts[-1] - first) / SECONDS_PER_DAY
    out: dict[str, Any] = {"method": DRIFT_METHOD, "span_days": span_days, "by_modality": {}}
    for m in modalities:
        pairs = [((s - first) / SECONDS_PER_DAY, shares.get(m)) for s, shares in points]
        pairs = [(x, y) for x, y in pairs if y is not None and math.isfinite(y)]
        if len({x for x, _ in pairs}) < DRIFT_MIN_BAGS:
            out["by_modality"][m] = {"bags": len(pairs), "reason": "too few bags with this modality's share"}
            continue
        x, y = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
        slope, intercept, low, high = theilslopes(y, x, 0.95)
        change = float(slope * span_days)
        out["by_modality"][m] = {
            "bags": len(pairs),
            "slope_per_day": float(slope),
            "intercept": float(intercept),
            "ci95_per_day": [float(low), float(high)],
            "change_over_span": change,
            "drifting": bool((low > 0 or high < 0) and abs(change) >= DRIFT_CHANGE),
            "direction": "falling" if slope < 0 else "rising" if slope > 0 else "flat",
        }
    return out


def single_sensor(bags: Sequence[BagData], modalities: Sequence[str], hours: float) -> dict[str, Any]:
    """How often a detection rests on one modality alone, per modality (summary.json totals)."""
    summaries = [data.summary for data in bags if data.summary]
    detections = sum(s["detections"] for s in summaries)
    broken_down = [s for s in summaries if "single_sensor_detections_by_modality" in s]
    by_modality = {}
    for m in modalities:
        count = sum(s["single_sensor_detections_by_modality"].get(m, 0) for s in broken_down)
        base = sum(s["detections"] for s in broken_down)
        by_modality[m] = {
            "count": count,
            "per_detection": count / base if base else None,
            "per_hour": count / hours if hours > 0 else None,
        }
    return {
        "detections": detections,
        "single_sensor": sum(s["single_sensor_detections"] for s in summaries),
        "by_modality": by_modality,
        # summary.json before version 2 has no breakdown: those bags are left out of by_modality
        "bags_without_breakdown": len(summaries) - len(broken_down),
    }


def imbalance(
    bags: Sequence[BagData], modalities: Sequence[str], quality: ModalityQuality | None, rule: ImbalanceRule
) -> dict[str, Any]:
    """Healthy-frame shares against quality alone (eval/imbalance.py)."""
    out: dict[str, Any] = {
        "share_statistic": SHARE_STATISTIC,
        "quality_statistic": QUALITY_STATISTIC,
        "rule": rule.describe(),
        "concept": RSC_MD,
    }
    frames = [shares for data in bags for shares in healthy_frames(data, modalities)]
    out["healthy_frames"] = len(frames)
    if quality is None:
        out["reason"] = "not measured (--quality-frames 0)"
        return out
    out["quality"] = {
        "frames": quality.frames,
        "threshold": quality.threshold,
        "fused_iou": finite_or_none(quality.fused),
        "alone_iou": {m: finite_or_none(q) for m, q in quality.alone.items()},
    }
    if not frames:
        out["reason"] = "no healthy frame with positive evidence"
        return out
    shares = {m: float(np.mean([f[m] for f in frames])) for m in modalities}
    diagnosis = diagnose_imbalance(shares, {m: quality.alone[m] for m in modalities}, rule)
    out["by_modality"] = {
        m: {
            "share": finite_or_none(v.share),
            "quality_iou": finite_or_none(v.quality),
            "justified_share": finite_or_none(v.justified_share),
            "ratio": finite_or_none(v.ratio),
            "verdict": v.verdict,
            "reason": v.reason,
        }
        for m, v in diagnosis.verdicts.items()
    }
    out["leans_on"] = diagnosis.leans_on
    return out


def fleet_summary(
    bags: Sequence[BagData],
    model: str,
    modalities: Sequence[str],
    quality: ModalityQuality | None,
    rule: ImbalanceRule | None = None,
) -> dict[str, Any]:
    """Everything fleet_summary.json holds (see the module docstring); independent of the order
    the bags were analysed in and of how many workers there were."""
    rule = rule or ImbalanceRule()
    with_outputs = [data for data in bags if data.summary]
    seconds = sum(data.duration_s for data in with_outputs)
    hours = seconds / 3600.0
    records = incident_records(with_outputs)
    statuses = Counter(data.outcome.status for data in bags)
    by_bag = {}
    for data in with_outputs:
        bag_hours = data.duration_s / 3600.0
        mine = [r for r in records if r.bag == data.bag.name]
        by_bag[data.bag.name] = {
            "hours": bag_hours,
            "incidents": len(mine),
            "per_hour": len(mine) / bag_hours if bag_hours > 0 else None,
            "by_sensor": _by_sensor(mine, bag_hours),
        }
    return {
        "fleet_summary_version": FLEET_SUMMARY_VERSION,
        "model": model,
        "modalities": list(modalities),
        "bags": {
            "total": len(bags),
            **{status: statuses.get(status, 0) for status in ("analysed", "reused", "partial", "failed")},
            "problems": [
                {
                    "name": d.bag.name,
                    "bag": str(d.bag.path),
                    "status": d.outcome.status,
                    "error": d.outcome.error,
                }
                for d in bags
                if d.outcome.error
            ],
        },
        "driving": {
            "hours": hours,
            "frames_processed": sum(d.summary["frames"]["processed"] for d in with_outputs),
            "frames_dropped": sum(d.summary["frames"]["dropped"] for d in with_outputs),
            "first_start_stamp": min((d.start for d in with_outputs), default=None),
            "last_start_stamp": max((d.start for d in with_outputs), default=None),
        },
        "incidents": {
            "count": len(records),
            "per_hour": len(records) / hours if hours > 0 else None,
            "evidence_kinds": dict(sorted(Counter(k for r in records for k in r.kinds).items())),
            "by_sensor": _by_sensor(records, hours),
            "by_bag": by_bag,
        },
        "shares": {
            "statistic": "each bag's mean share over its processed frames (summary.json), faults included",
            "per_bag": {
                m: _distribution([d.summary["shares"].get(m) for d in with_outputs]) for m in modalities
            },
        },
        "time_of_day": time_of_day(with_outputs, modalities),
        "single_sensor": single_sensor(with_outputs, modalities, hours),
        "drift": drift(with_outputs, modalities),
        "imbalance": imbalance(with_outputs, modalities, quality, rule),
    }


def utc_time(stamp: float) -> str:
    """The stamp as a UTC date and time, when it is a wall-clock time; else empty."""
    if not stamp >= WALL_CLOCK_FROM:
        return ""
    return datetime.fromtimestamp(stamp, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


__all__ = [
    "FLEET_SUMMARY_VERSION",
    "BagData",
    "IncidentRecord",
    "incident_records",
    "healthy_frames",
    "time_of_day",
    "drift",
    "single_sensor",
    "imbalance",
    "fleet_summary",
    "utc_time",
]
