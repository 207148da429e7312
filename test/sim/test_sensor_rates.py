"""Sensors at their own rates (`simulate --rig nuscenes`, issue #25): each sensor samples at its
modality's rate with a phase of its own, and a bag of such a drive has exactly those messages."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from support.bags import decoded, stamp_ns

from ros2_lmd.replay.simulate import simulate_to_bag
from ros2_lmd.sim import NUSCENES_RATES_HZ, default_rig, sensor_schedule


def test_each_sensor_samples_at_its_modalitys_rate_with_phases_spread_over_one_period():
    rig = default_rig()
    duration = 2.0
    schedule = sensor_schedule(rig.sensors, NUSCENES_RATES_HZ, duration)
    times = [t for t, _ in schedule]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert all(0.0 <= t < duration for t in times)
    by_sensor: dict[str, list[float]] = {}
    for t, sensors in schedule:
        for spec in sensors:
            by_sensor.setdefault(spec.name, []).append(t)
    assert set(by_sensor) == {s.name for s in rig.sensors}
    for modality, rate in NUSCENES_RATES_HZ.items():
        group = rig.of_modality(modality)
        phases = []
        for spec in group:
            stamps = np.array(by_sensor[spec.name])
            np.testing.assert_allclose(np.diff(stamps), 1.0 / rate, atol=2e-6)
            assert len(stamps) == int(np.ceil((duration - stamps[0]) * rate))
            phases.append(stamps[0])
        np.testing.assert_allclose(phases, np.arange(len(group)) / (len(group) * rate), atol=1e-6)


@pytest.mark.parametrize(
    "rates, words", [({"camera": 12.0}, "no rate for"), ({"camera": 0, "radar": 1, "lidar": 1}, "> 0 Hz")]
)
def test_bad_rates_are_refused_by_name(rates, words):
    with pytest.raises(ValueError, match=words):
        sensor_schedule(default_rig().sensors, rates, 1.0)


def test_a_nuscenes_rig_bag_has_each_sensor_at_its_own_rate(tmp_path):
    duration = 1.0
    simulate_to_bag(
        tmp_path / "drive", duration_s=duration, rig="nuscenes", camera_size=(64, 36), progress=False
    )
    counts = Counter()
    for topic, rate in [
        ("/cam_front/image_rect_compressed", 12.0),
        ("/radar_front_left", 13.0),
        ("/lidar_top", 20.0),
    ]:
        stamps = [stamp_ns(m) for _, m in decoded(tmp_path / "drive", topic)]
        counts[topic] = len(stamps)
        assert len(stamps) == pytest.approx(duration * rate, abs=1)
        np.testing.assert_allclose(np.diff(stamps) / 1e9, 1.0 / rate, atol=2e-6)
    assert counts["/lidar_top"] == 20


def test_rig_must_be_known(tmp_path):
    with pytest.raises(ValueError, match="rig must be one of uniform, nuscenes"):
        simulate_to_bag(tmp_path / "drive", duration_s=1.0, rig="waymo", progress=False)
