"""replay/levels.py without a model (#29): how often `standard` writes its pictures, and that their
number per hour is bounded by construction, whatever the alerts and incidents (the README's
worst case: 3600 / INCIDENT_PICTURE_PERIOD_S picture frames an hour)."""

from __future__ import annotations

import pytest

from ros2_lmd.replay.levels import INCIDENT_PICTURE_PERIOD_S, PICTURE_PERIOD_S, OutputLevel

LAYERS = ("camera", "radar", "lidar", "bias")
RATE_HZ = 20.0  # nuScenes' LiDAR sweep rate: the key sensor's


def _picture_stamps(level: OutputLevel, seconds: float, event, incident_open) -> list[float]:
    stamps = []
    for i in range(round(seconds * RATE_HZ)):
        stamp = 1000.0 + i / RATE_HZ
        skipped = level.skip_views(stamp, LAYERS, event(stamp), incident_open(stamp))
        if "bev_image" not in skipped:
            assert skipped == set()  # pictures: every view of the frame
            stamps.append(stamp)
        else:
            assert skipped >= {"bev_image", *(f"bev/{layer}" for layer in LAYERS)}
            assert "bev/fused" not in skipped and "markers" not in skipped
    return stamps


@pytest.mark.parametrize("incident_open", [True, False])
def test_an_hour_of_alerts_at_every_frame_is_bounded_by_the_cap(incident_open):
    stamps = _picture_stamps(OutputLevel("standard"), 3600, lambda s: True, lambda s: incident_open)
    assert len(stamps) <= 3600 / INCIDENT_PICTURE_PERIOD_S + 1
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert min(gaps) >= INCIDENT_PICTURE_PERIOD_S - 1e-6


def test_quiet_driving_every_picture_period_and_an_incident_every_second():
    quiet = _picture_stamps(OutputLevel("standard"), 60, lambda s: False, lambda s: False)
    assert len(quiet) == round(60 / PICTURE_PERIOD_S)
    incident = _picture_stamps(OutputLevel("standard"), 60, lambda s: False, lambda s: True)
    assert len(incident) == round(60 / INCIDENT_PICTURE_PERIOD_S)


def test_an_alert_gets_pictures_when_the_last_ones_are_a_cap_old():
    cap = INCIDENT_PICTURE_PERIOD_S
    alert_at = {1000.0, 1000 + cap, 1000 + 1.5 * cap, 1000 + 2.05 * cap}  # the third too close
    stamps = _picture_stamps(
        OutputLevel("standard"), 3 * cap, lambda s: round(s, 3) in alert_at, lambda s: False
    )
    assert stamps == [1000.0, 1000 + cap, 1000 + 2.05 * cap]


def test_a_stamp_before_the_last_pictures_starts_afresh():
    level = OutputLevel("standard")
    assert level.skip_views(50.0, LAYERS, False, False) == set()
    assert "bev_image" in level.skip_views(51.0, LAYERS, False, False)
    assert level.skip_views(10.0, LAYERS, False, False) == set()  # the bag looped


def test_summary_has_no_pictures_and_full_every_view():
    summary, full = OutputLevel("summary"), OutputLevel("full")
    for stamp in (0.0, 0.05, 10.0):
        assert {"bev_image", "bev/fused", "markers"} <= summary.skip_views(stamp, LAYERS, True, True)
        assert full.skip_views(stamp, LAYERS, False, False) == set()
    with pytest.raises(ValueError, match="outputs level"):
        OutputLevel("everything")
