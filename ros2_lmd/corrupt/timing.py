"""Corruptions of a sensor's message stream rather than of one payload: which messages of a fault
window arrive, what stamp they carry and which payload. Pure functions of a message's place in the
window (its index from the window's first message, its time `t` in seconds from the window's start)
and the severity parameter, so a bag rewriter and a model-input pipeline apply them alike.

Sources: RoboBEV/nuScenes-C (frame lost), MultiCorrupt (temporal misalignment), and for clocks and
rates the failure modes of ROS drivers (a wrong PTP offset, a free-running clock, a saturated link)."""

from __future__ import annotations

import numpy as np


def frame_lost(index: int, t: float, probability: float, rng: np.random.Generator) -> bool:
    """Whether a message arrives: each is lost independently with `probability` (RoboBEV's frame lost)."""
    return bool(rng.random() >= probability)


def rate_drop(index: int, t: float, keep_every: float, rng: np.random.Generator) -> bool:
    """Whether a message arrives: one in `keep_every` does (a link or driver that cannot keep up)."""
    return index % int(keep_every) == 0


def intermittent_gaps(
    duration: float, fraction: float, rng: np.random.Generator
) -> list[tuple[float, float]]:
    """Gaps [start, end) in seconds from the window's start covering about `fraction` of
    `duration`, in bursts of 0.2 to 0.6 s (a loose connector): fixed for the whole window."""
    gaps: list[tuple[float, float]] = []
    t = float(rng.uniform(0.0, 0.3))
    while t < duration:
        burst = float(rng.uniform(0.2, 0.6))
        gaps.append((t, min(duration, t + burst)))
        t += burst + burst * (1 - fraction) / max(fraction, 1e-6) * float(rng.uniform(0.5, 1.5))
    return gaps


def intermittent(t: float, gaps: list[tuple[float, float]]) -> bool:
    """Whether a message at `t` arrives: not inside one of `gaps` (intermittent_gaps)."""
    return not any(start <= t < end for start, end in gaps)


def clock_offset(t: float, seconds: float) -> float:
    """Seconds added to the header stamp: a constant `seconds` (a wrong clock offset)."""
    return seconds


def clock_drift(t: float, rate: float) -> float:
    """Seconds added to the header stamp at `t`: `rate` seconds per second from the window's start
    (a free-running clock)."""
    return rate * t


def stuck_source(index: int, level: float) -> int:
    """Index (from the window's first message) of the payload a stuck sensor sends: the first, always."""
    return 0


def lagged_source(index: int, frames: float) -> int:
    """Index (possibly negative: before the window) of the payload a sensor `frames` frames behind
    sends with its current stamp (MultiCorrupt's temporal misalignment)."""
    return index - int(frames)
