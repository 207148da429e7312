"""Ground truth per simulated instant: the vehicle list and the BEV vehicle occupancy on the
BEVGrid, both in base_link at the ego's pose at that instant (what a BEV segmentation head and the
monitor's detections are scored against)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ros2_lmd.geometry.grid import BEVGrid
from ros2_lmd.sim.world import CLASSES, ObjectBoxes, World


@dataclass(frozen=True)
class GTObject:
    """One vehicle in base_link. Velocity is over ground (not relative to the ego), in base_link axes."""

    id: int
    cls: str
    x: float
    y: float
    z: float
    length: float
    width: float
    height: float
    yaw: float
    vx: float
    vy: float


@dataclass
class GroundTruth:
    t: float
    stamp: float
    grid: BEVGrid
    occupancy: np.ndarray  # (ny, nx) uint8, 1 where a vehicle covers the cell centre
    boxes: ObjectBoxes  # vehicles overlapping the grid, base_link
    ego_velocity: np.ndarray  # (2,) over ground, base_link

    @property
    def objects(self) -> list[GTObject]:
        b = self.boxes
        return [
            GTObject(
                int(b.ids[i]),
                CLASSES[b.classes[i]],
                *map(float, b.centre[i]),
                *map(float, b.size[i]),
                float(b.yaw[i]),
                *map(float, b.velocity[i]),
            )
            for i in range(len(b))
        ]


def vehicle_occupancy(boxes: ObjectBoxes, grid: BEVGrid) -> np.ndarray:
    """(ny, nx) uint8: 1 where a cell centre lies inside a box footprint (vehicles only)."""
    occ = np.zeros(grid.shape, np.uint8)
    res = grid.resolution
    for k in np.flatnonzero(boxes.is_vehicle):
        cx, cy = boxes.centre[k, :2]
        hl, hw = boxes.size[k, :2] / 2
        reach = np.hypot(hl, hw)
        ix0 = max(int(np.floor((cx - reach - grid.x_min) / res)), 0)
        ix1 = min(int(np.ceil((cx + reach - grid.x_min) / res)) + 1, grid.nx)
        iy0 = max(int(np.floor((cy - reach - grid.y_min) / res)), 0)
        iy1 = min(int(np.ceil((cy + reach - grid.y_min) / res)) + 1, grid.ny)
        if ix1 <= ix0 or iy1 <= iy0:
            continue
        gx = grid.x_min + (np.arange(ix0, ix1) + 0.5) * res - cx
        gy = grid.y_min + (np.arange(iy0, iy1) + 0.5) * res - cy
        c, s = np.cos(boxes.yaw[k]), np.sin(boxes.yaw[k])
        u = c * gx[None, :] + s * gy[:, None]
        v = -s * gx[None, :] + c * gy[:, None]
        occ[iy0:iy1, ix0:ix1] |= ((np.abs(u) <= hl) & (np.abs(v) <= hw)).astype(np.uint8)
    return occ


def ground_truth(world: World, t: float, stamp: float, grid: BEVGrid) -> GroundTruth:
    boxes = world.objects_in_base(t)
    boxes = boxes.subset(boxes.is_vehicle)
    half_diag = np.hypot(boxes.size[:, 0], boxes.size[:, 1]) / 2
    cx, cy = boxes.centre[:, 0], boxes.centre[:, 1]
    near = (
        (cx + half_diag >= grid.x_min)
        & (cx - half_diag <= grid.x_max)
        & (cy + half_diag >= grid.y_min)
        & (cy - half_diag <= grid.y_max)
    )
    boxes = boxes.subset(near)
    return GroundTruth(t, stamp, grid, vehicle_occupancy(boxes, grid), boxes, world.ego_velocity())
