"""Point clouds onto the BEV grid: LiDAR occupancy per height bin (+ mean intensity) and radar
occupancy / per-cell features, including Simple-BEV's 16-channel "meta radar" layout. Pure numpy,
vectorised with bincount; inputs are base_link points as in SensorFrame."""

from __future__ import annotations

import numpy as np

from ros2_lmd.geometry.grid import BEVGrid

# Simple-BEV's meta-radar channels are the nuScenes radar fields after x, y, z (plus the sweep time
# lag). SensorFrame carries only rcs, vx_comp, vy_comp; the other channels stay zero.
SIMPLEBEV_META_RADAR_FIELDS: tuple[str, ...] = (
    "dyn_prop",
    "id",
    "rcs",
    "vx",
    "vy",
    "vx_comp",
    "vy_comp",
    "is_quality_valid",
    "ambig_state",
    "x_rms",
    "y_rms",
    "invalid_state",
    "pdh0",
    "vx_rms",
    "vy_rms",
    "dt",
)
# SensorFrame radar columns (x, y, z, rcs, vx_comp, vy_comp) -> meta channel index.
_META_FROM_FRAME = {3: 2, 4: 5, 5: 6}


def voxel_indices(
    grid: BEVGrid, xyz: np.ndarray, use_z: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Integer voxel indices (iz, iy, ix) of base_link points and the mask of points inside the
    grid. With `use_z=False` the height bounds are ignored and iz is 0 (a 2-D BEV cell)."""
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    finite = np.asarray(np.isfinite(xyz).all(axis=1))  # (N,) bool (the stubs allow a scalar)
    # Non-finite points (dropped returns) are moved far outside so the integer cast stays defined.
    xyz = np.where(finite[:, None], xyz, -1e9)
    iy, ix, inside = grid.cell_of(xyz[:, 0], xyz[:, 1])
    if use_z:
        iz = np.floor((xyz[:, 2] - grid.z_min) / grid.z_resolution).astype(np.int64)
        inside &= (iz >= 0) & (iz < grid.z_bins)
    else:
        iz = np.zeros(len(xyz), np.int64)
    inside &= finite
    return iz, iy, ix, inside


def _cells(grid: BEVGrid, xyz: np.ndarray, per_z: bool) -> tuple[np.ndarray, np.ndarray, int]:
    """Flat cell index of each point inside the grid (height bins folded in when `per_z`), the
    inside mask, and the number of cells. Points outside [z_min, z_max) are dropped either way."""
    iz, iy, ix, inside = voxel_indices(grid, xyz)
    nz = grid.z_bins if per_z else 1
    flat = iy[inside] * grid.nx + ix[inside]
    if per_z:
        flat += iz[inside] * (grid.ny * grid.nx)
    return flat, inside, nz * grid.ny * grid.nx


def _means(flat: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    """Per-cell mean of `values` (n x F) -> (F, size); empty cells 0."""
    counts = np.bincount(flat, minlength=size).astype(np.float64)
    occupied = counts > 0
    out = np.zeros((values.shape[1], size), np.float32)
    for f in range(values.shape[1]):
        sums = np.bincount(flat, weights=values[:, f], minlength=size)
        out[f, occupied] = sums[occupied] / counts[occupied]
    return out


def occupancy(grid: BEVGrid, xyz: np.ndarray, per_z: bool = True) -> np.ndarray:
    """Binary occupancy: (z_bins, ny, nx) per height bin, or (1, ny, nx) over the whole height
    range (points outside [z_min, z_max) are dropped in both cases, as in Simple-BEV)."""
    flat, _, size = _cells(grid, xyz, per_z)
    counts = np.bincount(flat, minlength=size)
    return (counts > 0).astype(np.float32).reshape(-1, grid.ny, grid.nx)


def cell_mean(grid: BEVGrid, xyz: np.ndarray, values: np.ndarray, per_z: bool = False) -> np.ndarray:
    """Mean of per-point `values` (N x F) in each cell: (F, ny, nx), or (F, z_bins, ny, nx) with
    `per_z`. Empty cells are 0 (the "no evidence" value that LMD's zero reference also uses)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    flat, inside, size = _cells(grid, xyz, per_z)
    out = _means(flat, values[inside], size)
    shape = (values.shape[1], grid.z_bins) if per_z else (values.shape[1],)
    return out.reshape(*shape, grid.ny, grid.nx)


def voxelize_lidar(
    grid: BEVGrid, points: np.ndarray, with_intensity: bool = True, intensity_scale: float = 1.0
) -> np.ndarray:
    """LiDAR (N x 4: x, y, z, intensity) -> (z_bins [+1], ny, nx): occupancy per height bin, then
    (optionally) the mean intensity of the cell's points times `intensity_scale`."""
    points = np.asarray(points, dtype=np.float32).reshape(-1, 4)
    flat, inside, size = _cells(grid, points[:, :3], per_z=True)
    occ = (np.bincount(flat, minlength=size) > 0).astype(np.float32).reshape(-1, grid.ny, grid.nx)
    if not with_intensity:
        return occ
    cells = grid.ny * grid.nx
    intensity = _means(flat % cells, points[inside, 3:4].astype(np.float64) * intensity_scale, cells)
    return np.concatenate([occ, intensity.reshape(1, grid.ny, grid.nx)], axis=0)


def voxelize_radar(grid: BEVGrid, points: np.ndarray, mode: str = "features") -> np.ndarray:
    """Radar (N x 6: x, y, z, rcs, vx_comp, vy_comp) onto the grid. Modes:
    - "occupancy": (1, ny, nx), Simple-BEV's plain radar (occupancy summed over height, clamped);
    - "features": (4, ny, nx), occupancy + mean rcs, vx_comp, vy_comp per cell;
    - "meta": (16, z_bins, ny, nx), Simple-BEV's meta-radar layout (SIMPLEBEV_META_RADAR_FIELDS),
      with the fields SensorFrame carries filled in and the rest zero."""
    points = np.asarray(points, dtype=np.float32).reshape(-1, 6)
    if mode == "occupancy":
        return occupancy(grid, points[:, :3], per_z=False)
    if mode == "features":
        occ = occupancy(grid, points[:, :3], per_z=False)
        return np.concatenate([occ, cell_mean(grid, points[:, :3], points[:, 3:6])], axis=0)
    if mode == "meta":
        out = np.zeros((len(SIMPLEBEV_META_RADAR_FIELDS), grid.z_bins, grid.ny, grid.nx), np.float32)
        means = cell_mean(grid, points[:, :3], points[:, 3:6], per_z=True)
        for column, channel in _META_FROM_FRAME.items():
            out[channel] = means[column - 3]
        return out
    raise ValueError(f"voxelize_radar: unknown mode {mode!r} (use 'occupancy', 'features' or 'meta')")
