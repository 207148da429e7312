"""Message-level corruptions the simulator does not model, for testing evidence that needs no fault
model (test/monitor/test_general_evidence.py): each takes a SensorFrame and returns it with one
sensor's data corrupted as a recording would be (not through ros2_lmd.sim.faults)."""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable

import cv2
import numpy as np

from ros2_lmd.sensors.frame import SensorFrame

Corruption = Callable[[SensorFrame], SensorFrame]


def _with_points(frame: SensorFrame, name: str, points: np.ndarray) -> SensorFrame:
    """`frame` with sensor `name`'s points replaced, the merged radar / LiDAR arrays rebuilt."""
    sensor_points = {**frame.sensor_points, name: points.astype(np.float32)}
    merged = {
        modality: [p for n, p in sensor_points.items() if frame.sensor_modality.get(n) == modality]
        for modality in ("radar", "lidar")
    }
    return dataclasses.replace(
        frame,
        sensor_points=sensor_points,
        radar=np.concatenate(merged["radar"]) if merged["radar"] else frame.radar,
        lidar=np.concatenate(merged["lidar"]) if merged["lidar"] else frame.lidar,
    )


def _with_image(frame: SensorFrame, name: str, change: Callable[[np.ndarray], np.ndarray]) -> SensorFrame:
    cameras = [dataclasses.replace(c, image=change(c.image)) if c.name == name else c for c in frame.cameras]
    return dataclasses.replace(frame, cameras=cameras)


def mud(name: str, share: float = 0.4, seed: int = 0) -> Corruption:
    """A textured smear of mud over about `share` of the image: blobs of a brown, grainy texture,
    opaque at their core and fading at their edge, fixed on the lens (the same every frame)."""
    masks: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def smear(image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        if (h, w) not in masks:
            rng = np.random.default_rng(seed)
            mask = np.zeros((h, w), np.float32)
            while (mask > 0.5).mean() < share:
                centre = (int(rng.integers(0, w)), int(rng.integers(h // 3, h)))
                axes = (int(rng.integers(w // 10, w // 4)), int(rng.integers(h // 10, h // 4)))
                cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
            mask = cv2.GaussianBlur(mask, (0, 0), max(1.0, w / 80))
            grain = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 1.5)
            texture = np.stack([90 + 40 * grain, 70 + 30 * grain, 45 + 20 * grain], -1)
            masks[(h, w)] = (np.clip(mask, 0, 1)[..., None], np.clip(texture, 0, 255))
        alpha, texture = masks[(h, w)]
        return (image * (1 - alpha) + texture * alpha).astype(np.uint8)

    return lambda frame: _with_image(frame, name, smear)


def haze(name: str, opacity: float = 0.5) -> Corruption:
    """A hazed lens (condensation, a film of dust): a light grey veil of `opacity` over the whole
    image, the scene seen through it."""

    def veil(image: np.ndarray) -> np.ndarray:
        return np.clip(image * (1 - opacity) + 200.0 * opacity, 0, 255).astype(np.uint8)

    return lambda frame: _with_image(frame, name, veil)


def exposure(name: str, gain: float = 1.6) -> Corruption:
    """An exposure fault (a stuck gain, a broken auto-exposure): every pixel times `gain`, clipped."""
    return lambda frame: _with_image(
        frame, name, lambda image: np.clip(image * gain, 0, 255).astype(np.uint8)
    )


def gaussian_noise(name: str, sigma: float = 25.0, seed: int = 0) -> Corruption:
    """Heavy sensor noise at normal brightness: zero-mean Gaussian, `sigma` grey levels, new every frame."""
    rng = np.random.default_rng(seed)

    def noisy(image: np.ndarray) -> np.ndarray:
        return np.clip(image + rng.normal(0, sigma, image.shape), 0, 255).astype(np.uint8)

    return lambda frame: _with_image(frame, name, noisy)


def rotated(name: str, axis: str, degrees: float) -> Corruption:
    """A sensor knocked on its mount: its points rotated by `degrees` about its own `axis` (x, y, z)
    through its mounting position."""
    a = np.radians(degrees)
    c, s = np.cos(a), np.sin(a)
    R = {
        "x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
        "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
        "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]),
    }[axis]

    def knock(frame: SensorFrame) -> SensorFrame:
        points = frame.sensor_points[name].astype(np.float64)
        origin = np.asarray(frame.sensor_extrinsics[name])[:3, 3]
        points[:, :3] = (points[:, :3] - origin) @ R.T + origin
        return _with_points(frame, name, points)

    return knock


def stuck(name: str) -> Corruption:
    """A sensor repeating one reading: the first corrupted frame's points, again and again."""
    held: list[np.ndarray] = []

    def repeat(frame: SensorFrame) -> SensorFrame:
        if not held:
            held.append(frame.sensor_points[name].copy())
        return _with_points(frame, name, held[0])

    return repeat


class Stale:
    """A sensor sending, under each new stamp, its reading of `frames` frames before: a driver or a
    transport passing on an old buffer. Called on the corrupted frames; `observe` sees the frames
    before the onset, so that the first corrupted one already carries an old reading (not a repeat)."""

    def __init__(self, name: str, frames: int) -> None:
        self.name = name
        self.past: deque[np.ndarray] = deque(maxlen=frames + 1)

    def observe(self, frame: SensorFrame) -> None:
        self.past.append(frame.sensor_points[self.name].copy())

    def __call__(self, frame: SensorFrame) -> SensorFrame:
        self.observe(frame)
        return _with_points(frame, self.name, self.past[0])


def range_scaled(name: str, factor: float = 1.1) -> Corruption:
    """A radar reporting wrong ranges: every return moved along its ray from the sensor by `factor`."""

    def scale(frame: SensorFrame) -> SensorFrame:
        points = frame.sensor_points[name].astype(np.float64)
        origin = np.asarray(frame.sensor_extrinsics[name])[:3, 3]
        points[:, :2] = origin[:2] + factor * (points[:, :2] - origin[:2])
        return _with_points(frame, name, points)

    return scale


__all__ = ["Corruption", "Stale", "mud", "gaussian_noise", "rotated", "stuck", "range_scaled"]
