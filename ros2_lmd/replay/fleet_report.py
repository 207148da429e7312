"""The fleet report over many analysed bags (`ros2-lmd fleet`), read back from each bag's own
outputs (summary.json, incidents.csv, frames.csv), so bags reused from an earlier run and bags
analysed now count alike: fleet_summary.json, fleet_bags.csv, fleet_incidents.csv (fleet_files.py)
and a self-contained fleet_report.html (here). The numbers are fleet_stats.py's, the figures
fleet_figures.py's; this module writes them and lays out the page."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ros2_lmd.eval.imbalance import LEANS, UNDER_USED, ImbalanceRule, ModalityQuality
from ros2_lmd.render.page import html_page
from ros2_lmd.replay.fleet_figures import (
    drift_figure,
    imbalance_figure,
    incidents_figure,
    shares_box_figure,
    single_sensor_figure,
    time_of_day_figure,
)
from ros2_lmd.replay.fleet_files import (
    load_bag,
    write_bags_csv,
    write_fleet_summary_json,
    write_incidents_csv,
)
from ros2_lmd.replay.fleet_records import PARTIAL, BagOutcome, FleetBag
from ros2_lmd.replay.fleet_stats import RSC_MD, BagData, fleet_summary, incident_records, utc_time
from ros2_lmd.replay.numbers import format_number


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
    write_fleet_summary_json(out / "fleet_summary.json", summary)
    write_bags_csv(out / "fleet_bags.csv", data, modalities)
    write_incidents_csv(out / "fleet_incidents.csv", incident_records(data))
    write_html(out / "fleet_report.html", data, summary)
    return summary


def _cell(value: Any, spec: str = ".3f") -> str:
    """A table cell: a float formatted with `spec` (empty when not measured), anything else escaped."""
    if value is None or isinstance(value, float):
        return format_number(value, spec)
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
    path.write_text(html_page("ros2_lmd fleet report", parts))


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
            f"<tr{row_class}><td>{link}</td><td>{d.outcome.status}</td><td>{utc_time(d.start)}</td>"
            f"<td>{d.duration_s:.1f}</td><td>{len(d.incidents)}</td>"
            + "".join(f"<td>{_cell(s['shares'].get(m))}</td>" for m in modalities)
            + f"<td>{s['detections']}</td><td>{s['single_sensor_detections']}</td></tr>"
        )
    parts.append("</table>")
    return parts


__all__ = ["write_fleet_report", "write_html"]
