"""The monitor's pictures of a FrameReport as numbers and pixels, apart from any message: the cell
values of the BEV grids, the colour BEV image, the signed (blue-white-red) component images and the
colours of the modalities and severities. ros2_lmd.messages.outputs wraps them in messages.

Value scales (what rviz shows):
- `bev/fused`: occupancy probability sigmoid(logit) * 100, rounded, 0..100.
- `bev/<camera|radar|lidar|bias>`: the signed LMD logit contribution c of that component, mapped
  linearly to 0..100 with 50 = no contribution: value = round(50 + 50 * clip(c / R, -1, 1)),
  R = `component_logit_range` (logits). 100 means "pushes the cell towards occupied by R logits or
  more", 0 "towards free by R or more". Every cell is decomposed; -1 (unknown) marks only a NaN
  (a broken model), while an infinite logit is as certain as a value can be: 0 or 100.
- `bev_image` (rgb8): camera red, radar green, LiDAR blue; each channel's intensity is that
  modality's positive contribution, 255 at R logits or more. Cells whose fused probability reaches
  the detection threshold are outlined in white. The image is turned so that x forward (REP-103)
  points up and y left points left: row 0 is the grid's largest x, column 0 its largest y.
- `bev_image/<camera|radar|lidar|bias>` (rgb8, turned like `bev_image`; one pixel per cell, as
  viewers scale images and `analyze` writes every one to its bag): the signed contribution c on a
  blue-white-red diverging scale with the grids' fixed range R, so colours compare across frames
  and modalities: t = clip(c / R, -1, 1); t >= 0 is
  (255, 255 (1 - t), 255 (1 - t)), t < 0 is (255 (1 + t), 255 (1 + t), 255), rounded: white no
  contribution, full red towards occupied by R or more, full blue towards free by R or more.
  A non-finite contribution (a broken model) is black, a colour the scale never takes. rviz's Map
  display has no diverging colour scheme (its `costmap` reads 50 as a cost), hence these images.
"""

from __future__ import annotations

import numpy as np

from ros2_lmd.monitor.detections import sigmoid
from ros2_lmd.monitor.report import FrameReport

BEV_LAYERS = ("fused", "camera", "radar", "lidar", "bias")
DEFAULT_COMPONENT_LOGIT_RANGE = 4.0
# Colour of a non-finite contribution in the signed images: off the blue-white-red scale.
NON_FINITE_RGB = (0, 0, 0)

# One colour per modality (r, g, b in 0..1), shared by the image and the markers.
MODALITY_COLOURS: dict[str, tuple[float, float, float]] = {
    "camera": (1.0, 0.2, 0.2),
    "radar": (0.2, 1.0, 0.2),
    "lidar": (0.3, 0.5, 1.0),
}
_IMAGE_CHANNEL = {"camera": 0, "radar": 1, "lidar": 2}
SEVERITY_COLOURS = {0: (1.0, 1.0, 1.0), 1: (1.0, 0.85, 0.1), 2: (1.0, 0.15, 0.15)}


def layer_values(report: FrameReport, layer: str) -> np.ndarray:
    """(ny, nx) logits of one BEV layer: the fused output or one component."""
    if layer == "fused":
        return report.fused
    if layer not in report.components:
        raise KeyError(f"BEV layer {layer!r} not in this report; it has {['fused', *report.components]}")
    return report.components[layer]


# --- BEV grids --------------------------------------------------------------------------------------


def signed_scale(values: np.ndarray, component_logit_range: float) -> np.ndarray:
    """Signed logit contributions on the fixed scale every component view shares:
    clip(c / R, -1, 1), R = `component_logit_range` (NaN stays NaN)."""
    if component_logit_range <= 0:
        raise ValueError(f"component_logit_range must be > 0, got {component_logit_range}")
    return np.clip(np.asarray(values, dtype=np.float64) / component_logit_range, -1.0, 1.0)


def occupancy_values(
    report: FrameReport, layer: str, component_logit_range: float = DEFAULT_COMPONENT_LOGIT_RANGE
) -> np.ndarray:
    """(ny, nx) int8 cell values of one layer, on the scales of the module docstring."""
    values = np.asarray(layer_values(report, layer), dtype=np.float64)
    if layer == "fused":
        scaled = sigmoid(values) * 100.0
    else:
        scaled = 50.0 + 50.0 * signed_scale(values, component_logit_range)
    # NaN (a broken model) shows as unknown rather than as a plausible value; +-inf clips to 0/100.
    cells = np.where(np.isfinite(scaled), np.rint(scaled), -1)
    return cells.astype(np.int8)


# --- Colour BEV image -------------------------------------------------------------------------------


def bev_rgb(
    report: FrameReport,
    scale: int = 1,
    component_logit_range: float = DEFAULT_COMPONENT_LOGIT_RANGE,
    detection_threshold: float = 0.5,
) -> np.ndarray:
    """(nx*scale, ny*scale, 3) uint8 RGB view from above, x forward up (module docstring)."""
    if scale < 1:
        raise ValueError(f"bev image scale must be >= 1, got {scale}")
    ny, nx = report.grid.shape
    image = np.zeros((ny, nx, 3), np.float64)
    for modality, channel in _IMAGE_CHANNEL.items():
        if modality in report.components:
            positive = np.clip(np.nan_to_num(report.components[modality]), 0.0, None)
            image[..., channel] = np.minimum(positive / component_logit_range, 1.0)
    rgb = np.rint(image * 255.0).astype(np.uint8)
    occupied = sigmoid(np.nan_to_num(report.fused)) >= detection_threshold
    rgb[_outline(occupied)] = 255
    rgb = _seen_from_above(rgb)
    if scale > 1:
        rgb = np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)
    return np.ascontiguousarray(rgb)


def _seen_from_above(cells: np.ndarray) -> np.ndarray:
    """[iy, ix, ...] grid cells -> image rows and columns, x forward up and y left left: [ix, iy]
    with both axes reversed, so row 0 is the largest x and column 0 the largest y."""
    return cells.swapaxes(0, 1)[::-1, ::-1]


def _outline(mask: np.ndarray) -> np.ndarray:
    """Cells of `mask` with a 4-neighbour outside it (or on the grid border)."""
    padded = np.pad(mask, 1, constant_values=False)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~interior


# --- Signed BEV images ------------------------------------------------------------------------------


def diverging_rgb(
    values: np.ndarray, component_logit_range: float = DEFAULT_COMPONENT_LOGIT_RANGE
) -> np.ndarray:
    """(..., 3) uint8 blue-white-red colours of signed logit contributions, on the fixed scale of
    the module docstring (white at 0, full red at +range, full blue at -range; black if not finite)."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    t = np.where(finite, signed_scale(values, component_logit_range), 0.0)
    fade = 255.0 * (1.0 - np.abs(t))  # the two channels that leave white
    rgb = np.empty((*values.shape, 3), np.float64)
    rgb[..., 0] = np.where(t >= 0, 255.0, fade)
    rgb[..., 1] = fade
    rgb[..., 2] = np.where(t >= 0, fade, 255.0)
    rgb = np.rint(rgb).astype(np.uint8)
    rgb[~finite] = NON_FINITE_RGB
    return rgb


def bev_signed_rgb(
    report: FrameReport, layer: str, component_logit_range: float = DEFAULT_COMPONENT_LOGIT_RANGE
) -> np.ndarray:
    """(nx, ny, 3) uint8 view from above of one component (camera, radar, lidar or bias), one
    pixel per cell: `diverging_rgb` of its signed contribution."""
    if layer == "fused":
        raise KeyError("the signed BEV images are of components; the fused layer is bev/fused")
    return np.ascontiguousarray(
        _seen_from_above(diverging_rgb(layer_values(report, layer), component_logit_range))
    )
