"""report.html of an analysis: a self-contained page (incidents first, then the share timeline with
alert and fault bands, the alert list, BEV panels of frames with sensor alerts, summary statistics),
images embedded as PNG data URIs. Renders only: the tables are replay/tables.py's, the scores
against injected faults replay/scoring.py's, the shared look ros2_lmd/render's."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ros2_lmd.monitor.report import (
    SENSOR_DEGRADED,
    SENSOR_FAILED,
    SENSOR_MISSING,
    SENSOR_STALE,
    SEVERITY_NAMES,
    FrameReport,
)
from ros2_lmd.render.figures import MODALITY_COLOURS, draw_bev, new_figure, png_data_uri, symmetric_limit
from ros2_lmd.render.page import html_page
from ros2_lmd.replay.scoring import SENSOR_STATE_ALERTS, modality_of_sensor, score_alerts, score_incidents
from ros2_lmd.replay.tables import AlertRow, FrameRow

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MAX_SNAPSHOTS = 8  # BEV panels on one page at the most


def is_snapshot(report: FrameReport) -> bool:
    """A frame the report shows: one with a sensor-state alert (the first of each run)."""
    return any(a.kind in SENSOR_STATE_ALERTS for a in report.alerts)


def snapshot_frames(reports: Iterable[FrameReport]) -> list[FrameReport]:
    """The frames the report shows as BEV panels: those with a sensor-state alert, at most a few."""
    return [r for r in reports if is_snapshot(r)][:MAX_SNAPSHOTS]


# --- Figures ------------------------------------------------------------------------------------

SEVERITY_COLOURS = {0: "#1f77b4", 1: "#ff9f1c", 2: "#d62728"}
FAULT_COLOUR = "#cccccc"
# A sensor-state alert is a vertical line in its modality's colour; the line style says which kind.
ALERT_LINESTYLES = {
    SENSOR_FAILED: "--",
    SENSOR_MISSING: "-.",
    SENSOR_STALE: ":",
    SENSOR_DEGRADED: (0, (6, 2, 1, 2, 1, 2)),
}


def timeline_figure(
    rows: Sequence[FrameRow],
    alerts: Sequence[AlertRow],
    faults: Sequence[Any],
    t0: float,
    modalities: Sequence[str],
) -> Figure:
    """Each modality's share over the drive, injected faults shaded, sensor-state alerts as vertical
    lines (colour: modality, line style: kind); a legend entry for every look drawn."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    fig = new_figure((11, 3.6), layout="constrained")
    ax = fig.subplots()
    processed = [r for r in rows if r.status == "processed"]
    t = np.array([r.stamp - t0 for r in processed])
    for m in modalities:
        ax.plot(
            t, [r.shares.get(m, np.nan) for r in processed], color=MODALITY_COLOURS.get(m), label=f"{m} share"
        )
    bands: dict[tuple[str, str, float, float], list[str]] = {}
    for f in faults:  # one band per fault, however many sensors of the modality it covers
        bands.setdefault((modality_of_sensor(f.sensor), f.kind, f.start, f.end), []).append(f.sensor)
    for (modality, kind, start, end), sensors in bands.items():
        ax.axvspan(start, end, color=MODALITY_COLOURS.get(modality, "k"), alpha=0.12)
        label = sensors[0] if len(sensors) == 1 else f"{modality} ({len(sensors)} sensors)"
        ax.text(start, 1.02, f" {label}: {kind}", fontsize=7, va="bottom", backgroundcolor=(1, 1, 1, 0.7))
    # axvline and axvspan draw many artists of a few looks: one proxy legend entry per look
    proxies = {
        f"injected fault ({modality})": Patch(color=MODALITY_COLOURS.get(modality, "k"), alpha=0.12)
        for modality, *_ in bands
    }
    for a in alerts:
        if a.kind in SENSOR_STATE_ALERTS:
            look = {"color": MODALITY_COLOURS.get(a.modality, "k"), "linestyle": ALERT_LINESTYLES[a.kind]}
            ax.axvline(a.stamp - t0, linewidth=1, **look)
            proxies.setdefault(f"{a.modality} {a.kind}", Line2D([], [], linewidth=1, **look))
    skipped = [r.stamp - t0 for r in rows if r.status == "skipped"]
    if skipped:
        ax.plot(skipped, [0.0] * len(skipped), "kx", label="skipped frame")
    ax.set_xlabel("time since start of drive [s]")
    ax.set_ylabel("share of positive evidence")
    ax.set_ylim(0, 1.1)
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(
        handles + list(proxies.values()), labels + list(proxies), loc="outside right upper", fontsize=8
    )
    drawn = []
    if bands:
        drawn.append("shaded: injected faults")
    if any(a.kind in SENSOR_STATE_ALERTS for a in alerts):
        drawn.append("vertical lines: sensor alerts")
    title = "Share of positive evidence per modality"
    ax.set_title(f"{title} ({'; '.join(drawn)})" if drawn else title, fontsize=10)
    return fig


def lanes_figure(
    incidents: Sequence[Any], faults: Sequence[Any], t0: float, sensor_modality: dict[str, str], end: float
) -> Figure:
    """One lane per sensor (and per modality, for incidents of all its sensors): incidents as bars
    coloured by peak severity, injected faults as grey bands behind them."""
    from matplotlib.patches import Patch

    modality_lanes = sorted({i.modality for i in incidents if i.sensor == i.modality})
    lanes = list(sensor_modality) + modality_lanes
    fig = new_figure((11, 0.3 * len(lanes) + 1.3), layout="constrained")
    ax = fig.subplots()
    row = {name: n for n, name in enumerate(lanes)}
    legend: dict[str, Patch] = {}
    for f in faults:
        if f.sensor in row:
            ax.barh(row[f.sensor], f.end - f.start, left=f.start, height=0.8, color=FAULT_COLOUR)
            legend["injected fault"] = Patch(color=FAULT_COLOUR)
    for i in sorted(incidents, key=lambda i: i.peak_severity):
        stop = (i.end if i.end is not None else t0 + end) - t0
        colour = SEVERITY_COLOURS.get(i.peak_severity, "k")
        ax.barh(
            row.get(i.sensor, 0),
            max(stop - (i.start - t0), 0.05),
            left=i.start - t0,
            height=0.5,
            color=colour,
        )
        severity = SEVERITY_NAMES.get(i.peak_severity, i.peak_severity)
        legend[f"incident, peak {severity}"] = Patch(color=colour)
    labels = list(sensor_modality) + [f"{m} (all sensors)" for m in modality_lanes]
    ax.set_yticks(range(len(lanes)), labels, fontsize=7)
    ax.set_ylim(-0.6, len(lanes) - 0.4)
    ax.invert_yaxis()
    ax.set_xlim(0, max(end, 1e-3))
    ax.set_xlabel("time since start of drive [s]")
    if legend:
        fig.legend(legend.values(), legend, loc="outside right upper", fontsize=8)
    title = "Sensor incidents" if incidents else "Sensor incidents: none"
    ax.set_title(title + (" and injected faults" if "injected fault" in legend else ""), fontsize=10)
    return fig


def bev_figure(report: FrameReport, t0: float) -> Figure:
    """The fused occupancy and its decomposition at one frame. The modality panels share one colour
    scale, so their colours compare; the bias has its own, so that it does not set theirs (a bias
    larger than every modality would wash them all out)."""
    modalities = report.modalities
    bias = report.components.get("bias")
    titles = ["fused", *modalities, *(["bias (own scale)"] if bias is not None else [])]
    fig = new_figure((2.5 * len(titles) + 0.3, 3.9), layout="compressed")
    axes = fig.subplots(1, len(titles), sharex=True, sharey=True, squeeze=False)[0]
    grid = report.grid
    fused = draw_bev(axes[0], 0.5 * (1 + np.tanh(report.fused / 2)), grid, cmap="gray", vmin=0, vmax=1)
    fig.colorbar(fused, ax=axes[0], location="bottom", label="occupancy probability")
    if modalities:
        limit = symmetric_limit(report.components[m] for m in modalities)
        for ax, m in zip(axes[1:], modalities):
            shared = draw_bev(ax, report.components[m], grid, cmap="RdBu_r", vmin=-limit, vmax=limit)
        fig.colorbar(
            shared,
            ax=axes[1 : 1 + len(modalities)],
            location="bottom",
            label=f"logit contribution (one scale for {', '.join(modalities)}: ±{limit:.3g})",
        )
    if bias is not None:
        limit = symmetric_limit([bias])
        image = draw_bev(axes[-1], bias, grid, cmap="RdBu_r", vmin=-limit, vmax=limit)
        fig.colorbar(
            image, ax=axes[-1], location="bottom", label=f"bias logit contribution\n(own scale: ±{limit:.3g})"
        )
    for ax, title in zip(axes, titles):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("y [m]", fontsize=7)
    axes[0].set_ylabel("x [m]", fontsize=7)
    fig.suptitle(
        f"t = {report.stamp - t0:.2f} s since the start of the drive (stamp {report.stamp:.3f} s); "
        "▲ ego vehicle, facing +x",
        fontsize=9,
    )
    return fig


# --- HTML -------------------------------------------------------------------------------------


def write_html(
    path: Path,
    title: str,
    rows: Sequence[FrameRow],
    alerts: Sequence[AlertRow],
    faults: Sequence[Any],
    snapshots: Iterable[FrameReport],
    t0: float,
    modalities: Sequence[str],
    model_name: str,
    incidents: Sequence[Any] = (),
    sensor_modality: dict[str, str] | None = None,
) -> None:
    processed = [r for r in rows if r.status == "processed"]
    skipped = [r for r in rows if r.status == "skipped"]
    detections = sum(r.detections for r in processed)
    single = sum(r.single_sensor for r in processed)
    sensor_modality = sensor_modality or {}
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>Model <code>{html.escape(model_name)}</code>. {len(rows)} frames: {len(processed)} processed, "
        f"{len(skipped)} skipped. {len(incidents)} sensor incidents, {len(alerts)} alerts.</p>",
    ]
    parts += _incident_section(incidents, faults, t0, sensor_modality, rows)
    parts.append("<h2>Summary</h2><table><tr><th>modality</th><th>mean share</th></tr>")
    for m in modalities:
        values = [r.shares.get(m, np.nan) for r in processed]
        parts.append(f"<tr><td>{m}</td><td>{np.nanmean(values) if values else float('nan'):.3f}</td></tr>")
    parts.append("</table>")
    parts.append(
        f"<p>Detections: {detections}; single-sensor: {single}"
        f" ({(single / detections if detections else 0):.1%}).</p>"
    )
    if skipped:
        reasons: dict[str, int] = {}
        for r in skipped:
            reasons[r.skip_reason] = reasons.get(r.skip_reason, 0) + 1
        parts.append(
            "<p>Skipped frames: " + ", ".join(f"{html.escape(k)}: {v}" for k, v in reasons.items()) + "</p>"
        )
    if faults:
        scores, precision, recall = score_alerts(alerts, faults, t0)
        parts.append(
            f"<h2>Against the injected faults</h2><p>Sensor-alert precision {precision:.2f}, "
            f"recall {recall:.2f}.</p><table><tr><th>modality</th><th>fault</th><th>window [s]</th>"
            "<th>detected</th><th>delay [s]</th></tr>"
        )
        for s in scores:
            delay = "" if s.delay_s is None else f"{s.delay_s:.2f}"
            parts.append(
                f"<tr><td>{s.modality}</td><td>{html.escape(s.kind)}</td><td>{s.start:g}-{s.end:g}</td>"
                f"<td>{'yes' if s.detected else 'no'}</td><td>{delay}</td></tr>"
            )
        parts.append("</table>")
    parts.append(
        f'<h2>Timeline</h2><img src="{png_data_uri(timeline_figure(rows, alerts, faults, t0, modalities))}"/>'
    )
    parts.append(
        "<h2>Alerts</h2><p>Filter: <input id='alert-filter' placeholder='kind, severity, modality, "
        "sensor or words' oninput='filterAlerts()' size='40'/></p><table id='alerts'><tr><th>t [s]</th>"
        "<th>kind</th><th>severity</th><th>modality</th><th>sensor</th><th>message</th></tr>"
    )
    for a in alerts:
        severity = SEVERITY_NAMES.get(a.severity, a.severity)
        parts.append(
            f"<tr class='sev-{severity}'><td>{a.stamp - t0:.2f}</td><td>{a.kind}</td><td>{severity}</td>"
            f"<td>{a.modality}</td><td>{html.escape(a.sensor)}</td><td>{html.escape(a.message)}</td></tr>"
        )
    parts.append(
        "</table><h2>BEV at frames with sensor alerts</h2>"
        "<p>Fused occupancy probability, then each modality's contribution to the fused logits on one "
        "shared colour scale (red: supports a vehicle, blue: argues against), then the bias on its own "
        "scale, so that it does not set the modalities' scale. Axes in base_link metres: up is forward "
        "(x), left is left (y); the green triangle is the ego vehicle.</p>"
    )
    for report in snapshots:
        parts.append(f'<img src="{png_data_uri(bev_figure(report, t0))}"/>')
    script = (
        "function filterAlerts(){var q=document.getElementById('alert-filter').value.toLowerCase();"
        "document.querySelectorAll('#alerts tr:not(:first-child)').forEach(function(r){"
        "r.style.display=r.textContent.toLowerCase().indexOf(q)<0?'none':''})}"
    )
    path.write_text(html_page(title, parts, script))


def _incident_section(
    incidents: Sequence[Any],
    faults: Sequence[Any],
    t0: float,
    sensor_modality: dict[str, str],
    rows: Sequence[FrameRow],
) -> list[str]:
    """What failed, when, which sensor, first; against the injected faults when they are known."""
    parts = ["<h2>Sensor incidents</h2>"]
    if not incidents:
        parts.append("<p>None: no sensor showed a fault.</p>")
    else:
        parts.append(
            "<table><tr><th>#</th><th>sensor</th><th>severity</th><th>from [s]</th><th>to [s]</th>"
            "<th>evidence</th></tr>"
        )
        for i in incidents:
            severity = SEVERITY_NAMES.get(i.peak_severity, i.peak_severity)
            who = i.sensor if i.sensor != i.modality else f"{i.modality} (all {len(i.sensors)} sensors)"
            end = "open" if i.end is None else f"{i.end - t0:.2f}"
            parts.append(
                f"<tr class='sev-{severity}'><td>{i.id}</td><td>{html.escape(who)}</td><td>{severity}</td>"
                f"<td>{i.start - t0:.2f}</td><td>{end}</td>"
                f"<td>[{html.escape(', '.join(i.kinds))}] {html.escape(i.evidence)}</td></tr>"
            )
        parts.append("</table>")
    if faults:
        score = score_incidents(incidents, faults, t0, sensor_modality)
        parts.append(
            f"<h3>Against the injected faults</h3><p>Detected within 1.5 s: {score.recall:.0%} of "
            f"{len(score.faults)} faults; right sensor named: {score.right_sensor:.0%}; false incidents: "
            f"{len(score.false_incidents)}.</p><table><tr><th>fault</th><th>sensor</th><th>window [s]</th>"
            "<th>detected</th><th>delay [s]</th><th>right sensor</th><th>cleared after end [s]</th></tr>"
        )
        for f in score.faults:
            delay = "" if f.delay_s is None else f"{f.delay_s:.2f}"
            clear = "" if f.clear_s is None else f"{f.clear_s:+.2f}"
            parts.append(
                f"<tr><td>{html.escape(f.kind)}</td><td>{html.escape(f.target)}</td><td>{f.start:g}-{f.end:g}</td>"
                f"<td>{'yes' if f.detected else 'MISSED'}</td><td>{delay}</td>"
                f"<td>{'yes' if f.right_sensor else 'no'}</td><td>{clear}</td></tr>"
            )
        parts.append("</table>")
    if sensor_modality:
        end = (rows[-1].stamp - t0) if rows else 0.0
        parts.append(
            f'<img src="{png_data_uri(lanes_figure(incidents, faults, t0, sensor_modality, end))}"/>'
        )
    return parts
