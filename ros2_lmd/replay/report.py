"""The offline analysis report: per-frame and alert tables (CSV), alert scoring against a ground-truth
fault timeline, and a self-contained HTML page (share timeline with alert and fault bands, alert
list, BEV panels of frames with alerts, summary statistics), images embedded as PNG data URIs."""

from __future__ import annotations

import base64
import csv
import html
import io
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ros2_lmd.monitor.report import (
    SENSOR_DEGRADED,
    SENSOR_FAILED,
    SENSOR_MISSING,
    SENSOR_STALE,
    SEVERITY_NAMES,
    FrameReport,
)

MODALITY_COLOURS = {"camera": "#d62728", "radar": "#2ca02c", "lidar": "#1f77b4", "bias": "#7f7f7f"}
SENSOR_STATE_ALERTS = (SENSOR_DEGRADED, SENSOR_FAILED, SENSOR_MISSING, SENSOR_STALE)
FRAME_COLUMNS = (
    "stamp",
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


@dataclass
class FrameRow:
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
    stamp: float
    kind: str
    severity: int
    modality: str
    message: str
    sensor: str = ""  # the sensor it names, when it is about one (Alert.sensor)


def modality_of_sensor(sensor: str) -> str:
    name = sensor.lower()
    for prefix, modality in (("cam", "camera"), ("radar", "radar"), ("lidar", "lidar")):
        if name.startswith(prefix) or name == modality:
            return modality
    return name


def write_frames_csv(path: Path, rows: Sequence[FrameRow]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(FRAME_COLUMNS)
        for r in rows:
            writer.writerow(
                [
                    f"{r.stamp:.6f}",
                    r.status,
                    r.skip_reason,
                    *(_num(r.shares.get(m)) for m in ("camera", "radar", "lidar")),
                    r.detections,
                    r.single_sensor,
                    _num(r.conservation_error, "{:.3e}"),
                    _num(r.latency_ms, "{:.2f}"),
                    _num(r.decomposition_error, "{:.3e}"),
                    r.messages_lost,
                ]
            )


def _num(value, fmt: str = "{:.4f}") -> str:
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else fmt.format(value)


def write_alerts_csv(path: Path, rows: Sequence[AlertRow]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("stamp", "kind", "severity", "modality", "sensor", "message"))
        for a in rows:
            severity = SEVERITY_NAMES.get(a.severity, a.severity)
            writer.writerow([f"{a.stamp:.6f}", a.kind, severity, a.modality, a.sensor, a.message])


@dataclass
class FaultScore:
    modality: str
    kind: str
    start: float
    end: float
    detected: bool
    delay_s: float | None


def score_alerts(
    alerts: Sequence[AlertRow], faults: Sequence[Any], t0: float, grace_s: float = 1.0
) -> tuple[list[FaultScore], float, float]:
    """Per fault (merged per modality and kind): detected if a sensor-state alert for its modality is
    raised in [start, end + grace]; delay from the fault's start. Precision: the share of
    sensor-state alerts raised inside some fault of their modality (plus grace)."""
    merged: dict[tuple[str, str, float, float], None] = {}
    for f in faults:
        merged[(modality_of_sensor(f.sensor), f.kind, f.start, f.end)] = None
    state_alerts = [a for a in alerts if a.kind in SENSOR_STATE_ALERTS]
    scores = []
    for modality, kind, start, end in merged:
        hits = [
            a.stamp - t0 - start
            for a in state_alerts
            if a.modality == modality and start <= a.stamp - t0 <= end + grace_s
        ]
        scores.append(FaultScore(modality, kind, start, end, bool(hits), min(hits) if hits else None))
    inside = [
        a
        for a in state_alerts
        if any(a.modality == m and s <= a.stamp - t0 <= e + grace_s for m, _, s, e in merged)
    ]
    precision = len(inside) / len(state_alerts) if state_alerts else float("nan")
    recall = sum(s.detected for s in scores) / len(scores) if scores else float("nan")
    return scores, precision, recall


# --- Incidents -----------------------------------------------------------------------------------

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


def write_incidents_csv(path: Path, incidents: Sequence[Any], t0: float) -> None:
    """One row per incident (monitor.incidents.Incident); times in seconds from the bag start,
    `end_s` empty for an incident still open at the end of the bag."""
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
                    f"{i.start - t0:.3f}",
                    "" if i.end is None else f"{i.end - t0:.3f}",
                    " ".join(i.kinds),
                    i.evidence,
                    f"{i.start:.6f}",
                    "" if i.end is None else f"{i.end:.6f}",
                ]
            )


@dataclass
class FaultOutcome:
    """One injected fault (all its sensors, one kind, one window) against the incidents."""

    target: str  # the sensor, or the modality when the fault covers all of its sensors
    modality: str
    kind: str
    start: float
    end: float
    detected: bool  # an incident of its modality started within `within_s` of its onset
    delay_s: float | None
    right_sensor: bool  # that incident names exactly the target
    clear_s: float | None  # how long after the fault's end the incident closed (None: open)


@dataclass
class IncidentScore:
    faults: list[FaultOutcome]
    false_incidents: list[Any]

    @property
    def recall(self) -> float:
        return sum(f.detected for f in self.faults) / len(self.faults) if self.faults else float("nan")

    @property
    def right_sensor(self) -> float:
        detected = [f for f in self.faults if f.detected]
        return sum(f.right_sensor for f in detected) / len(detected) if detected else float("nan")


def score_incidents(
    incidents: Sequence[Any],
    faults: Sequence[Any],
    t0: float,
    sensor_modality: dict[str, str],
    within_s: float = 1.5,
    grace_s: float = 1.0,
) -> IncidentScore:
    """Incidents against the ground truth (faults.csv events, times from t0): a fault is detected
    when an incident of its modality starts in [onset - grace, onset + within_s] and names the
    right sensor when it names exactly the faulted sensor (or the modality, for a fault of all its
    sensors). An incident that matches no fault (from onset - grace to end + grace) is false."""
    grouped: dict[tuple[str, float, float, str], list[str]] = {}
    for f in faults:
        modality = sensor_modality.get(f.sensor) or modality_of_sensor(f.sensor)
        grouped.setdefault((modality, f.start, f.end, f.kind), []).append(f.sensor)
    outcomes, matched = [], set()
    for (modality, start, end, kind), sensors in grouped.items():
        members = [s for s, m in sensor_modality.items() if m == modality]
        target = modality if len(members) > 1 and set(members) <= set(sensors) else sensors[0]
        candidates = [
            i
            for i in incidents
            if i.modality == modality and start - grace_s <= i.start - t0 <= end + grace_s
        ]
        matched.update(id(i) for i in candidates)
        early = [i for i in candidates if i.start - t0 <= start + within_s]
        first = min(early, key=lambda i: i.start, default=None)
        outcomes.append(
            FaultOutcome(
                target,
                modality,
                kind,
                start,
                end,
                first is not None,
                None if first is None else max(0.0, first.start - t0 - start),
                any(i.sensor == target for i in early),
                None if first is None or first.end is None else first.end - t0 - end,
            )
        )
    false = [i for i in incidents if id(i) not in matched]
    return IncidentScore(outcomes, false)


# --- HTML -------------------------------------------------------------------------------------


def png_data_uri(fig) -> str:
    """A matplotlib figure as a PNG data URI (closed afterwards): the reports embed their images."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def timeline_figure(
    rows: Sequence[FrameRow],
    alerts: Sequence[AlertRow],
    faults: Sequence[Any],
    t0: float,
    modalities: Sequence[str],
) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 3.6))
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
        ax.text(start, 1.02, f"{label}: {kind}", fontsize=7, va="bottom")
    for a in alerts:
        if a.kind in SENSOR_STATE_ALERTS:
            ax.axvline(a.stamp - t0, color=MODALITY_COLOURS.get(a.modality, "k"), linestyle="--", linewidth=1)
    skipped = [r.stamp - t0 for r in rows if r.status == "skipped"]
    if skipped:
        ax.plot(skipped, [0.0] * len(skipped), "kx", label="skipped frame")
    ax.set_xlabel("time since start of drive [s]")
    ax.set_ylabel("share of evidence")
    ax.set_ylim(0, 1.1)
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title("Per-modality share (shaded: injected faults; dashed: sensor alerts)", fontsize=10)
    return png_data_uri(fig)


SEVERITY_COLOURS = {0: "#1f77b4", 1: "#ff9f1c", 2: "#d62728"}
HTML_STYLE = (  # the reports' look (report.html, fleet_report.html)
    "body{font-family:sans-serif;max-width:1200px;margin:auto}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px}img{max-width:100%}"
    ".sev-ERROR td{background:#fbe3e3}.sev-WARN td{background:#fff4dd}"
)


def lanes_figure(
    incidents: Sequence[Any], faults: Sequence[Any], t0: float, sensor_modality: dict[str, str], end: float
) -> str:
    """One lane per sensor (and per modality, for incidents of all its sensors): incidents as bars
    coloured by severity, injected faults as grey bands behind them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lanes = list(sensor_modality) + sorted({i.modality for i in incidents if i.sensor == i.modality})
    fig, ax = plt.subplots(figsize=(11, 0.3 * len(lanes) + 1.0))
    row = {name: n for n, name in enumerate(lanes)}
    for f in faults:
        if f.sensor in row:
            ax.barh(row[f.sensor], f.end - f.start, left=f.start, height=0.8, color="#cccccc")
    for i in incidents:
        stop = (i.end if i.end is not None else t0 + end) - t0
        ax.barh(
            row.get(i.sensor, 0),
            max(stop - (i.start - t0), 0.05),
            left=i.start - t0,
            height=0.5,
            color=SEVERITY_COLOURS.get(i.peak_severity, "k"),
        )
    ax.set_yticks(range(len(lanes)), lanes, fontsize=7)
    ax.set_ylim(-0.6, len(lanes) - 0.4)
    ax.invert_yaxis()
    ax.set_xlim(0, max(end, 1e-3))
    ax.set_xlabel("time since start of drive [s]")
    ax.set_title("Incidents per sensor (orange: WARN, red: ERROR; grey: injected faults)", fontsize=10)
    return png_data_uri(fig)


def bev_figure(report: FrameReport, t0: float) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = ["fused", *report.components]
    fig, axes = plt.subplots(1, len(layers), figsize=(2.6 * len(layers), 2.8))
    g = report.grid
    extent = (g.y_max, g.y_min, g.x_min, g.x_max)  # x forward is up, y left is left
    limit = max(float(np.abs(c).max()) for c in report.components.values()) or 1.0
    for ax, name in zip(axes, layers):
        data = report.fused if name == "fused" else report.components[name]
        if name == "fused":
            ax.imshow((1 / (1 + np.exp(-data))).T[::-1, ::-1], extent=extent, cmap="gray", vmin=0, vmax=1)
        else:
            ax.imshow(data.T[::-1, ::-1], extent=extent, cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"t = {report.stamp - t0:.1f} s", fontsize=9)
    return png_data_uri(fig)


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
    parts.append(f'<h2>Timeline</h2><img src="{timeline_figure(rows, alerts, faults, t0, modalities)}"/>')
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
        "<p>Fused probability and each component in logits (red: supports a vehicle, blue: "
        "argues against). Up is forward (x), left is left (y).</p>"
    )
    for report in snapshots:
        parts.append(f'<img src="{bev_figure(report, t0)}"/>')
    script = (
        "function filterAlerts(){var q=document.getElementById('alert-filter').value.toLowerCase();"
        "document.querySelectorAll('#alerts tr:not(:first-child)').forEach(function(r){"
        "r.style.display=r.textContent.toLowerCase().indexOf(q)<0?'none':''})}"
    )
    path.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{HTML_STYLE}</style><script>{script}</script></head><body>{''.join(parts)}</body></html>"
    )


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
        parts.append(f'<img src="{lanes_figure(incidents, faults, t0, sensor_modality, end)}"/>')
    return parts
