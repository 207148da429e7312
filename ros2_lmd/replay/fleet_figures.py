"""The fleet report's figures, each as a PNG data URI for fleet_report.html: the imbalance
diagnosis, incidents per sensor, shares over bags, by time of day and over the fleet's timeline,
and detections resting on one modality alone. Drawn from fleet_summary.json's numbers
(fleet_stats.py) and the bags' summaries; nothing computed here that the summary does not hold."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ros2_lmd.eval.imbalance import LEANS, UNDER_USED
from ros2_lmd.render.figures import MODALITY_COLOURS, new_figure, png_data_uri
from ros2_lmd.replay.fleet_stats import SECONDS_PER_DAY, BagData, utc_time


def imbalance_figure(by_modality: dict[str, dict[str, Any]]) -> str:
    names = list(by_modality)
    x = np.arange(len(names))
    share = [by_modality[m]["share"] or 0.0 for m in names]
    justified = [by_modality[m]["justified_share"] or 0.0 for m in names]
    fig = new_figure((6.5, 3.4))
    ax = fig.subplots()
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
    sensors = sorted(by_sensor, key=lambda s: (by_sensor[s]["modality"], s))
    fig = new_figure((7.5, 0.32 * len(sensors) + 1.2))
    ax = fig.subplots()
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
    values = [
        [d.summary["shares"][m] for d in bags if d.summary and d.summary["shares"].get(m) is not None]
        for m in modalities
    ]
    fig = new_figure((6.5, 3.4))
    ax = fig.subplots()
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
    hours = [int(h) for h in hours_utc]
    fig = new_figure((7.5, 3.2))
    ax = fig.subplots()
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
    with_outputs = [d for d in bags if d.summary]
    first = min(d.start for d in with_outputs)
    fig = new_figure((7.5, 3.4))
    ax = fig.subplots()
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
    ax.set_xlabel(f"days since the first bag ({utc_time(first) or 'bag time'})")
    ax.set_ylabel("bag's mean share")
    ax.legend(fontsize=8)
    ax.set_title("Share over the fleet's timeline (Theil-Sen fit per modality)", fontsize=9)
    return png_data_uri(fig)


def single_sensor_figure(result: dict[str, Any]) -> str:
    names = list(result["by_modality"])
    rates = [(result["by_modality"][m]["per_detection"] or 0.0) * 100 for m in names]
    fig = new_figure((5.5, 3.0))
    ax = fig.subplots()
    ax.bar(names, rates, color=[MODALITY_COLOURS.get(m, "k") for m in names])
    for i, m in enumerate(names):
        ax.text(i, rates[i], f"{result['by_modality'][m]['count']}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("% of detections")
    ax.set_title("Detections resting on one modality alone (label: count)", fontsize=9)
    return png_data_uri(fig)


__all__ = [
    "imbalance_figure",
    "incidents_figure",
    "shares_box_figure",
    "time_of_day_figure",
    "drift_figure",
    "single_sensor_figure",
]
