"""Checks on drawn matplotlib figures that several report tests share."""

from __future__ import annotations

from typing import Any


def overlapping_titles(fig: Any) -> list[str]:
    """Titles that leave the canvas or overlap the figure title, as last drawn."""
    canvas = fig.bbox
    suptitle = fig._suptitle.get_window_extent()  # matplotlib has no public getter for the artist
    bad = [] if canvas.y1 >= suptitle.y1 and canvas.y0 <= suptitle.y0 else ["suptitle"]
    for ax in fig.axes:
        if ax.get_title():
            box = ax.title.get_window_extent()
            if box.y1 > canvas.y1 or box.overlaps(suptitle):
                bad.append(ax.get_title())
    return bad
