"""Geometry shared by every layer: the BEV grid, voxelisation, camera-to-BEV lifting."""

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
