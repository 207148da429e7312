"""The corruption kinds: for each (modality, kind) its function, its parameter at severities 1 to 5,
the parameter's unit and the published taxonomy it follows. `kind_for` checks a target's kind and
severity and says what is valid. The table is at the end of the module.

What a kind acts on (`acts_on`):
- "image": an RGB image (camera.py), "points": a structured cloud (pointcloud.py): the payload of
  every message inside the window is replaced by f(payload, parameter, rng);
- "arrival": whether each message arrives (timing.py); "stamp": seconds added to its header stamp;
- "payload_source": which earlier payload it carries (stuck, temporal misalignment).
`fixed`: the random pattern is drawn once per fault (dirt on a lens stays where it is), not per message."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ros2_lmd.corrupt import camera, pointcloud, timing

SEVERITIES = (1, 2, 3, 4, 5)
DEFAULT_SEVERITY = 3

DONG = (
    'Dong et al., "Benchmarking Robustness of 3D Object Detection to Common Corruptions in Autonomous '
    'Driving" (CVPR 2023)'
)
ROBOBEV = "RoboBEV / nuScenes-C"
MULTICORRUPT = "MultiCorrupt"
ROBO3D = "Robo3D"
OURS = "ours (no benchmark defines it; parameters chosen to span mild to severe)"


@dataclass(frozen=True)
class Corruption:
    kind: str
    acts_on: str  # image, points, arrival, stamp, payload_source
    function: Callable[..., Any]
    levels: tuple[float, float, float, float, float]  # the parameter at severities 1..5
    unit: str
    source: str
    fixed: bool = False

    def parameter(self, severity: int) -> float:
        return self.levels[severity - 1]

    @property
    def summary(self) -> str:
        return " ".join((self.function.__doc__ or "").strip().split("\n\n")[0].split())


def _c(kind, acts_on, function, levels, unit, source, fixed=False) -> Corruption:
    return Corruption(kind, acts_on, function, tuple(levels), unit, source, fixed)


_ANY = {
    "frame_lost": _c(
        "frame_lost", "arrival", timing.frame_lost, (0.2, 0.4, 0.6, 0.8, 0.95), "probability", ROBOBEV
    ),
    "clock_offset": _c("clock_offset", "stamp", timing.clock_offset, (0.02, 0.05, 0.1, 0.2, 0.5), "s", OURS),
    "clock_drift": _c("clock_drift", "stamp", timing.clock_drift, (0.01, 0.02, 0.05, 0.1, 0.2), "s/s", OURS),
    "intermittent": _c(
        "intermittent",
        "arrival",
        timing.intermittent_gaps,
        (0.2, 0.35, 0.5, 0.65, 0.8),
        "fraction of the window",
        OURS,
        True,
    ),
    "rate_drop": _c("rate_drop", "arrival", timing.rate_drop, (2, 3, 4, 6, 10), "keep 1 in N", OURS),
    "stuck": _c("stuck", "payload_source", timing.stuck_source, (1, 1, 1, 1, 1), "(none)", OURS),
    "temporal": _c(
        "temporal", "payload_source", timing.lagged_source, (1, 2, 3, 5, 8), "frames behind", MULTICORRUPT
    ),
}

_CAMERA = {
    "brightness": _c(
        "brightness", "image", camera.brightness, (0.1, 0.2, 0.3, 0.4, 0.5), "HSV value shift", DONG
    ),
    "low_light": _c("low_light", "image", camera.low_light, (0.5, 0.4, 0.3, 0.2, 0.1), "light gain", ROBOBEV),
    "fog": _c("fog", "image", camera.fog, (0.3, 0.4, 0.5, 0.6, 0.75), "airlight opacity", DONG),
    "snow": _c("snow", "image", camera.snow, (0.002, 0.004, 0.007, 0.01, 0.015), "flakes per pixel", DONG),
    "rain": _c("rain", "image", camera.rain, (0.3, 0.6, 1.0, 1.5, 2.2), "streaks per 1000 px", DONG),
    "motion_blur": _c(
        "motion_blur", "image", camera.motion_blur, (15, 25, 35, 50, 70), "px at 1600 px", DONG
    ),
    "defocus": _c("defocus", "image", camera.defocus, (6, 8, 12, 16, 20), "px radius at 1600 px", DONG),
    "gaussian_noise": _c(
        "gaussian_noise", "image", camera.gaussian_noise, (0.08, 0.12, 0.18, 0.26, 0.38), "std", DONG
    ),
    "shot_noise": _c(
        "shot_noise", "image", camera.shot_noise, (60, 25, 12, 5, 3), "photons at full scale", DONG
    ),
    "impulse_noise": _c(
        "impulse_noise", "image", camera.impulse_noise, (0.03, 0.06, 0.09, 0.17, 0.27), "fraction", DONG
    ),
    "jpeg": _c("jpeg", "image", camera.jpeg, (25, 18, 15, 10, 7), "JPEG quality", DONG),
    "pixelate": _c(
        "pixelate", "image", camera.pixelate, (0.6, 0.5, 0.4, 0.3, 0.25), "scale at 1600 px", DONG
    ),
    "color_quant": _c(
        "color_quant", "image", camera.color_quant, (5, 4, 3, 2, 1), "bits per channel", ROBOBEV
    ),
    "soiling": _c("soiling", "image", camera.soiling_mud, (0.1, 0.2, 0.3, 0.4, 0.5), "area", OURS, True),
    "soiling_opaque": _c(
        "soiling_opaque", "image", camera.soiling_opaque, (0.1, 0.2, 0.3, 0.4, 0.5), "area", OURS, True
    ),
    "soiling_transparent": _c(
        "soiling_transparent",
        "image",
        camera.soiling_transparent,
        (0.1, 0.2, 0.3, 0.4, 0.5),
        "area",
        OURS,
        True,
    ),
    "occlusion": _c(
        "occlusion", "image", camera.occlusion, (0.05, 0.1, 0.2, 0.3, 0.45), "area", ROBOBEV, True
    ),
    "crash": _c("crash", "image", camera.crash, (1, 1, 1, 1, 1), "(none)", ROBOBEV),
}

_LIDAR = {
    "density": _c(
        "density", "points", pointcloud.density, (0.1, 0.2, 0.3, 0.45, 0.6), "fraction dropped", DONG
    ),
    "beam_missing": _c(
        "beam_missing",
        "points",
        pointcloud.beam_missing,
        (0.1, 0.25, 0.4, 0.55, 0.7),
        "fraction of beams",
        ROBO3D,
        True,
    ),
    "cutout": _c("cutout", "points", pointcloud.cutout, (3, 5, 7, 10, 13), "3 m discs", DONG, True),
    "fov_lost": _c("fov_lost", "points", pointcloud.fov_lost, (240, 180, 120, 90, 60), "degrees kept", DONG),
    "crosstalk": _c(
        "crosstalk", "points", pointcloud.crosstalk, (0.006, 0.01, 0.02, 0.04, 0.07), "fraction added", ROBO3D
    ),
    "fog": _c("fog", "points", pointcloud.fog, (150, 100, 70, 50, 30), "visibility m", DONG),
    "rain": _c("rain", "points", pointcloud.rain, (250, 180, 120, 80, 50), "visibility m", DONG),
    "snow": _c("snow", "points", pointcloud.snow, (200, 140, 90, 60, 40), "visibility m", DONG),
    "incomplete_echo": _c(
        "incomplete_echo",
        "points",
        pointcloud.incomplete_echo,
        (0.1, 0.2, 0.3, 0.4, 0.5),
        "darkest fraction",
        ROBO3D,
    ),
    "noise": _c("noise", "points", pointcloud.noise, (0.02, 0.04, 0.06, 0.08, 0.1), "m std", DONG),
    "rotation": _c(
        "rotation",
        "points",
        pointcloud.rotation,
        (0.5, 1, 2, 3, 5),
        "degrees yaw (+1/4 roll, pitch)",
        MULTICORRUPT,
    ),
    "translation": _c(
        "translation",
        "points",
        pointcloud.translation,
        (0.05, 0.1, 0.2, 0.3, 0.5),
        "m along x (+1/2 along y)",
        MULTICORRUPT,
    ),
}

_RADAR = {
    "ghosts": _c("ghosts", "points", pointcloud.ghosts, (3, 6, 12, 20, 35), "targets added", OURS),
    "dropout": _c(
        "dropout", "points", pointcloud.dropout, (0.2, 0.35, 0.5, 0.7, 0.9), "fraction dropped", OURS
    ),
    "noise": _c("noise", "points", pointcloud.radar_noise, (0.2, 0.4, 0.7, 1.0, 1.5), "m and m/s std", OURS),
    "range_bias": _c("range_bias", "points", pointcloud.range_bias, (0.5, 1, 2, 3, 5), "m", OURS),
    "azimuth_bias": _c("azimuth_bias", "points", pointcloud.azimuth_bias, (1, 2, 3, 5, 8), "degrees", OURS),
    "rotation": _LIDAR["rotation"],
    "translation": _LIDAR["translation"],
}

# modality -> kind -> Corruption: the whole library.
KINDS: dict[str, dict[str, Corruption]] = {
    "camera": {**_CAMERA, **_ANY},
    "lidar": {**_LIDAR, **_ANY},
    "radar": {**_RADAR, **_ANY},
}


def kind_for(modality: str, kind: str, severity: int) -> Corruption:
    """The corruption `kind` of a `modality` sensor; ValueError naming what is valid."""
    if modality not in KINDS:
        raise ValueError(f"modality {modality!r} has no corruptions (valid: {', '.join(KINDS)})")
    if kind not in KINDS[modality]:
        raise ValueError(f"kind {kind!r} does not apply to {modality} (valid: {', '.join(KINDS[modality])})")
    if severity not in SEVERITIES:
        raise ValueError(f"severity {severity} of {kind!r}: must be one of 1, 2, 3, 4, 5")
    return KINDS[modality][kind]


# The tuning / held-out split of issue #24 (docs/incidents.md), fixed from 2026-12-06 on: evidence is
# developed and thresholds are chosen on TUNING only; HELD_OUT measures whether it generalises.
# Every (modality, kind) is in exactly one set, and each set has kinds of every modality.
TUNING: dict[str, tuple[str, ...]] = {
    "camera": (
        "brightness", "low_light", "fog", "motion_blur", "gaussian_noise", "jpeg", "soiling",
        "soiling_opaque", "occlusion", "crash", "stuck", "frame_lost", "clock_offset", "rate_drop",
    ),
    "lidar": ("density", "fov_lost", "crosstalk", "fog", "rotation", "stuck", "frame_lost", "clock_offset"),
    "radar": ("ghosts", "dropout", "range_bias", "stuck", "frame_lost", "rate_drop"),
}  # fmt: skip
HELD_OUT: dict[str, tuple[str, ...]] = {
    "camera": (
        "snow", "rain", "defocus", "shot_noise", "impulse_noise", "pixelate", "color_quant",
        "soiling_transparent", "temporal", "intermittent", "clock_drift",
    ),
    "lidar": (
        "beam_missing", "cutout", "rain", "snow", "incomplete_echo", "noise", "translation", "temporal",
        "intermittent", "rate_drop", "clock_drift",
    ),
    "radar": (
        "noise", "azimuth_bias", "rotation", "translation", "temporal", "intermittent", "clock_offset",
        "clock_drift",
    ),
}  # fmt: skip
