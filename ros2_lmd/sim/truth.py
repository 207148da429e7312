"""Ground truth per simulated instant: the vehicle list and the BEV vehicle occupancy on the
BEVGrid, both in base_link at the ego's pose at that instant (what a BEV segmentation head and the
monitor's detections are scored against)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ros2_lmd.geometry.footprints import footprint_occupancy
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
    vehicle = boxes.is_vehicle
    return footprint_occupancy(boxes.centre[vehicle], boxes.size[vehicle], boxes.yaw[vehicle], grid)


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
