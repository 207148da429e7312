"""Figure helpers the reports (replay/) and the evaluation (eval/) share: each modality's colour,
BEV maps drawn as seen from above with the ego vehicle, one colour limit for signed maps side by
side, and PNG output. Built on matplotlib.figure.Figure, not pyplot: no global figure registry to
leak into or backend to switch, and tests can look at what is drawn."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ros2_lmd.geometry.grid import BEVGrid

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.image import AxesImage

MODALITY_COLOURS = {"camera": "#d62728", "radar": "#2ca02c", "lidar": "#1f77b4", "bias": "#7f7f7f"}
EGO_MARKER = {"marker": "^", "markersize": 7, "markerfacecolor": "lime", "markeredgecolor": "black"}


def new_figure(figsize: tuple[float, float], **kwargs: Any) -> Figure:
    """A Figure outside pyplot (see the module docstring)."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, **kwargs)


def draw_bev(ax: Axes, bev: np.ndarray, grid: BEVGrid, **imshow: Any) -> AxesImage:
    """A (ny, nx) base_link map on metric axes as seen from above: x forward up, y left to the left,
    and the ego vehicle as a triangle at the origin pointing forward. The axis labels are the
    caller's (each figure sizes and places them its own way)."""
    image = ax.imshow(
        bev.T[::-1, ::-1],  # rows from x_max down, columns from y_max rightwards
        extent=(grid.y_max, grid.y_min, grid.x_min, grid.x_max),
        interpolation="nearest",
        **imshow,
    )
    if grid.x_min <= 0 <= grid.x_max and grid.y_min <= 0 <= grid.y_max:
        ax.plot(0, 0, linestyle="none", **EGO_MARKER)
    ax.tick_params(labelsize=7)
    return image


def symmetric_limit(bevs: Iterable[np.ndarray]) -> float:
    """One colour limit +-L for signed maps drawn side by side, so that one colour is one logit in
    every panel: the largest |value| among them (1 when all are zero)."""
    return max((float(np.abs(b).max()) for b in bevs), default=0.0) or 1.0


def _settle(fig: Figure) -> None:
    # The layout engine places colour bars beside fixed-aspect images in passes: one draw before
    # saving lets it settle (on the first, the titles can overlap the figure title).
    fig.draw_without_rendering()


def png_data_uri(fig: Figure, dpi: int = 90) -> str:
    """The figure as a PNG data URI, for an <img> of a self-contained HTML page."""
    _settle(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def save_png(fig: Figure, path: Path, dpi: int = 100) -> None:
    """The figure as a PNG file (the evaluation's figures)."""
    _settle(fig)
    fig.savefig(path, dpi=dpi)


__all__ = [
    "MODALITY_COLOURS",
    "EGO_MARKER",
    "new_figure",
    "draw_bev",
    "symmetric_limit",
    "png_data_uri",
    "save_png",
]
