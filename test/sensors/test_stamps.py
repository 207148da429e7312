"""Time handling: exact integer-nanosecond stamps, the plausibility of each stamp (StampGuard), time
jumps (bag loop, clock reset) restarting the time sync with a new epoch, and the estimate of
messages lost before the monitor, through the Ingest that the node and `analyze` share."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.properties import examples

from ros2_lmd.messages.types import header_msg_ns, rosbags_types, time_msg, time_msg_ns
from ros2_lmd.monitor.ingest import Ingest
from ros2_lmd.monitor.params import MonitorParams
from ros2_lmd.sensors.frame import LIDAR_FIELDS, RADAR_FIELDS, SensorFrame
from ros2_lmd.sensors.pointcloud2 import make_pointcloud2
from ros2_lmd.sensors.stamps import LossEstimator, StampGuard, seconds_to_ns, stamp_ns
from ros2_lmd.sensors.sync import DroppedFrame
from ros2_lmd.sensors.tf import make_tf_message

TYPES = rosbags_types()
RADARS = ("radar_front", "radar_back_left")


# --- Exact stamps ---------------------------------------------------------------------------------


@settings(max_examples=examples(300), deadline=None)
@given(sec=st.integers(0, 2**31 - 1), nanosec=st.integers(0, 999_999_999))
def test_integer_stamps_survive_every_conversion_exactly(sec, nanosec):
    ns = sec * 1_000_000_000 + nanosec
    message_time = time_msg_ns(TYPES, ns)
    assert (message_time.sec, message_time.nanosec) == (sec, nanosec)
    assert stamp_ns(header_msg_ns(TYPES, ns, "base_link")) == ns
    frame = SensorFrame(stamp=ns / 1e9, stamp_ns=ns)
    assert frame.stamp_ns == ns  # carried as given, not rebuilt from float seconds


def test_seconds_to_ns_splits_before_scaling():
    # 1.7e9 s + 123456789 ns: stamp * 1e9 in float64 is off by tens of ns at this epoch.
    seconds = 1_700_000_000 + 0.123456789
    assert abs(seconds_to_ns(seconds) - 1_700_000_000_123_456_789) <= 120  # float64 spacing here
    assert seconds_to_ns(12.5) == 12_500_000_000
    t = time_msg(TYPES, 12.5)
    assert (t.sec, t.nanosec) == (12, 500_000_000)
    with pytest.raises(ValueError, match="finite"):
        seconds_to_ns(float("nan"))


# --- StampGuard ----------------------------------------------------------------------------------


def _feed(guard: StampGuard, messages):
    """messages: (sensor, stamp, reference) -> verdicts."""
    return [guard.check(sensor, stamp, reference) for sensor, stamp, reference in messages]


def _steady(t0: float, n: int, offset: float = -100.0, sensors=("lidar", "radar", "cam"), period=0.1):
    """n rounds of every sensor, stamped `offset` from the reference (a replay without sim time)."""
    return [(s, 1000.0 + t0 + i * period + offset, t0 + i * period + 0.01) for i in range(n) for s in sensors]


def test_one_wild_stamp_is_rejected_and_named_and_the_rest_goes_on():
    guard = StampGuard(tolerance_s=2.0)
    assert all(not v.reason for v in _feed(guard, _steady(0.0, 5)))
    for wild in (3600.0, 1e6, -50.0):
        verdict = guard.check("lidar", 1000.5 - 100.0 + wild, 0.51)
        assert "s off the other sensors' time" in verdict.reason or "not a time" in verdict.reason
        assert not verdict.time_jump
    assert "not a time" in guard.check("radar", 0.0, 0.52).reason  # an unset clock
    assert all(not v.reason for v in _feed(guard, _steady(0.6, 5)))  # and nothing is blinded
    assert guard.rejected == 4 and guard.time_jumps == 0


def test_a_sensor_cannot_leap_alone_even_within_the_others_tolerance():
    guard = StampGuard(tolerance_s=0.3)
    for i in range(5):  # the radar keeps a steady 0.25 s lag: fine
        guard.check("lidar", 1000.0 + i * 0.1, i * 0.1)
        guard.check("cam", 1000.0 + i * 0.1, i * 0.1)
        assert not guard.check("radar", 1000.0 + i * 0.1 - 0.25, i * 0.1).reason
    # then leads by 0.25 s: within 0.3 s of the others, but a 0.5 s leap from its own stamps
    verdict = guard.check("radar", 1000.5 + 0.25, 0.5)
    assert "leaps +0.500 s from this sensor's last stamp" in verdict.reason


@pytest.mark.parametrize("rate", [0.5, 1.0, 3.0])
def test_a_sensor_back_from_a_long_silence_is_accepted_at_any_playback_rate(rate):
    # a bag replayed at `rate`: stamps advance `rate` times as fast as the reference clock
    guard = StampGuard(tolerance_s=2.0)
    for i in range(150):  # 15 s of drive; the LiDAR is silent from 3 s to 11 s
        stamp = 1000.0 + i * 0.1
        reference = i * 0.1 / rate
        for sensor in ("cam", "radar"):
            assert not guard.check(sensor, stamp, reference).reason
        if not 30 <= i < 110:
            assert not guard.check("lidar", stamp, reference).reason, (rate, i)


def test_a_lasting_jump_of_every_sensor_is_a_time_jump_not_a_blind_monitor():
    guard = StampGuard(tolerance_s=2.0)
    _feed(guard, _steady(0.0, 10))
    # The bag loops: stamps go back 9 s, the reference goes on.
    verdicts = _feed(guard, _steady(1.0, 10, offset=-109.0))
    jumps = [v.time_jump for v in verdicts if v.time_jump]
    assert len(jumps) == 1 and "moved -9.000 s" in jumps[0]
    first_jump = next(i for i, v in enumerate(verdicts) if v.time_jump)
    assert first_jump < 10  # within a few messages
    assert all(not v.reason for v in verdicts[first_jump:])  # everything after it is accepted
    assert guard.time_jumps == 1


def test_the_reference_clock_going_back_is_a_time_jump():
    guard = StampGuard(tolerance_s=2.0)
    _feed(guard, _steady(100.0, 5, offset=0.0))
    # sim time restarts: stamps and the clock go back together
    verdicts = _feed(guard, _steady(0.0, 5, offset=0.0))
    assert verdicts[0].time_jump.startswith("the clock went back")
    assert all(not v.reason for v in verdicts)


@settings(max_examples=examples(200), deadline=None)
@given(
    offset=st.floats(-1e9, 1e9),
    rate=st.floats(0.25, 4.0),
    jitter=st.lists(st.floats(-0.05, 0.05), min_size=60, max_size=60),
)
def test_a_steady_stream_at_any_epoch_and_playback_rate_is_never_rejected(offset, rate, jitter):
    guard = StampGuard(tolerance_s=2.0)
    for i, j in enumerate(jitter):
        sensor = ("lidar", "radar", "cam")[i % 3]
        reference = i * 0.1 / 3
        verdict = guard.check(sensor, 1.0 + abs(offset) + reference * rate + j, reference)
        assert verdict == verdict.__class__(), (i, verdict)


# --- LossEstimator -------------------------------------------------------------------------------


def test_losses_are_counted_from_the_gaps_in_a_sensors_own_stamps():
    losses = LossEstimator()
    stamps = [i * 0.1 for i in range(40)]
    kept = [t for i, t in enumerate(stamps) if i < 10 or i % 3 == 0]  # later, 2 of every 3 lost
    for t in kept:
        losses.add("lidar_top", t)
    assert losses.received["lidar_top"] == len(kept)
    assert losses.lost["lidar_top"] == len(stamps) - len(kept) - (39 - kept[-1] * 10 > 0.5)


def test_out_of_order_and_repeated_stamps_are_not_losses():
    losses = LossEstimator()
    for t in (0.0, 0.1, 0.2, 0.4, 0.3, 0.5, 0.5, 0.6):
        losses.add("radar_front", t)
    assert losses.lost["radar_front"] == 0 and losses.received["radar_front"] == 8


# --- Through the Ingest --------------------------------------------------------------------------


def _params() -> MonitorParams:
    return MonitorParams(
        modalities=("radar", "lidar"),
        radar_topics=tuple(f"/{r}" for r in RADARS),
        key_fallback="none",
        stamp_tolerance_s=1.0,
    )


def _ingest() -> Ingest:
    ingest = Ingest(_params(), ("radar", "lidar"))
    entries = [("base_link", name, np.eye(4)) for name in (*RADARS, "lidar_top")]
    ingest.on_message("/tf_static", make_tf_message(TYPES, time_msg(TYPES, 0.0), entries))
    return ingest


def _cloud(frame_id: str, ns: int, fields) -> object:
    points = np.random.default_rng(ns % 1000).normal(size=(8, len(fields))).astype(np.float32)
    return make_pointcloud2(TYPES, header_msg_ns(TYPES, ns, frame_id), points, fields)


def _round(ingest: Ingest, ns: int, reference: float, lidar_ns: int | None = None):
    """One 10 Hz round: the radars, then the LiDAR (the key sensor); returns the results."""
    results = []
    for radar in RADARS:
        ingest.on_message(f"/{radar}", _cloud(radar, ns, RADAR_FIELDS), reference)
    outcome = ingest.on_message("/lidar_top", _cloud("lidar_top", lidar_ns or ns, LIDAR_FIELDS), reference)
    results += ingest.pop_ready()
    return outcome, results


T0 = 1_700_000_000_123_456_789  # ns: an odd stamp at today's epoch


def test_frames_carry_the_key_stamp_exactly():
    ingest = _ingest()
    frames = []
    for i in range(5):
        frames += _round(ingest, T0 + i * 100_000_000, 50.0 + i * 0.1)[1]
    frames += ingest.flush()
    assert [f.stamp_ns for f in frames] == [T0 + i * 100_000_000 for i in range(5)]


def test_one_future_lidar_stamp_costs_one_frame_not_the_rest():
    ingest = _ingest()
    results = []
    for i in range(12):
        lidar_ns = T0 + i * 100_000_000 + (3600 * 10**9 if i == 4 else 0)  # +1 h, once
        outcome, got = _round(ingest, T0 + i * 100_000_000, 50.0 + i * 0.1, lidar_ns)
        results += got
        if i == 4:
            assert (
                outcome.error.startswith("implausible stamp")
                and "off the other sensors' time" in outcome.error
            )
    results += ingest.flush()
    frames = [r for r in results if isinstance(r, SensorFrame)]
    dropped = [r for r in results if isinstance(r, DroppedFrame)]
    assert len(frames) == 11 and len(dropped) == 1 and dropped[0].malformed
    assert "implausible stamp" in dropped[0].reason
    assert all(f.present["radar"] and f.present["lidar"] for f in frames)  # no radar lost to a poisoned sync
    assert ingest.stamps.rejected == 1


def test_a_lasting_backwards_jump_restarts_the_time_sync_with_a_new_epoch():
    ingest = _ingest()
    results = []
    for i in range(25):
        shift = -10 * 10**9 if i >= 10 else 0  # the bag loops: every stamp 10 s back, for good
        outcome, got = _round(ingest, T0 + i * 100_000_000 + shift, 50.0 + i * 0.1)
        results += got
    results += ingest.flush()
    frames = [r for r in results if isinstance(r, SensorFrame)]
    assert ingest.time_epoch == 1
    late = [f for f in frames if f.time_epoch == 1]
    assert len(late) >= 12  # the monitor sees again after a few messages
    assert all(f.present["radar"] and f.present["lidar"] for f in late)
    # every key instant is accounted for: processed or dropped with a reason
    assert len(results) == 25


def test_lost_sweeps_are_estimated_per_sensor():
    ingest = _ingest()
    for i in range(30):
        ns = T0 + i * 100_000_000
        for radar in RADARS:
            ingest.on_message(f"/{radar}", _cloud(radar, ns, RADAR_FIELDS), 50.0 + i * 0.1)
        if i < 10 or i % 2 == 0:  # later, every other sweep lost on the way
            ingest.on_message("/lidar_top", _cloud("lidar_top", ns, LIDAR_FIELDS), 50.0 + i * 0.1)
    received, lost = ingest.sensor_messages()["lidar_top"]
    assert (received, lost) == (20, 10 - 1)  # the last loss (29) is not yet followed by a sweep
    assert ingest.sensor_messages()["radar_front"] == (30, 0)
