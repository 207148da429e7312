"""The analysis report's tables and figures, from hand-made rows and reports (no model, no bag):
both clocks in every CSV, BEV panels in base_link metres with the ego vehicle and a colour bar for
every colour scale (the modalities on one), legends for everything the timeline and the incident
lanes draw, titles that say only what is drawn and stay clear of each other."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from matplotlib.colors import to_rgba
from matplotlib.image import AxesImage
from matplotlib.lines import Line2D
from support.figures import overlapping_titles

from ros2_lmd.geometry.grid import BEVGrid
from ros2_lmd.monitor.incidents import Incident
from ros2_lmd.monitor.report import ERROR, INFO, SENSOR_FAILED, SENSOR_STALE, WARN, FrameReport
from ros2_lmd.render.figures import draw_bev, png_data_uri
from ros2_lmd.render.page import html_page
from ros2_lmd.replay.numbers import finite_mean, finite_or_none, format_number
from ros2_lmd.replay.report import bev_figure, lanes_figure, timeline_figure
from ros2_lmd.replay.tables import AlertRow, FrameRow, write_alerts_csv, write_frames_csv, write_incidents_csv
from ros2_lmd.sim.faults import FaultEvent

T0 = 1_700_000_000.0
GRID = BEVGrid(x_min=-10.0, x_max=10.0, y_min=-5.0, y_max=5.0, resolution=1.0)  # (ny, nx) = (10, 20)
MODALITIES = ("camera", "radar", "lidar")


def _read(path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _incident(n: int, sensor: str, modality: str, start: float, end: float | None, severity: int) -> Incident:
    return Incident(
        id=n,
        sensor=sensor,
        modality=modality,
        sensors=(sensor,),
        kinds=["silent"],
        evidence="no messages",
        start=T0 + start,
        start_ns=int(round((T0 + start) * 1e9)),
        peak_severity=severity,
        last_evidence=T0 + start,
        end=None if end is None else T0 + end,
    )


def _report(components: dict[str, np.ndarray], stamp: float = T0 + 2.3) -> FrameReport:
    fused = sum(components.values())
    return FrameReport(stamp, 23, GRID, fused, components, {}, {}, {}, [], [])


# --- CSV: bag time and time since the start of the drive ------------------------------------------


def test_frames_and_alerts_carry_the_stamp_and_the_seconds_since_the_start(tmp_path):
    frames = [
        FrameRow.skipped(T0 + 0.05, "late"),
        FrameRow(T0 + 0.1, "processed", shares={"camera": 0.5, "radar": 0.2, "lidar": 0.3}),
        FrameRow(T0 + 12.345678, "processed"),
    ]
    alerts = [AlertRow(T0 + 2.2, SENSOR_FAILED, ERROR, "camera", "black", "cam_front")]
    write_frames_csv(tmp_path / "frames.csv", frames, T0)
    write_alerts_csv(tmp_path / "alerts.csv", alerts, T0)
    frame_rows, alert_rows = _read(tmp_path / "frames.csv"), _read(tmp_path / "alerts.csv")
    assert list(frame_rows[0])[:3] == ["stamp", "since_start_s", "status"]
    assert [r["stamp"] for r in frame_rows] == [f"{T0 + s:.6f}" for s in (0.05, 0.1, 12.345678)]
    assert [r["since_start_s"] for r in frame_rows] == ["0.050000", "0.100000", "12.345678"]
    assert list(alert_rows[0]) == [
        "stamp",
        "since_start_s",
        "kind",
        "severity",
        "modality",
        "sensor",
        "message",
    ]
    assert (alert_rows[0]["stamp"], alert_rows[0]["since_start_s"]) == (f"{T0 + 2.2:.6f}", "2.200000")
    assert alert_rows[0]["sensor"] == "cam_front"


def test_incidents_carry_both_clocks_and_an_open_incident_has_no_end(tmp_path):
    incidents = [
        _incident(1, "lidar_top", "lidar", 3.1, 5.25, ERROR),
        _incident(2, "radar_front", "radar", 4, None, WARN),
    ]
    write_incidents_csv(tmp_path / "incidents.csv", incidents, T0)
    closed, still_open = _read(tmp_path / "incidents.csv")
    assert float(closed["start_s"]) == pytest.approx(float(closed["start_stamp"]) - T0, abs=1e-6) == 3.1
    assert float(closed["end_s"]) == pytest.approx(float(closed["end_stamp"]) - T0, abs=1e-6) == 5.25
    assert (still_open["end_s"], still_open["end_stamp"]) == ("", "")


def test_a_value_not_measured_is_an_empty_cell_null_in_json_and_left_out_of_means():
    nan, inf = float("nan"), float("inf")
    assert format_number(None) == format_number(nan) == format_number(np.float64(nan)) == ""
    assert (format_number(0.123456), format_number(2, ".2f"), format_number(inf)) == ("0.1235", "2.00", "inf")
    assert finite_or_none(nan) is None and finite_or_none(-inf) is None
    assert finite_or_none(np.float32(1.5)) == 1.5 and type(finite_or_none(np.float32(1.5))) is float
    assert finite_mean([1.0, nan, None, inf, 3.0]) == 2.0
    assert finite_mean([nan, None]) is None and finite_mean([]) is None


def test_a_report_page_escapes_its_title_and_has_a_script_only_when_given():
    page = html_page("drive <a&b>", ["<p>x</p>", "<p>y</p>"])
    assert "<title>drive &lt;a&amp;b&gt;</title>" in page and "<script>" not in page
    assert page.endswith("<body><p>x</p><p>y</p></body></html>")
    assert "<script>f()</script></head>" in html_page("t", [], "f()")


# --- BEV panels --------------------------------------------------------------------------------


def _centre_of_max(image: AxesImage) -> tuple[float, float]:
    """Where the brightest pixel of an image is drawn, in the axes' data coordinates (y, x)."""
    array = np.asarray(image.get_array())
    left, right, bottom, top = image.get_extent()
    row, col = np.unravel_index(np.argmax(array), array.shape)
    horizontal = left + (col + 0.5) * (right - left) / array.shape[1]
    rows_from_top = row if image.origin == "upper" else array.shape[0] - 1 - row
    vertical = top - (rows_from_top + 0.5) * (top - bottom) / array.shape[0]
    return horizontal, vertical


def test_a_bev_map_is_drawn_in_base_link_metres_forward_up_left_left():
    from matplotlib.figure import Figure

    bev = np.zeros(GRID.shape)
    iy, ix, inside = GRID.cell_of(np.array([7.2]), np.array([3.6]))  # ahead and to the left
    assert inside.all()
    bev[iy, ix] = 1.0
    ax = Figure().subplots()
    image = draw_bev(ax, bev, GRID)
    assert _centre_of_max(image) == pytest.approx((3.5, 7.5))  # the cell centre: y 3.5, x 7.5
    assert ax.get_xlim() == (5.0, -5.0)  # +y (left) on the left
    assert ax.get_ylim() == (-10.0, 10.0)  # +x (forward) up
    (ego,) = ax.lines
    assert ego.get_marker() == "^" and (ego.get_xdata()[0], ego.get_ydata()[0]) == (0, 0)


def _colour_bars(fig) -> list:
    return [image.colorbar for ax in fig.axes for image in ax.images if image.colorbar is not None]


def _panels(fig) -> dict[str, AxesImage]:
    return {ax.get_title(): ax.images[0] for ax in fig.axes if ax.images}


def test_bev_panels_share_one_modality_scale_and_give_the_bias_its_own():
    rng = np.random.default_rng(3)
    components = {
        "camera": rng.normal(0, 1.0, GRID.shape),
        "radar": rng.normal(0, 0.2, GRID.shape),
        "lidar": rng.normal(0, 2.0, GRID.shape),
        "bias": rng.normal(-20, 5.0, GRID.shape),  # far larger than any modality
    }
    fig = bev_figure(_report(components), T0)
    panels = _panels(fig)
    assert list(panels) == ["fused", "camera", "radar", "lidar", "bias (own scale)"]
    shared = max(float(np.abs(components[m]).max()) for m in MODALITIES)
    for m in MODALITIES:
        assert panels[m].get_clim() == pytest.approx((-shared, shared))
    bias = float(np.abs(components["bias"]).max())
    assert panels["bias (own scale)"].get_clim() == pytest.approx((-bias, bias))
    assert panels["fused"].get_clim() == (0, 1)
    # every colour scale drawn has a colour bar, labelled with what the colour means
    bars = {tuple(np.round(bar.mappable.get_clim(), 9)): bar.ax.get_xlabel() for bar in _colour_bars(fig)}
    assert len(bars) == 3
    for image in panels.values():
        assert tuple(np.round(image.get_clim(), 9)) in bars
    assert bars[(0, 1)] == "occupancy probability"
    modality_label = bars[tuple(np.round((-shared, shared), 9))]
    assert "logit contribution" in modality_label and f"±{shared:.3g}" in modality_label
    assert "own scale" in bars[tuple(np.round((-bias, bias), 9))]
    for ax in fig.axes:
        if ax.images:  # metric axes with the ego vehicle
            assert ax.get_xlabel() == "y [m]" and [line.get_marker() for line in ax.lines] == ["^"]


def test_bev_titles_stay_inside_the_canvas_and_clear_of_the_figure_title():
    grid = BEVGrid()  # square, as shipped: the layout is tightest on it
    rng = np.random.default_rng(0)
    components = {m: rng.normal(0, s, grid.shape) for m, s in zip((*MODALITIES, "bias"), (1, 0.3, 2, 8))}
    report = FrameReport(T0 + 2.3, 23, grid, sum(components.values()), components, {}, {}, {}, [], [])
    fig = bev_figure(report, T0)
    png_data_uri(fig)
    assert overlapping_titles(fig) == []
    assert fig.get_suptitle().startswith("t = 2.30 s since the start of the drive (stamp 1700000002.300 s)")


# --- Timeline and incident lanes ---------------------------------------------------------------


def _rows() -> list[FrameRow]:
    shares = {"camera": 0.5, "radar": 0.2, "lidar": 0.3}
    return [FrameRow(T0 + 0.1 * k, "processed", shares=shares) for k in range(40)] + [
        FrameRow.skipped(T0 + 4.05, "late")
    ]


def _look(artist) -> tuple:
    return to_rgba(artist.get_color()), artist.get_linestyle(), artist.get_marker()


def test_every_timeline_line_has_a_legend_entry_and_faults_are_named_only_when_there_are_some():
    alerts = [
        AlertRow(T0 + 2.2, SENSOR_FAILED, ERROR, "camera", "black", "cam_front"),
        AlertRow(T0 + 2.2, SENSOR_FAILED, ERROR, "camera", "black", "cam_back"),
        AlertRow(T0 + 3.0, SENSOR_STALE, WARN, "lidar", "late", "lidar_top"),
        AlertRow(T0 + 3.1, "SINGLE_SENSOR_SUPPORT", WARN, "radar", "alone"),  # not drawn
    ]
    without = timeline_figure(_rows(), alerts, [], T0, MODALITIES)
    with_faults = timeline_figure(
        _rows(), alerts, [FaultEvent("cam_front", "blackout", 2.0, 4.0)], T0, MODALITIES
    )
    for fig in (without, with_faults):
        (ax,) = fig.axes
        (legend,) = fig.legends
        entries = {_look(h) for h in legend.legend_handles if isinstance(h, Line2D)}
        assert {_look(line) for line in ax.lines} <= entries
        labels = [t.get_text() for t in legend.get_texts()]
        assert {"camera SENSOR_FAILED", "lidar SENSOR_STALE", "skipped frame"} <= set(labels)
        assert len(ax.lines) == len(MODALITIES) + 3 + 1  # shares, alert lines, skipped marker
    assert "injected" not in without.axes[0].get_title()
    assert not any("injected" in t.get_text() for t in without.legends[0].get_texts())
    assert "shaded: injected faults" in with_faults.axes[0].get_title()
    assert "injected fault (camera)" in [t.get_text() for t in with_faults.legends[0].get_texts()]
    quiet = timeline_figure(_rows(), [], [], T0, MODALITIES)
    assert quiet.axes[0].get_title() == "Share of positive evidence per modality"


def test_incident_lanes_have_a_legend_for_each_colour_and_name_faults_only_when_there_are_some():
    sensors = {"cam_front": "camera", "lidar_top": "lidar", "radar_front": "radar"}
    incidents = [
        _incident(1, "lidar_top", "lidar", 3, 5, ERROR),
        _incident(2, "radar_front", "radar", 1, None, WARN),
    ]
    fault = FaultEvent("lidar_top", "dropout", 3.0, 5.0)
    with_faults = lanes_figure(incidents, [fault], T0, sensors, 6.0)
    labels = [t.get_text() for t in with_faults.legends[0].get_texts()]
    assert labels == ["injected fault", "incident, peak WARN", "incident, peak ERROR"]
    assert "injected faults" in with_faults.axes[0].get_title()
    without = lanes_figure(incidents, [], T0, sensors, 6.0)
    assert [t.get_text() for t in without.legends[0].get_texts()] == labels[1:]
    assert "injected" not in without.axes[0].get_title()
    info = lanes_figure([_incident(3, "cam_front", "camera", 1, 2, INFO)], [], T0, sensors, 6.0)
    assert [t.get_text() for t in info.legends[0].get_texts()] == ["incident, peak INFO"]
    none = lanes_figure([], [], T0, sensors, 6.0)
    assert none.legends == [] and none.axes[0].get_title() == "Sensor incidents: none"
