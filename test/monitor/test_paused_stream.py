"""A paused playback (live: nothing comes for 5 s, then the bag goes on with its stamps where they
were) is one time jump in the monitor's status, not a malformed message per sensor (#29); a
single wild stamp amid steady traffic is still a rejected message."""

from __future__ import annotations

import numpy as np

from ros2_lmd.messages.types import header_msg_ns, rosbags_types, time_msg
from ros2_lmd.monitor.diagnostics import MonitorStatus
from ros2_lmd.monitor.ingest import Ingest
from ros2_lmd.monitor.params import MonitorParams
from ros2_lmd.sensors.frame import LIDAR_FIELDS, RADAR_FIELDS
from ros2_lmd.sensors.pointcloud2 import make_pointcloud2
from ros2_lmd.sensors.stamps import StampGuard
from ros2_lmd.sensors.tf import make_tf_message

TYPES = rosbags_types()
RADARS = ("radar_front", "radar_back_left", "radar_back_right", "radar_front_left")
T0 = 1_700_000_000_000_000_000
PAUSE_S = 5.0


def _run(pause_at: int, rounds: int = 40) -> tuple[Ingest, MonitorStatus]:
    params = MonitorParams(
        modalities=("radar", "lidar"), radar_topics=tuple(f"/{r}" for r in RADARS), key_fallback="none"
    )
    ingest = Ingest(params, ("radar", "lidar"))
    entries = [("base_link", name, np.eye(4)) for name in (*RADARS, "lidar_top")]
    ingest.on_message("/tf_static", make_tf_message(TYPES, time_msg(TYPES, 0.0), entries))
    status = MonitorStatus.for_run(params, ingest, ("radar", "lidar"))
    for i in range(rounds):
        ns = T0 + i * 100_000_000
        now = 50.0 + i * 0.1 + (PAUSE_S if i >= pause_at else 0.0)  # the clock went on, the stamps not
        for name, fields in [(r, RADAR_FIELDS) for r in RADARS] + [("lidar_top", LIDAR_FIELDS)]:
            points = np.random.default_rng(i).normal(size=(8, len(fields))).astype(np.float32)
            message = make_pointcloud2(TYPES, header_msg_ns(TYPES, ns, name), points, fields)
            status.on_message(ingest.on_message(f"/{name}", message, now), now)
        ingest.pop_ready()
    return ingest, status


def test_a_paused_playback_is_one_time_jump_and_no_malformed_message():
    ingest, status = _run(pause_at=20)
    intake = status.intake(ingest, 60.0)
    assert intake.malformed == 0 and intake.stamps_rejected == 0
    assert len(intake.time_jumps) == 1 and "nothing came for 5.100 s" in intake.time_jumps[0]
    assert "playback paused" in intake.time_jumps[0]
    assert ingest.time_epoch == 1


def test_without_a_pause_nothing_jumps():
    ingest, status = _run(pause_at=10**6)
    intake = status.intake(ingest, 60.0)
    assert intake.malformed == 0 and intake.time_jumps == [] and ingest.time_epoch == 0


def test_a_wild_stamp_amid_steady_traffic_is_still_rejected():
    guard = StampGuard(tolerance_s=2.0)
    for i in range(10):
        for sensor in ("lidar", "radar"):
            assert not guard.check(sensor, 1000.0 + i * 0.1, i * 0.1).reason
    verdict = guard.check("radar", 1000.0 + 1.0 - 5.0, 1.0)  # 5 s behind, no silence before it
    assert "off the other sensors' time" in verdict.reason and not verdict.time_jump
