"""The fleet report over many analysed bags (`ros2-lmd fleet`), read back from each bag's own
outputs (summary.json, incidents.csv, frames.csv), so bags reused from an earlier run and bags
analysed now count alike: fleet_summary.json, fleet_bags.csv (one row per bag), fleet_incidents.csv
(one row per incident, with its bag) and a self-contained fleet_report.html.

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

import csv
import html
import json
import math
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ros2_lmd.eval.imbalance import LEANS, UNDER_USED, ImbalanceRule, ModalityQuality, diagnose_imbalance
from ros2_lmd.replay.fleet import PARTIAL
from ros2_lmd.replay.report import HTML_STYLE, MODALITY_COLOURS, png_data_uri

if TYPE_CHECKING:
    from ros2_lmd.replay.fleet import BagOutcome, FleetBag

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


# --- statistics ------------------------------------------------------------------------------------


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


def _distribution(values: Sequence[float]) -> dict[str, float | int | None]:
    values = [v for v in values if math.isfinite(v)]
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
                **{m: _mean([_share(r, m) for r in rows]) for m in modalities},
            }
            for hour, rows in sorted(hours.items())
        }
    }


def _mean(values: Sequence[float]) -> float | None:
    values = [v for v in values if math.isfinite(v)]
    return float(np.mean(values)) if values else None


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
        "fused_iou": _json_float(quality.fused),
        "alone_iou": {m: _json_float(q) for m, q in quality.alone.items()},
    }
    if not frames:
        out["reason"] = "no healthy frame with positive evidence"
        return out
    shares = {m: float(np.mean([f[m] for f in frames])) for m in modalities}
    diagnosis = diagnose_imbalance(shares, {m: quality.alone[m] for m in modalities}, rule)
    out["by_modality"] = {
        m: {
            "share": _json_float(v.share),
            "quality_iou": _json_float(v.quality),
            "justified_share": _json_float(v.justified_share),
            "ratio": _json_float(v.ratio),
            "verdict": v.verdict,
            "reason": v.reason,
        }
        for m, v in diagnosis.verdicts.items()
    }
    out["leans_on"] = diagnosis.leans_on
    return out


def _json_float(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


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
                m: _distribution([_finite_or_nan(d.summary["shares"].get(m)) for d in with_outputs])
                for m in modalities
            },
        },
        "time_of_day": time_of_day(with_outputs, modalities),
        "single_sensor": single_sensor(with_outputs, modalities, hours),
        "drift": drift(with_outputs, modalities),
        "imbalance": imbalance(with_outputs, modalities, quality, rule),
    }


def _finite_or_nan(value: Any) -> float:
    return float(value) if value is not None else math.nan


# --- files ----------------------------------------------------------------------------------------


def write_fleet_report(
    out: Path,
    bags: Sequence[tuple[FleetBag, BagOutcome]],
    model: str,
    modalities: Sequence[str],
    quality: ModalityQuality | None,
    rule: ImbalanceRule | None = None,
) -> dict[str, Any]:
    """fleet_summary.json, fleet_bags.csv, fleet_incidents.csv and fleet_report.html in `out`, from
    each bag's outputs in `out/<bag name>/`. Returns the summary."""
    data = [load_bag(bag, outcome, out / bag.name) for bag, outcome in bags]
    summary = fleet_summary(data, model, modalities, quality, rule)
    (out / "fleet_summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")
    write_bags_csv(out / "fleet_bags.csv", data, modalities)
    write_incidents_csv(out / "fleet_incidents.csv", incident_records(data))
    write_html(out / "fleet_report.html", data, summary)
    return summary


def write_bags_csv(path: Path, bags: Sequence[BagData], modalities: Sequence[str]) -> None:
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
                    _utc(data.start),
                    f"{data.duration_s:.3f}",
                    s["frames"]["processed"],
                    s["frames"]["dropped"],
                    len(data.incidents),
                    f"{len(data.incidents) / hours:.2f}" if hours > 0 else "",
                    " ".join(f"{sensor}:{n}" for sensor, n in sorted(sensors.items())),
                    *(_fmt(s["shares"].get(m)) for m in modalities),
                    s["detections"],
                    s["single_sensor_detections"],
                    *(by_modality.get(m, "") for m in modalities),
                ]
            )


def _utc(stamp: float) -> str:
    if not stamp >= WALL_CLOCK_FROM:
        return ""
    return datetime.fromtimestamp(stamp, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _fmt(value: float | None, spec: str = ".4f") -> str:
    return "" if value is None or not math.isfinite(value) else format(value, spec)


def write_incidents_csv(path: Path, records: Sequence[IncidentRecord]) -> None:
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


# --- HTML -----------------------------------------------------------------------------------------


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def imbalance_figure(by_modality: dict[str, dict[str, Any]]) -> str:
    plt = _plt()
    names = list(by_modality)
    x = np.arange(len(names))
    share = [by_modality[m]["share"] or 0.0 for m in names]
    justified = [by_modality[m]["justified_share"] or 0.0 for m in names]
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    ax.bar(
        x - 0.2, share, 0.4, color=[MODALITY_COLOURS.get(m, "k") for m in names], label="share of evidence"
    )
    ax.bar(x + 0.2, justified, 0.4, color="white", edgecolor="k", hatch="//", label="justified by IoU alone")
    for i, m in enumerate(names):
        iou = by_modality[m]["quality_iou"]
        verdict = by_modality[m]["verdict"]
        text = f"IoU alone {iou:.2f}" if iou is not None else "IoU alone n/a"
        if verdict in (LEANS, UNDER_USED):
            text += f"\n{verdict.upper()}"
        ax.text(i, max(share[i], justified[i]) + 0.02, text, ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, names)
    ax.set_ylim(0, 1.15)
    ax.set_ylabel("share")
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(
        "Share of the fused evidence (healthy frames) vs the share quality alone justifies", fontsize=9
    )
    return png_data_uri(fig)


def incidents_figure(by_sensor: dict[str, dict[str, Any]]) -> str:
    plt = _plt()
    sensors = sorted(by_sensor, key=lambda s: (by_sensor[s]["modality"], s))
    fig, ax = plt.subplots(figsize=(7.5, 0.32 * len(sensors) + 1.2))
    rates = [by_sensor[s]["per_hour"] or 0.0 for s in sensors]
    ax.barh(
        range(len(sensors)),
        rates,
        color=[MODALITY_COLOURS.get(by_sensor[s]["modality"], "k") for s in sensors],
    )
    for i, s in enumerate(sensors):
        ax.text(rates[i], i, f" {by_sensor[s]['count']}", va="center", fontsize=8)
    ax.set_yticks(range(len(sensors)), sensors, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("incidents per hour of driving (label: count)")
    ax.set_title("Incidents per sensor (a modality's name: an incident of all its sensors)", fontsize=9)
    return png_data_uri(fig)


def shares_box_figure(bags: Sequence[BagData], modalities: Sequence[str]) -> str:
    plt = _plt()
    values = [
        [d.summary["shares"][m] for d in bags if d.summary and d.summary["shares"].get(m) is not None]
        for m in modalities
    ]
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    box = ax.boxplot(values, patch_artist=True, widths=0.5, showfliers=False)
    for patch, m in zip(box["boxes"], modalities):
        patch.set_facecolor(MODALITY_COLOURS.get(m, "k"))
        patch.set_alpha(0.35)
    rng = np.random.default_rng(0)  # jitter only: the same picture every run
    for i, (m, v) in enumerate(zip(modalities, values)):
        ax.plot(1 + i + rng.uniform(-0.12, 0.12, len(v)), v, "o", color=MODALITY_COLOURS.get(m, "k"), ms=4)
    ax.set_xticks(range(1, len(modalities) + 1), modalities)
    ax.set_ylim(0, 1)
    ax.set_ylabel("bag's mean share")
    ax.set_title(
        f"Each modality's share of the evidence over {len(values[0]) if values else 0} bags", fontsize=9
    )
    return png_data_uri(fig)


def time_of_day_figure(hours_utc: dict[str, dict[str, Any]], modalities: Sequence[str]) -> str:
    plt = _plt()
    hours = [int(h) for h in hours_utc]
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    for i, m in enumerate(modalities):  # markers side by side per hour; no lines across hours without data
        offset = (i - (len(modalities) - 1) / 2) * 0.18
        values = [hours_utc[f"{h:02d}"][m] for h in hours]
        ax.plot(
            [h + offset for h in hours],
            [v if v is not None else np.nan for v in values],
            "o",
            color=MODALITY_COLOURS.get(m, "k"),
            label=m,
        )
    for h in hours:
        frames = str(hours_utc[f"{h:02d}"]["frames"])
        ax.text(h, 1.03, frames, ha="center", va="bottom", fontsize=7, color="grey")
    ax.axhline(1.0, color="#dddddd", linewidth=0.8)
    ax.set_xlim(-0.5, 23.5)
    ax.set_xticks(range(0, 24, 2))
    ax.set_ylim(0, 1.12)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_xlabel("hour of day (UTC) of the frame's stamp (grey: frames)")
    ax.set_ylabel("mean share")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: hours fill the axes
    ax.set_title("Share of the evidence by time of day", fontsize=9)
    return png_data_uri(fig)


def drift_figure(bags: Sequence[BagData], result: dict[str, Any], modalities: Sequence[str]) -> str:
    plt = _plt()
    with_outputs = [d for d in bags if d.summary]
    first = min(d.start for d in with_outputs)
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    for m in modalities:
        colour = MODALITY_COLOURS.get(m, "k")
        pts = [((d.start - first) / SECONDS_PER_DAY, d.summary["shares"].get(m)) for d in with_outputs]
        pts = [(x, y) for x, y in pts if y is not None]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o", color=colour, ms=4)
        fit = result["by_modality"].get(m, {})
        if "slope_per_day" in fit:
            xs = np.array([0.0, result["span_days"]])
            label = f"{m}: {fit['slope_per_day']:+.3g}/day" + (
                f", {fit['direction']}" if fit["drifting"] else ""
            )
            ax.plot(xs, fit["intercept"] + fit["slope_per_day"] * xs, "-", color=colour, label=label)
    ax.set_ylim(0, 1)
    ax.set_xlabel(f"days since the first bag ({_utc(first) or 'bag time'})")
    ax.set_ylabel("bag's mean share")
    ax.legend(fontsize=8)
    ax.set_title("Share over the fleet's timeline (Theil-Sen fit per modality)", fontsize=9)
    return png_data_uri(fig)


def single_sensor_figure(result: dict[str, Any]) -> str:
    plt = _plt()
    names = list(result["by_modality"])
    rates = [(result["by_modality"][m]["per_detection"] or 0.0) * 100 for m in names]
    fig, ax = plt.subplots(figsize=(5.5, 3.0))
    ax.bar(names, rates, color=[MODALITY_COLOURS.get(m, "k") for m in names])
    for i, m in enumerate(names):
        ax.text(i, rates[i], f"{result['by_modality'][m]['count']}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("% of detections")
    ax.set_title("Detections resting on one modality alone (label: count)", fontsize=9)
    return png_data_uri(fig)


def _cell(value: Any, spec: str = ".3f") -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return format(value, spec) if math.isfinite(value) else ("inf" if value > 0 else "")
    return html.escape(str(value))


def write_html(path: Path, bags: Sequence[BagData], summary: dict[str, Any]) -> None:
    modalities = summary["modalities"]
    b, drive, inc = summary["bags"], summary["driving"], summary["incidents"]
    rate = f" ({inc['per_hour']:.1f} per hour)" if inc["per_hour"] is not None else ""
    parts = [
        f"<h1>ros2_lmd fleet report: {b['total']} bags</h1>",
        f"<p>Model <code>{html.escape(summary['model'])}</code>. {b['analysed']} analysed now, "
        f"{b['reused']} reused from an earlier run, {b['partial']} partial, {b['failed']} failed. "
        f"{drive['hours']:.3f} h of driving, {drive['frames_processed']} frames processed. "
        f"{inc['count']} sensor incidents{rate}.</p>",
    ]
    if b["problems"]:
        parts.append("<h2>Bags that failed</h2><table><tr><th>bag</th><th>status</th><th>error</th></tr>")
        for p in b["problems"]:
            parts.append(
                f"<tr class='sev-ERROR'><td>{html.escape(p['name'])}</td><td>{p['status']}</td>"
                f"<td>{html.escape(p['error'])}</td></tr>"
            )
        parts.append("</table>")
    parts += _imbalance_section(summary["imbalance"], modalities)
    parts.append("<h2>Sensor incidents</h2>")
    if inc["by_sensor"]:
        parts.append(f'<img src="{incidents_figure(inc["by_sensor"])}"/>')
        parts.append(
            "<table><tr><th>sensor</th><th>modality</th><th>incidents</th><th>per hour</th>"
            "<th>median duration [s]</th><th>longest [s]</th><th>open at bag end</th>"
            "<th>evidence kinds</th></tr>"
        )
        for sensor, s in inc["by_sensor"].items():
            kinds = ", ".join(f"{k} {n}" for k, n in s["evidence_kinds"].items())
            parts.append(
                f"<tr><td>{html.escape(sensor)}</td><td>{s['modality']}</td><td>{s['count']}</td>"
                f"<td>{_cell(s['per_hour'], '.1f')}</td><td>{s['duration_s']['median']:.2f}</td>"
                f"<td>{s['duration_s']['max']:.2f}</td><td>{s['open_at_end']}</td><td>{html.escape(kinds)}</td></tr>"
            )
        parts.append("</table>")
    else:
        parts.append("<p>None: no sensor showed a fault in any bag.</p>")
    with_outputs = [d for d in bags if d.summary]
    parts.append("<h2>Share of the evidence over bags</h2>")
    if with_outputs:
        parts.append(f'<img src="{shares_box_figure(with_outputs, modalities)}"/>')
        parts.append(
            "<table><tr><th>modality</th><th>bags</th><th>mean</th><th>median</th><th>p10</th><th>p90</th></tr>"
        )
        for m, d in summary["shares"]["per_bag"].items():
            parts.append(
                f"<tr><td>{m}</td><td>{d['n']}</td><td>{_cell(d['mean'])}</td><td>{_cell(d['median'])}</td>"
                f"<td>{_cell(d['p10'])}</td><td>{_cell(d['p90'])}</td></tr>"
            )
        parts.append("</table>")
    tod = summary["time_of_day"]
    parts.append("<h3>By time of day</h3>")
    if "hours_utc" in tod:
        parts.append(f'<img src="{time_of_day_figure(tod["hours_utc"], modalities)}"/>')
    else:
        parts.append(f"<p>No breakdown: {html.escape(tod['reason'])}.</p>")
    parts += _drift_section(with_outputs, summary["drift"], modalities)
    single = summary["single_sensor"]
    parts.append("<h2>Detections resting on one modality alone</h2>")
    parts.append(
        f"<p>{single['single_sensor']} of {single['detections']} detections are supported by one modality "
        "alone (SINGLE_SENSOR_SUPPORT: the others add no evidence, or the dominant one holds most of it)."
        + (
            f" {single['bags_without_breakdown']} bags have summaries without the per-modality breakdown."
            if single["bags_without_breakdown"]
            else ""
        )
        + "</p>"
    )
    if single["detections"]:
        parts.append(f'<img src="{single_sensor_figure(single)}"/>')
    parts += _bags_table(bags, modalities)
    parts.append(f"<p style='font-size:12px'>Modality imbalance as a concept: {html.escape(RSC_MD)}.</p>")
    path.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>ros2_lmd fleet report</title>"
        f"<style>{HTML_STYLE}</style></head><body>{''.join(parts)}</body></html>"
    )


def _imbalance_section(result: dict[str, Any], modalities: Sequence[str]) -> list[str]:
    parts = ["<h2>Modality imbalance</h2>"]
    if "by_modality" not in result:
        return parts + [f"<p>No diagnosis: {html.escape(result['reason'])}.</p>"]
    leans = result["leans_on"]
    verdict = (
        f"<b>The model leans on {', '.join(leans)}</b>: its share of the evidence is far above what its "
        "quality alone would justify."
        if leans
        else "No modality's share is far above what its quality alone justifies."
    )
    q = result["quality"]
    parts += [
        f"<p>{verdict}</p>",
        f'<img src="{imbalance_figure(result["by_modality"])}"/>',
        "<table><tr><th>modality</th><th>share of evidence</th><th>IoU alone</th><th>justified share</th>"
        "<th>share / justified</th><th>verdict</th></tr>",
    ]
    for m, v in result["by_modality"].items():
        row_class = " class='sev-WARN'" if v["verdict"] in (LEANS, UNDER_USED) else ""
        parts.append(
            f"<tr{row_class}><td>{m}</td><td>{_cell(v['share'])}</td>"
            f"<td>{_cell(v['quality_iou'])}</td><td>{_cell(v['justified_share'])}</td>"
            f"<td>{_cell(v['ratio'], '.2f')}</td><td>{v['verdict']}</td></tr>"
        )
    parts.append("</table>")
    parts.append(
        "<p style='font-size:13px'>"
        f"<b>Share</b>: {html.escape(result['share_statistic'])} ({result['healthy_frames']} frames).<br/>"
        f"<b>Quality</b>: {html.escape(result['quality_statistic'])} ({q['frames']} scenes; fused IoU "
        f"{_cell(q['fused_iou'])}).<br/><b>Rule</b>: {html.escape(result['rule'])}.</p>"
    )
    return parts


def _drift_section(bags: Sequence[BagData], result: dict[str, Any], modalities: Sequence[str]) -> list[str]:
    parts = ["<h2>Drift over the fleet's timeline</h2>"]
    if "by_modality" not in result:
        return parts + [f"<p>No trend: {html.escape(result['reason'])}.</p>"]
    parts.append(f'<img src="{drift_figure(bags, result, modalities)}"/>')
    parts.append(
        "<table><tr><th>modality</th><th>bags</th><th>slope [share/day]</th><th>95 % interval</th>"
        "<th>change over the span</th><th>drifting</th></tr>"
    )
    for m, d in result["by_modality"].items():
        if "slope_per_day" not in d:
            parts.append(
                f"<tr><td>{m}</td><td>{d['bags']}</td><td colspan='4'>{html.escape(d['reason'])}</td></tr>"
            )
            continue
        low, high = d["ci95_per_day"]
        parts.append(
            f"<tr{' class=sev-WARN' if d['drifting'] else ''}><td>{m}</td><td>{d['bags']}</td>"
            f"<td>{d['slope_per_day']:+.4g}</td><td>[{low:+.3g}, {high:+.3g}]</td>"
            f"<td>{d['change_over_span']:+.3f}</td><td>{d['direction'] if d['drifting'] else 'no'}</td></tr>"
        )
    parts.append("</table>")
    falling = [
        m for m, d in result["by_modality"].items() if d.get("drifting") and d["direction"] == "falling"
    ]
    if falling:
        parts.append(
            f"<p><b>{', '.join(falling)}: share falling over the fleet's timeline</b>, what a slowly "
            "degrading sensor shows (the shares sum to 1: the other modalities rise with it).</p>"
        )
    parts.append(
        f"<p style='font-size:13px'>{html.escape(result['method'])}; span {result['span_days']:.3g} days.</p>"
    )
    return parts


def _bags_table(bags: Sequence[BagData], modalities: Sequence[str]) -> list[str]:
    parts = [
        "<h2>Bags</h2><table><tr><th>bag</th><th>status</th><th>start (UTC)</th><th>duration [s]</th>"
        "<th>incidents</th>"
        + "".join(f"<th>{m} share</th>" for m in modalities)
        + "<th>detections</th><th>single-modality</th></tr>"
    ]
    for d in bags:
        name = html.escape(d.bag.name)
        link = f"<a href='{html.escape(d.bag.name)}/report.html'>{name}</a>" if d.summary else name
        if d.summary is None:
            parts.append(
                f"<tr class='sev-ERROR'><td>{link}</td><td>{d.outcome.status}</td>"
                f"<td colspan='{4 + len(modalities)}'>{html.escape(d.outcome.error)}</td></tr>"
            )
            continue
        s = d.summary
        row_class = " class='sev-WARN'" if d.outcome.status == PARTIAL else ""
        parts.append(
            f"<tr{row_class}><td>{link}</td><td>{d.outcome.status}</td><td>{_utc(d.start)}</td>"
            f"<td>{d.duration_s:.1f}</td><td>{len(d.incidents)}</td>"
            + "".join(f"<td>{_cell(s['shares'].get(m))}</td>" for m in modalities)
            + f"<td>{s['detections']}</td><td>{s['single_sensor_detections']}</td></tr>"
        )
    parts.append("</table>")
    return parts


__all__ = [
    "write_fleet_report",
    "fleet_summary",
    "load_bag",
    "BagData",
    "healthy_frames",
    "FLEET_SUMMARY_VERSION",
]
