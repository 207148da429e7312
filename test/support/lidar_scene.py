"""A forward camera and simple LiDAR scenes in base_link, for the checks that project LiDAR returns
into a camera (`near_cover`, `saturated_on_objects`)."""

from __future__ import annotations

import numpy as np

H, W = 96, 128
K = np.array([[64.0, 0, W / 2], [0, 64.0, H / 2], [0, 0, 1]])  # half view 45 degrees: 45 bins of 2
# optical frame (z forward, x right, y down) -> base_link (x forward, y left, z up), 1.5 m up
T_FORWARD = np.array([[0, 0, 1, 0], [-1, 0, 0, 0], [0, -1, 0, 1.5], [0, 0, 0, 1]], dtype=float)


def wall(x: float, y0: float, y1: float, n: int = 400) -> np.ndarray:
    """LiDAR returns (x, y, z, intensity) on a vertical wall at `x`, from y0 to y1, 0.5-2.5 m up."""
    rng = np.random.default_rng(1)
    points = np.zeros((n, 4), np.float32)
    points[:, 0] = x
    points[:, 1] = rng.uniform(y0, y1, n)
    points[:, 2] = rng.uniform(0.5, 2.5, n)
    return points


def ground() -> np.ndarray:
    """A LiDAR's ground ring 6-20 m away, all around (what every sweep holds)."""
    rng = np.random.default_rng(2)
    r, a = rng.uniform(6, 20, 3000), rng.uniform(-np.pi, np.pi, 3000)
    return np.stack([r * np.cos(a), r * np.sin(a), np.zeros(3000), np.ones(3000)], 1).astype(np.float32)
