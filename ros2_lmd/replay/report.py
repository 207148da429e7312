"""The offline analysis report: per-frame, alert and incident tables (CSV), alert scoring against a
ground-truth fault timeline, and a self-contained HTML page (share timeline with alert and fault bands,
alert list, BEV panels of frames with alerts, summary statistics), images embedded as PNG data URIs.

Every CSV carries both clocks: bag time (`stamp`, `start_stamp`, `end_stamp`: header stamps in
seconds since the epoch, to join with the bag and output.mcap) and seconds from the start of the
drive (`since_start_s`, `start_s`, `end_s`: from t0, the bag's first message, as faults.csv and the
report's axes count)."""

from __future__ import annotations

import base64
import csv
import html
import io
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ros2_lmd.geometry.grid import BEVGrid
from ros2_lmd.monitor.report import (
    SENSOR_DEGRADED,
    SENSOR_FAILED,
    SENSOR_MISSING,
    SENSOR_STALE,
    SEVERITY_NAMES,
    FrameReport,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.image import AxesImage

MODALITY_COLOURS = {"camera": "#d62728", "radar": "#2ca02c", "lidar": "#1f77b4", "bias": "#7f7f7f"}
SENSOR_STATE_ALERTS = (SENSOR_DEGRADED, SENSOR_FAILED, SENSOR_MISSING, SENSOR_STALE)
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


# --- Figures ------------------------------------------------------------------------------------
# Built on matplotlib.figure.Figure, not pyplot: no global figure registry to leak into or backend to
# switch, and tests can look at the axes, colour bars and legends of what is drawn.

SEVERITY_COLOURS = {0: "#1f77b4", 1: "#ff9f1c", 2: "#d62728"}
FAULT_COLOUR = "#cccccc"
# A sensor-state alert is a vertical line in its modality's colour; the line style says which kind.
ALERT_LINESTYLES = {
    SENSOR_FAILED: "--",
    SENSOR_MISSING: "-.",
    SENSOR_STALE: ":",
    SENSOR_DEGRADED: (0, (6, 2, 1, 2, 1, 2)),
}
EGO_MARKER = {"marker": "^", "markersize": 7, "markerfacecolor": "lime", "markeredgecolor": "black"}


HTML_STYLE = (  # the reports' look (report.html, fleet_report.html)
    "body{font-family:sans-serif;max-width:1200px;margin:auto}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px}img{max-width:100%}"
    ".sev-ERROR td{background:#fbe3e3}.sev-WARN td{background:#fff4dd}"
)


def png_data_uri(fig: Figure) -> str:
    # The layout engine places colour bars beside fixed-aspect images in passes: one draw before
    # saving lets it settle (on the first, the titles can overlap the figure title).
    fig.draw_without_rendering()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def draw_bev(ax: Axes, bev: np.ndarray, grid: BEVGrid, **imshow: Any) -> AxesImage:
    """A (ny, nx) base_link map on metric axes as seen from above: x forward up, y left to the left,
    and the ego vehicle as a triangle at the origin pointing forward."""
    image = ax.imshow(
        bev.T[::-1, ::-1],  # rows from x_max down, columns from y_max rightwards
        extent=(grid.y_max, grid.y_min, grid.x_min, grid.x_max),
        interpolation="nearest",
        **imshow,
    )
    if grid.x_min <= 0 <= grid.x_max and grid.y_min <= 0 <= grid.y_max:
        ax.plot(0, 0, linestyle="none", **EGO_MARKER)
    ax.set_xlabel("y [m]", fontsize=7)
    ax.tick_params(labelsize=7)
    return image


def symmetric_limit(bevs: Iterable[np.ndarray]) -> float:
    """One colour limit +-L for signed maps drawn side by side, so that one colour is one logit in
    every panel: the largest |value| among them (1 when all are zero)."""
    return max((float(np.abs(b).max()) for b in bevs), default=0.0) or 1.0


def timeline_figure(
    rows: Sequence[FrameRow],
    alerts: Sequence[AlertRow],
    faults: Sequence[Any],
    t0: float,
    modalities: Sequence[str],
) -> Figure:
    """Each modality's share over the drive, injected faults shaded, sensor-state alerts as vertical
    lines (colour: modality, line style: kind); a legend entry for every look drawn."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    fig = Figure(figsize=(11, 3.6), layout="constrained")
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
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    modality_lanes = sorted({i.modality for i in incidents if i.sensor == i.modality})
    lanes = list(sensor_modality) + modality_lanes
    fig = Figure(figsize=(11, 0.3 * len(lanes) + 1.3), layout="constrained")
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
    from matplotlib.figure import Figure

    modalities = report.modalities
    bias = report.components.get("bias")
    titles = ["fused", *modalities, *(["bias (own scale)"] if bias is not None else [])]
    fig = Figure(figsize=(2.5 * len(titles) + 0.3, 3.9), layout="compressed")
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
        parts.append(
            f'<img src="{png_data_uri(lanes_figure(incidents, faults, t0, sensor_modality, end))}"/>'
        )
    return parts
