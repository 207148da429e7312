"""Pipeline state across a time jump: frames of a new time epoch (bag loop, clock reset) start the
alert history over, so the end of one pass is never compared with the start of the next."""

from __future__ import annotations

import dataclasses

from support.tiny import build_tiny_model

from ros2_lmd.monitor.pipeline import Pipeline
from ros2_lmd.sim import simulate_drive


def test_a_new_time_epoch_restarts_baselines_and_activity():
    model = build_tiny_model()
    pipeline = Pipeline(model)
    frames = [f.to_sensor_frame() for f in simulate_drive(1, duration_s=1.2)]
    reports = [pipeline.process(frame) for frame in frames[:10]]
    assert all(v is not None for v in reports[-1].activity.values())
    assert min(len(h.baseline) for h in pipeline.alerts.health.values()) >= 8
    engine_before = pipeline.alerts
    # the bag loops: the next frame is stamped before the last one, in the next epoch
    looped = dataclasses.replace(frames[10], stamp=frames[0].stamp, stamp_ns=None, time_epoch=1)
    report = pipeline.process(looped)
    assert pipeline.alerts is not engine_before and pipeline.time_epoch == 1
    assert all(v is None for v in report.activity.values())  # nothing to compare with yet
    assert all(len(h.baseline) == 0 for h in pipeline.alerts.health.values())
    assert report.stamp_ns == looped.stamp_ns
    # the same epoch again: history builds up as usual
    report = pipeline.process(
        dataclasses.replace(frames[11], stamp=frames[1].stamp, stamp_ns=None, time_epoch=1)
    )
    assert all(v is not None for v in report.activity.values())
