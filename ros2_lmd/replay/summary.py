"""summary.json of an analysis: the numbers a script, a CI gate or a fleet report reads without
parsing CSV (frames and why some were dropped, messages lost, incidents and alerts by kind and
sensor, each modality's share of the evidence, latency). Times are in seconds; `*_s` stamps count
from the start of the drive (the bag's first message), as the report shows them."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ros2_lmd.monitor.report import SEVERITY_NAMES
from ros2_lmd.replay.numbers import finite_mean, finite_or_none, finite_values
from ros2_lmd.replay.tables import AlertRow, FrameRow

SUMMARY_VERSION = 2  # 2: single_sensor_detections_by_modality


def _percentiles(values: Sequence[float]) -> dict[str, float | None]:
    values = finite_values(values)
    if not values:
        return {"p50": None, "p95": None, "max": None}
    return {
        "p50": float(np.percentile(values, 50)),
        "p95": float(np.percentile(values, 95)),
        "max": float(max(values)),
    }


def analysis_summary(
    bag: Path,
    model: str,
    decomposition: str,
    rows: Sequence[FrameRow],
    alerts: Sequence[AlertRow],
    incidents: Sequence[Any],
    problems: Sequence[tuple[str, str]],
    messages_read: int,
    t0: float,
    modalities: Sequence[str],
) -> dict[str, Any]:
    """The analysis as one JSON-ready mapping (see the module docstring)."""
    processed = [r for r in rows if r.status == "processed"]
    skipped = Counter(r.skip_reason for r in rows if r.status != "processed")
    end = max((r.stamp for r in rows), default=t0)
    return {
        "summary_version": SUMMARY_VERSION,
        "bag": str(bag),
        "model": model,
        "decomposition": decomposition,
        "drive": {"start_stamp": t0, "duration_s": max(0.0, end - t0)},
        "frames": {
            "total": len(rows),
            "processed": len(processed),
            "dropped": sum(skipped.values()),
            "dropped_by_reason": dict(sorted(skipped.items())),
        },
        "messages": {
            "read": messages_read,
            # messages_lost is cumulative per frame: the last row holds the total
            "lost_before_monitor": rows[-1].messages_lost if rows else 0,
            "problems": len(problems),
            "problems_by_topic": dict(sorted(Counter(topic for topic, _ in problems).items())),
        },
        "incidents": {
            "count": len(incidents),
            "by_sensor": dict(sorted(Counter(i.sensor for i in incidents).items())),
            "by_modality": dict(sorted(Counter(i.modality for i in incidents).items())),
            "list": [
                {
                    "id": i.id,
                    "sensor": i.sensor,
                    "modality": i.modality,
                    "sensors": list(i.sensors),
                    "evidence_kinds": list(i.kinds),
                    "evidence": i.evidence,
                    "peak_severity": SEVERITY_NAMES.get(i.peak_severity, str(i.peak_severity)),
                    "start_s": i.start - t0,
                    "end_s": None if i.end is None else i.end - t0,
                    "duration_s": None if i.end is None else i.end - i.start,
                    "start_stamp": i.start,
                }
                for i in incidents
            ],
        },
        "alerts": {
            "count": len(alerts),
            "by_kind": dict(sorted(Counter(a.kind for a in alerts).items())),
            "by_sensor": dict(sorted(Counter(a.sensor for a in alerts if a.sensor).items())),
            "by_modality": dict(sorted(Counter(a.modality for a in alerts if a.modality).items())),
        },
        "shares": {m: finite_mean([r.shares.get(m, math.nan) for r in processed]) for m in modalities},
        "single_sensor_detections": sum(r.single_sensor for r in processed),
        # by the modality that alone supports them (a modality of the model: 0 when it never does)
        "single_sensor_detections_by_modality": {
            m: sum(r.single_sensor_by_modality.get(m, 0) for r in processed) for m in modalities
        },
        "detections": sum(r.detections for r in processed),
        "latency_ms": _percentiles([r.latency_ms for r in processed]),
        "conservation_error_max": finite_or_none(
            max((r.conservation_error for r in processed), default=math.nan)
        ),
    }


def write_summary_json(path: Path, summary: dict[str, Any]) -> None:
    path.write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")


__all__ = ["analysis_summary", "write_summary_json", "SUMMARY_VERSION"]
