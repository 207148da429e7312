"""Oriented box footprints rasterised on the BEV grid: the one ground-truth rule of the project (a
cell is occupied when its centre lies inside a footprint), shared by the simulator's ground truth
(sim/truth.py) and the recorded datasets' (datasets/nuscenes_frames.py), so a model is scored
against the same kind of occupancy on both."""

from __future__ import annotations

import numpy as np

from ros2_lmd.geometry.grid import BEVGrid


def footprint_occupancy(centres: np.ndarray, sizes: np.ndarray, yaw: np.ndarray, grid: BEVGrid) -> np.ndarray:
    """(ny, nx) uint8: 1 where a cell centre lies inside one of N box footprints. Box k is centred
    at `centres[k, :2]` (x, y), `sizes[k, :2]` long and wide (along and across its heading; a z
    column may follow in both) and turned by `yaw[k]` (radians, counter-clockwise from x); metres
    in the grid's frame."""
    occ = np.zeros(grid.shape, np.uint8)
    res = grid.resolution
    for k in range(len(yaw)):
        cx, cy = centres[k, :2]
        hl, hw = sizes[k, :2] / 2
        reach = np.hypot(hl, hw)
        ix0 = max(int(np.floor((cx - reach - grid.x_min) / res)), 0)
        ix1 = min(int(np.ceil((cx + reach - grid.x_min) / res)) + 1, grid.nx)
        iy0 = max(int(np.floor((cy - reach - grid.y_min) / res)), 0)
        iy1 = min(int(np.ceil((cy + reach - grid.y_min) / res)) + 1, grid.ny)
        if ix1 <= ix0 or iy1 <= iy0:
            continue
        gx = grid.x_min + (np.arange(ix0, ix1) + 0.5) * res - cx
        gy = grid.y_min + (np.arange(iy0, iy1) + 0.5) * res - cy
        c, s = np.cos(yaw[k]), np.sin(yaw[k])
        u = c * gx[None, :] + s * gy[:, None]
        v = -s * gx[None, :] + c * gy[:, None]
        occ[iy0:iy1, ix0:ix1] |= ((np.abs(u) <= hl) & (np.abs(v) <= hw)).astype(np.uint8)
    return occ
