"""Radar phantoms summed over sweeps (`isolated_pooled`): a radar sweep holds a few dozen returns, so
a dozen phantom returns per sweep stay inside one sweep's normal swing of isolated returns, while
their sum over the last `isolated_sweeps` sweeps rises faster than that sum's swing. The feature is
the plain sum of the last sweeps' isolated counts; a radar adding a dozen phantoms per sweep is named
by it and by nothing else; a healthy radar with the same swing is not."""

from __future__ import annotations

import numpy as np

from ros2_lmd.monitor.sensor_checks import OK, SensorCheckConfig, SensorChecks
from ros2_lmd.monitor.signal_features import isolated_count
from ros2_lmd.sensors.frame import SensorFrame

RADARS = ("radar_a", "radar_b", "radar_c")
PERIOD = 0.1


def _sweep(rng: np.random.Generator, phantoms: int) -> np.ndarray:
    """One radar sweep (x, y, z, rcs, vx, vy) in base_link: 6 objects of 3 returns within 0.5 m of
    each other, a Poisson(10) number of lone returns on a ring 10-50 m away (the healthy swing of
    isolated returns: sd about 3), and `phantoms` more lone returns."""
    centres = rng.uniform(-40, 40, (6, 2))
    clustered = (centres[:, None, :] + rng.uniform(-0.25, 0.25, (6, 3, 2))).reshape(-1, 2)
    alone = int(rng.poisson(10)) + phantoms
    angle = 2 * np.pi * (np.arange(alone) + rng.uniform(0, 1)) / max(alone, 1)  # spread: none near another
    radius = rng.uniform(10, 50, alone)
    lone = np.stack([radius * np.cos(angle), radius * np.sin(angle)], 1)
    xy = np.concatenate([clustered, lone])
    points = np.zeros((len(xy), 6), np.float32)
    points[:, :2] = xy
    return points


def _run(
    phantoms_from: int | None,
    phantoms: int,
    frames: int = 80,
    seed: int = 0,
    config: SensorCheckConfig | None = None,
):
    """Every radar's state and evidence after `frames` frames; radar_a adds `phantoms` lone returns
    per sweep from frame `phantoms_from` on."""
    rng = np.random.default_rng(seed)
    checks = SensorChecks(config)
    evidence: dict[str, set[str]] = {name: set() for name in RADARS}
    features: list[dict[str, float]] = []
    for i in range(frames):
        stamp = 100.0 + PERIOD * i
        extra = phantoms if phantoms_from is not None and i >= phantoms_from else 0
        points = {name: _sweep(rng, extra if name == "radar_a" else 0) for name in RADARS}
        frame = SensorFrame(
            stamp=stamp,
            cameras=[],
            sensor_points=points,
            sensor_modality={name: "radar" for name in RADARS},
            sensor_stamps={name: stamp for name in RADARS},
        )
        verdicts = checks.update(frame)
        features.append(dict(verdicts["radar_a"].features))
        for name, verdict in verdicts.items():
            evidence[name] |= {finding.feature for finding in verdict.evidence}
    return checks.states, evidence, features


def test_the_pooled_count_is_the_sum_of_the_last_sweeps_isolated_returns():
    _, _, features = _run(None, 0, frames=12)
    n = SensorCheckConfig().isolated_sweeps
    assert all("isolated_pooled" not in f for f in features[: n - 1])
    for i in range(n - 1, len(features)):
        expected = sum(features[j]["isolated"] for j in range(i - n + 1, i + 1))
        assert features[i]["isolated_pooled"] == expected


def test_the_sweep_builder_makes_the_lone_returns_it_says():
    rng = np.random.default_rng(3)
    sweep = _sweep(rng, 12)
    assert isolated_count(sweep[:, :2].astype(np.float64), 1.5) == len(sweep) - 18


def test_a_dozen_phantoms_per_sweep_are_named_by_the_pooled_count():
    without_pool = SensorCheckConfig(isolated_pooled_rise_suspect=1e9, isolated_pooled_rise_failed=1e9)
    for seed in range(3):
        states, evidence, _ = _run(40, 12, seed=seed)
        assert states["radar_a"] != OK
        assert "isolated_pooled" in evidence["radar_a"]
        assert states["radar_b"] == states["radar_c"] == OK
        # one sweep's rise alone stays within its swing (it may touch its limit now and then)
        states, _, _ = _run(40, 12, seed=seed, config=without_pool)
        assert states["radar_a"] == OK


def test_a_healthy_radar_with_the_same_swing_raises_nothing():
    for seed in range(3):
        states, evidence, _ = _run(None, 0, frames=200, seed=seed)
        assert set(states.values()) == {OK}
        assert not any(evidence.values())
