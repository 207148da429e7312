"""The LiDAR-radar agreement's pool (`SensorChecks._agreement`): each radar's `range_fit` (and the
LiDAR's `yaw_fit`, `shift_fit` and `range_fit`) is judged on its newest `agreement_frames` sweeps,
and on older ones too, up to `agreement_max_frames`, until the pool holds `agreement_min_returns`
radar returns: a sparse radar's handful of returns that a range correction happens to put on
objects is no evidence, and a radar whose ranges are wrong moves every return off the objects,
however many sweeps are pooled."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ros2_lmd.monitor.sensor_checks import SensorCheckConfig, SensorChecks
from ros2_lmd.sensors.frame import SensorFrame

RADARS = ("radar_a", "radar_b", "radar_c", "radar_d")  # judged with at least 3 of them pooled
# posts 0.3-3 m up on a ring around base_link: what the LiDAR sees and the radars return from
POST_ANGLES = np.radians(np.arange(0, 360, 9.0))
POST_RANGES = 10.0 + 3.0 * (np.arange(len(POST_ANGLES)) % 7)


def _lidar(sweep: int, dx: float = 0.0, yaw_deg: float = 0.0) -> np.ndarray:
    """30 returns on each post, 0.5-2.5 m up, new heights every sweep (a repeated sweep is stuck);
    the posts moved by `dx` along x (a sweep from when the car was `dx` behind: an old sweep with a
    new stamp) or turned by `yaw_deg` about base_link (a LiDAR knocked on its mount)."""
    rng = np.random.default_rng(sweep)
    angles = POST_ANGLES + np.radians(yaw_deg)
    posts = []
    for a, r in zip(angles, POST_RANGES):
        z = rng.uniform(0.5, 2.5, 30)
        x, y = np.full(30, r * np.cos(a) + dx), np.full(30, r * np.sin(a))
        posts.append(np.stack([x, y, z, np.ones(30)], 1))
    return np.concatenate(posts).astype(np.float32)


def _radar(per_sweep: int, sweep: int, scale: float = 1.0) -> np.ndarray:
    """`per_sweep` returns on the posts (a different choice of posts each sweep), ranges x `scale`."""
    pick = (np.arange(per_sweep) * 7 + sweep * 3) % len(POST_ANGLES)
    a, r = POST_ANGLES[pick], POST_RANGES[pick] * scale
    points = np.zeros((per_sweep, 6), np.float32)
    points[:, 0], points[:, 1], points[:, 2] = r * np.cos(a), r * np.sin(a), 1.0
    return points


def _fits(
    per_sweep: dict[str, int],
    sweeps: int,
    config: SensorCheckConfig,
    scaled: range = range(0),
    scaled_radars: tuple[str, ...] = ("radar_a",),
    feature: str = "range_fit",
    lidar_dx: float = 0.0,
    lidar_yaw_deg: float = 0.0,
):
    """Each radar's and the LiDAR's `feature` per sweep (None: not judged), the ranges of
    `scaled_radars` x 0.9 in `scaled`, and the LiDAR's posts moved by `lidar_dx` along x and turned
    by `lidar_yaw_deg` in `scaled`."""
    checks = SensorChecks(config)
    out: dict[str, list[float | None]] = {name: [] for name in (*RADARS, "lidar")}
    for i in range(sweeps):
        stamp = 10.0 + 0.1 * i
        points = {"lidar": _lidar(i, lidar_dx, lidar_yaw_deg) if i in scaled else _lidar(i)}
        for name in RADARS:
            points[name] = _radar(per_sweep[name], i, 0.9 if (name in scaled_radars and i in scaled) else 1.0)
        frame = SensorFrame(
            stamp=stamp,
            cameras=[],
            sensor_points=points,
            sensor_modality={"lidar": "lidar", **{name: "radar" for name in RADARS}},
            sensor_stamps={name: stamp for name in points},
        )
        verdicts = checks.update(frame)
        for name in out:
            out[name].append(verdicts[name].features.get(feature))
    return out


def test_a_sparse_radar_is_judged_once_its_pool_holds_enough_returns():
    config = SensorCheckConfig()
    fits = _fits({"radar_a": 4, "radar_b": 20, "radar_c": 20, "radar_d": 20}, 20, config)
    # 20 returns a sweep: the newest agreement_frames (5) sweeps hold 100 >= 50
    assert fits["radar_b"].index(0.0) == config.agreement_frames - 1
    # 4 a sweep: 50 returns after 13 sweeps, pooled from then on
    first = next(i for i, fit in enumerate(fits["radar_a"]) if fit is not None)
    assert first == int(np.ceil(config.agreement_min_returns / 4)) - 1
    assert all(fit == 0.0 for fit in fits["radar_a"][first:])  # calibrated: the identity fits best


def test_a_radar_sparser_than_the_longest_pool_is_never_judged():
    fits = _fits({"radar_a": 3, "radar_b": 20, "radar_c": 20, "radar_d": 20}, 30, SensorCheckConfig())
    assert fits["radar_a"] == [None] * 30  # 15 sweeps x 3 = 45 < 50


def test_wrong_ranges_over_a_few_sweeps_of_a_sparse_radar_are_diluted_and_kept_ones_are_not():
    config = SensorCheckConfig()
    per_sweep = {"radar_a": 5, "radar_b": 20, "radar_c": 20, "radar_d": 20}
    brief = _fits(per_sweep, 40, config, scaled=range(20, 25))
    kept = _fits(per_sweep, 40, config, scaled=range(20, 40))
    # wrong for 5 sweeps: the 5-sweep pool of old (20 returns enough) saw nothing else; the pool of
    # 50 returns (10 sweeps) holds as many right sweeps as wrong ones
    old = dataclasses.replace(config, agreement_min_returns=20, agreement_max_frames=5)
    brief_old = _fits(per_sweep, 40, old, scaled=range(20, 25))
    assert max(f for f in brief_old["radar_a"][20:] if f is not None) >= 0.5
    assert max(f for f in brief["radar_a"][20:] if f is not None) <= 0.3
    assert min(f for f in kept["radar_a"][32:] if f is not None) >= 0.5


def test_a_range_correction_every_radar_needs_is_the_lidars_and_one_radar_needs_is_its_own():
    """The majority decides, with no fault model: the LiDAR's objects moved (an old sweep with a new
    stamp, a shifted mount) make every radar need the same correction, which goes to the LiDAR's
    `range_fit` (the radars' median) and not to any radar's (its own beyond that median)."""
    config = SensorCheckConfig()
    per_sweep = dict.fromkeys(RADARS, 20)
    clean = _fits(per_sweep, 30, config)
    one = _fits(per_sweep, 30, config, scaled=range(10, 30))
    every = _fits(per_sweep, 30, config, scaled=range(10, 30), scaled_radars=RADARS)
    # pooled once 5 sweeps of 20 returns are in; calibrated: the identity fits best
    assert all(fit == 0.0 for name in clean for fit in clean[name][config.agreement_frames - 1 :])
    # a pool entirely of scaled sweeps (from sweep 14): the scale puts most returns back on posts
    assert min(one["radar_a"][14:]) >= 0.5
    assert max(one["lidar"][14:]) == 0.0  # the median of a, b, c, d: one radar does not move it
    assert min(every["lidar"][14:]) >= 0.5
    assert all(abs(every[name][i]) <= 0.05 for name in RADARS for i in range(14, 30))


@pytest.mark.parametrize("dx", [1.0, -2.0, 3.0])
def test_a_lidar_whose_objects_moved_along_the_car_fits_every_radar_under_that_shift(dx):
    """An old LiDAR sweep with a new stamp (or its stamps late against the radars', or a mount moved
    along the car) puts the LiDAR's objects where they were `dx` ago: every radar's returns, front,
    side and back, fall back on them under the one shift along x, so the LiDAR's `shift_fit` (the
    pooled fit under the best shift beyond the uncorrected fit) is the share of returns that shift
    recovers. Oracle: under the exact shift every return is on its post (fit 1), so `shift_fit` = 1 -
    the uncorrected fit, which the moved posts leave low."""
    config = SensorCheckConfig()
    per_sweep = dict.fromkeys(RADARS, 20)
    clean = _fits(per_sweep, 30, config, feature="shift_fit")
    kw = {"scaled": range(10, 30), "scaled_radars": (), "lidar_dx": dx}
    moved = _fits(per_sweep, 30, config, feature="shift_fit", **kw)
    uncorrected = _fits(per_sweep, 30, config, feature="radar_agreement", **kw)
    assert all(fit == 0.0 for fit in clean["lidar"][config.agreement_frames - 1 :])
    # each radar sweep is counted against the LiDAR sweep of its frame: from sweep 14 the pool of 5
    # holds only counts against moved ones
    for i in range(14, 30):
        assert moved["lidar"][i] == pytest.approx(1.0 - uncorrected["lidar"][i])
        assert moved["lidar"][i] >= 0.5


def test_a_lidar_turned_on_its_mount_needs_a_yaw_and_no_shift():
    """A rotation moves objects on opposite sides of the car opposite ways along x: no one shift
    fits them, the yaw does."""
    config = SensorCheckConfig()
    per_sweep = dict.fromkeys(RADARS, 20)
    kw = {"scaled": range(10, 30), "scaled_radars": (), "lidar_yaw_deg": 3.0}
    yaw = _fits(per_sweep, 30, config, feature="yaw_fit", **kw)
    shift = _fits(per_sweep, 30, config, feature="shift_fit", **kw)
    assert min(yaw["lidar"][14:]) >= 0.5
    assert max(shift["lidar"][14:]) <= 0.5 * min(yaw["lidar"][14:])


def test_config_refuses_a_longest_pool_shorter_than_the_shortest():
    with pytest.raises(ValueError, match="agreement_max_frames"):
        dataclasses.replace(SensorCheckConfig(), agreement_frames=6, agreement_max_frames=5)
