"""robustness.html: the self-contained page of `ros2-lmd robustness` (replay/robustness.py computes
the numbers): the clean reference, a kinds x severities heatmap of RA, the share shift of each
modality per kind, the per-sensor pass and what was skipped. Figures on `render.figures`, the page
on `render.page`."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ros2_lmd.render.figures import MODALITY_COLOURS, new_figure, png_data_uri
from ros2_lmd.render.page import html_page
from ros2_lmd.replay.numbers import format_number


def _label(row: Mapping[str, Any]) -> str:
    return f"{row['modality']}:{row['kind']}"


def ra_heatmap(runs: Sequence[Mapping[str, Any]], severities: Sequence[int]) -> str:
    """Kinds (rows) x severities (columns), coloured and written RA."""
    fig, ax = _ra_grid(
        runs, "severity", list(severities), (2.2, 0.9, 1.4), "RA = IoU corrupted / IoU clean", 7
    )
    ax.set_xticks(range(len(severities)), [str(s) for s in severities], fontsize=8)
    ax.set_xlabel("severity")
    ax.set_title("Resistance ability per kind and severity", fontsize=9)
    return png_data_uri(fig)


def shift_bars(kinds: Sequence[Mapping[str, Any]], modalities: Sequence[str]) -> str:
    """Per kind, each modality's share shift from clean (mean over the severities), horizontal bars."""
    labels = [_label(k) for k in kinds]
    fig = new_figure((7.0, 0.3 * len(labels) + 1.4), layout="constrained")
    ax = fig.subplots()
    height = 0.8 / max(1, len(modalities))
    for i, m in enumerate(modalities):
        shifts = [k["share_shift"].get(m) or 0.0 for k in kinds]
        y = np.arange(len(labels)) - 0.4 + height * (i + 0.5)
        ax.barh(y, shifts, height, color=MODALITY_COLOURS.get(m, "k"), label=m)
    ax.axvline(0.0, color="k", linewidth=0.6)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("share of the evidence, corrupted - clean (mean over severities)")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Where the evidence moves under each corruption (LMD shares)", fontsize=9)
    return png_data_uri(fig)


def sensor_heatmap(rows: Sequence[Mapping[str, Any]]) -> str:
    """(modality, kind) rows x sensors, RA with one sensor corrupted."""
    sensors = list(dict.fromkeys(r["sensor"] for r in rows))
    fig, ax = _ra_grid(rows, "sensor", sensors, (2.4, 0.8, 1.8), "RA, one sensor corrupted", 6)
    ax.set_xticks(range(len(sensors)), sensors, fontsize=7, rotation=40, ha="right")
    ax.set_title("Which sensor's corruption hurts most", fontsize=9)
    return png_data_uri(fig)


def _ra_grid(
    rows: Sequence[Mapping[str, Any]],
    column: str,
    columns: list[Any],
    size: tuple[float, float, float],
    colour_label: str,
    fontsize: int,
) -> tuple[Any, Any]:
    """A figure of RA per (modality, kind) row and per value of `column` (`columns` in order),
    coloured red to green over [0, 1] and written in each cell; `size`: (width base, width per
    column, height base). The caller sets the column ticks and the title."""
    labels = list(dict.fromkeys(_label(r) for r in rows))
    values = np.full((len(labels), len(columns)), np.nan)
    for r in rows:
        if r["ra"] is not None:
            values[labels.index(_label(r)), columns.index(r[column])] = r["ra"]
    width, per_column, height = size
    fig = new_figure((width + per_column * len(columns), 0.26 * len(labels) + height), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(np.ma.masked_invalid(values), cmap="RdYlGn", vmin=0.0, vmax=1.0, aspect="auto")
    for i in range(len(labels)):
        for j in range(len(columns)):
            if np.isfinite(values[i, j]):
                ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=fontsize)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    fig.colorbar(image, ax=ax, label=colour_label, shrink=0.6)
    return fig, ax


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{cells}</tr>{body}</table>"


def write_html(path: Path, report: Mapping[str, Any]) -> None:
    modalities = report["model_modalities"]
    clean = report["clean"]
    data = report.get("data", {})
    worst = report.get("worst_kind")
    parts = [
        f"<h1>Robustness of {html.escape(str(report.get('model', '')))}</h1>",
        f"<p>{report['frames']} frames: {html.escape(str(data.get('scenes', '')))}; corruption seed "
        f"{report['seed']}; severities {', '.join(map(str, report['severities']))}. IoU of the fused "
        f"prediction (sigmoid &ge; {report['threshold']}) against ground-truth vehicle occupancy, summed "
        "over the frames; RA = IoU corrupted / IoU clean; a kind's RA is its mean over the severities, "
        "mRA the mean over the kinds.</p>",
        f"<p><b>mRA {format_number(report['mra'], '.3f')}</b>"
        + "".join(
            f"; {html.escape(m)} {format_number(v, '.3f')}" for m, v in report["mra_by_modality"].items()
        )
        + (
            f". Worst kind: <b>{html.escape(worst['modality'])}:{html.escape(worst['kind'])}</b> "
            f"(RA {format_number(worst['ra'], '.3f')})."
            if worst
            else "."
        )
        + "</p>",
        "<h2>Clean reference</h2>",
        _table(
            ["", "fused", *modalities],
            [
                [
                    "IoU",
                    format_number(clean["iou"], ".3f"),
                    *(format_number(clean["alone_iou"][m], ".3f") for m in modalities),
                ],
                ["LMD share", "", *(format_number(clean["shares"][m], ".3f") for m in modalities)],
            ],
        ),
        "<p>IoU of each modality alone: the fused output with the other modalities' features zeroed "
        "(LMD's reference input). Shares: each modality's positive LMD contribution over the detected "
        f"cells, mean over the {clean['share_frames']} frames with evidence.</p>",
    ]
    if report["runs"]:
        parts += [
            "<h2>RA per kind and severity</h2>",
            f"<img src='{ra_heatmap(report['runs'], report['severities'])}'>",
            "<h2>Share shift per kind</h2>",
            f"<img src='{shift_bars(report['kinds'], modalities)}'>",
            "<h2>Per kind</h2>",
            _table(
                ["modality", "kind", "modelled as", "RA", "min RA", *(f"shift {m}" for m in modalities)],
                [
                    [
                        k["modality"],
                        k["kind"],
                        k["modelled_as"],
                        format_number(k["ra"], ".3f"),
                        format_number(k["min_ra"], ".3f"),
                        *(format_number(k["share_shift"][m], "+.3f") for m in modalities),
                    ]
                    for k in report["kinds"]
                ],
            ),  # fmt: skip
            "<h2>Every run</h2>",
            _table(
                [
                    "modality",
                    "kind",
                    "severity",
                    "parameter",
                    "IoU",
                    "RA",
                    *(f"share {m}" for m in modalities),
                    *(f"IoU alone {m}" for m in modalities),
                ],
                [
                    [
                        r["modality"],
                        r["kind"],
                        r["severity"],
                        f"{r['parameter']:g} {r['unit']}",
                        format_number(r["iou"], ".3f"),
                        format_number(r["ra"], ".3f"),
                        *(format_number(r["shares"][m], ".3f") for m in modalities),
                        *(format_number(r["alone_iou"][m], ".3f") for m in modalities),
                    ]
                    for r in report["runs"]
                ],
            ),  # fmt: skip
        ]
    if report["sensors"]:
        parts += [
            f"<h2>One sensor at a time (severity {report['sensor_severity']})</h2>",
            f"<img src='{sensor_heatmap(report['sensors'])}'>",
            _table(
                ["modality", "kind", "hurts most", "RA"],
                [
                    [h["modality"], h["kind"], h["sensor"], format_number(h["ra"], ".3f")]
                    for h in report["sensor_hurts_most"]
                ],
            ),
            "<p>Mean RA per sensor over the kinds: "
            + ", ".join(
                f"{html.escape(s)} {format_number(v, '.3f')}" for s, v in report["sensor_mean_ra"].items()
            )
            + "</p>",
        ]
    if report["skipped"]:
        parts += [
            "<h2>Not run</h2>",
            _table(
                ["modality", "kind", "why"],
                [[s["modality"], s["kind"], s["reason"]] for s in report["skipped"]],
            ),
        ]
    path.write_text(html_page(f"robustness: {report.get('model', '')}", parts))


__all__ = ["ra_heatmap", "sensor_heatmap", "shift_bars", "write_html"]
