"""Geometry shared by every layer: the BEV grid, voxelisation, camera-to-BEV lifting, box footprints
rasterised on the grid (the ground-truth rule)."""

from ros2_lmd.geometry.footprints import footprint_occupancy
from ros2_lmd.geometry.grid import BEVGrid
from ros2_lmd.geometry.lifting import CameraLifter, lift_with_grid_sample, scale_intrinsics, voxel_centres
from ros2_lmd.geometry.voxelize import (
    SIMPLEBEV_META_RADAR_FIELDS,
    cell_mean,
    occupancy,
    voxel_indices,
    voxelize_lidar,
    voxelize_radar,
)

__all__ = [
    "BEVGrid",
    "footprint_occupancy",
    "CameraLifter",
    "lift_with_grid_sample",
    "scale_intrinsics",
    "voxel_centres",
    "SIMPLEBEV_META_RADAR_FIELDS",
    "cell_mean",
    "occupancy",
    "voxel_indices",
    "voxelize_lidar",
    "voxelize_radar",
]
