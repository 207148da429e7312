"""The BEV grid: the one definition of the bird's-eye-view raster shared by models, simulator,
monitor and ROS outputs (docs/architecture.md conventions: base_link, x forward, y left; cells row-major in y
then x, so array index [iy, ix] matches nav_msgs/OccupancyGrid)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BEVGrid:
    """A metric BEV raster in base_link. Cell (iy, ix) covers
    x in [x_min + ix*res, x_min + (ix+1)*res), y in [y_min + iy*res, ...)."""

    x_min: float = -50.0
    x_max: float = 50.0
    y_min: float = -50.0
    y_max: float = 50.0
    resolution: float = 0.5
    z_min: float = -5.0
    z_max: float = 5.0
    z_bins: int = 8

    def __post_init__(self) -> None:
        if self.resolution <= 0:
            raise ValueError(f"BEVGrid.resolution must be > 0, got {self.resolution}")
        if self.x_max <= self.x_min or self.y_max <= self.y_min or self.z_max <= self.z_min:
            raise ValueError(f"BEVGrid bounds are empty: {self}")
        for name, extent in (("x", self.x_max - self.x_min), ("y", self.y_max - self.y_min)):
            cells = extent / self.resolution
            if abs(cells - round(cells)) > 1e-6:
                raise ValueError(f"BEVGrid {name} extent {extent} is not a multiple of {self.resolution}")
        if self.z_bins < 1:
            raise ValueError(f"BEVGrid.z_bins must be >= 1, got {self.z_bins}")

    @property
    def nx(self) -> int:
        return int(round((self.x_max - self.x_min) / self.resolution))

    @property
    def ny(self) -> int:
        return int(round((self.y_max - self.y_min) / self.resolution))

    @property
    def shape(self) -> tuple[int, int]:
        """(ny, nx): the array shape of one BEV map."""
        return (self.ny, self.nx)

    @property
    def z_resolution(self) -> float:
        return (self.z_max - self.z_min) / self.z_bins

    def cell_of(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Integer cell indices (iy, ix) of metric points and a mask of those inside the grid."""
        ix = np.floor((np.asarray(x) - self.x_min) / self.resolution).astype(np.int64)
        iy = np.floor((np.asarray(y) - self.y_min) / self.resolution).astype(np.int64)
        inside = (ix >= 0) & (ix < self.nx) & (iy >= 0) & (iy < self.ny)
        return iy, ix, inside

    def cell_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Metric (x, y) centres of every cell, each shaped (ny, nx)."""
        xs = self.x_min + (np.arange(self.nx) + 0.5) * self.resolution
        ys = self.y_min + (np.arange(self.ny) + 0.5) * self.resolution
        gx, gy = np.meshgrid(xs, ys)
        return gx, gy

    def to_dict(self) -> dict[str, float | int]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, values: dict) -> BEVGrid:
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown BEVGrid keys: {sorted(unknown)}")
        return cls(**values)
