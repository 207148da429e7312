"""OrderedRunner (compute in parallel, conclude in queue order) and the CPU plan, without ROS or
torch: the live node and `ros2-lmd analyze` both stand on these properties."""

from __future__ import annotations

import random
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.properties import examples

from ros2_lmd.monitor import resources
from ros2_lmd.monitor.resources import inference_plan
from ros2_lmd.monitor.runner import OrderedRunner
from ros2_lmd.monitor.throttle import Throttle


def _jittered_square(seed: int):
    rng = random.Random(seed)
    lock = threading.Lock()

    def compute(items: list[int]) -> list[int]:
        with lock:
            pause = rng.uniform(0, 0.004)
        time.sleep(pause)  # later items often finish first
        return [i * i for i in items]

    return compute


@settings(max_examples=examples(25), deadline=None)
@given(
    seed=st.integers(0, 10_000), workers=st.integers(1, 4), batch=st.integers(1, 5), count=st.integers(0, 40)
)
def test_wait_mode_concludes_every_item_once_in_queue_order(seed, workers, batch, count):
    concluded = []
    batches = []

    def compute(items):
        batches.append(list(items))
        return _jittered_square(seed)(items)

    with OrderedRunner(
        compute,
        lambda item, result, error: concluded.append((item, result, error)),
        workers=workers,
        batch=batch,
        when_full="wait",
    ) as runner:
        for i in range(count):
            runner.put(i)
        assert runner.join(timeout=30)
        assert runner.pending() == 0
    assert concluded == [(i, i * i, None) for i in range(count)]
    # every batch is a run of consecutive items, at most `batch` long
    assert all(b == list(range(b[0], b[0] + len(b))) and 1 <= len(b) <= batch for b in batches)


def test_wait_mode_waits_for_a_full_batch_until_flushed():
    seen = []
    with OrderedRunner(
        lambda items: seen.append(list(items)) or items, lambda *_: None, batch=3, when_full="wait"
    ) as runner:
        runner.put(1)
        runner.put(2)
        time.sleep(0.05)
        assert seen == []  # two of three: still waiting
        runner.flush()
        assert runner.join(timeout=10)
        assert seen == [[1, 2]]


def test_drop_oldest_hands_back_the_superseded_item_and_keeps_the_newest():
    gate = threading.Event()
    concluded = []

    def compute(items):
        gate.wait(10)
        return items

    with OrderedRunner(compute, lambda item, *_: concluded.append(item), depth=2) as runner:
        assert runner.put(0) is None
        deadline = time.monotonic() + 10
        while runner.pending() != 1 or runner._items:  # item 0 taken by the worker
            assert time.monotonic() < deadline
            time.sleep(0.001)
        assert [runner.put(i) for i in (1, 2, 3, 4)] == [None, None, 1, 2]
        assert runner.pending() == 3  # 0 in compute, 3 and 4 queued
        gate.set()
        assert runner.join(timeout=10)
    assert concluded == [0, 3, 4]


def test_close_with_discard_returns_what_was_still_queued():
    gate = threading.Event()
    concluded = []
    runner = OrderedRunner(
        lambda items: gate.wait(10) and items, lambda item, *_: concluded.append(item), depth=10
    )
    for i in range(4):
        runner.put(i)
    deadline = time.monotonic() + 10
    while len(runner._items) != 3:
        assert time.monotonic() < deadline
        time.sleep(0.001)
    gate.set()
    assert runner.close(discard=True) == [1, 2, 3]
    assert concluded == [0]  # the item already taken is always concluded
    assert runner.close() == []  # twice is fine
    with pytest.raises(RuntimeError, match="put after close"):
        runner.put(5)


def test_compute_failure_is_concluded_with_the_error_for_each_item_of_the_batch():
    concluded = []

    def compute(items):
        if 2 in items:
            raise ValueError("model exploded")
        return items

    with OrderedRunner(
        compute,
        lambda item, result, error: concluded.append((item, result, repr(error))),
        batch=2,
        when_full="wait",
    ) as runner:
        for i in range(4):
            runner.put(i)
    assert concluded == [
        (0, 0, "None"),
        (1, 1, "None"),
        (2, None, "ValueError('model exploded')"),
        (3, None, "ValueError('model exploded')"),
    ]


def test_a_failing_conclusion_goes_to_on_error_or_is_raised_by_join():
    def conclude(item, result, error):
        if item == 1:
            raise KeyError("publisher gone")

    reported = []
    with OrderedRunner(
        lambda items: items, conclude, depth=10, on_error=lambda item, e: reported.append(item)
    ) as r:
        for i in range(3):
            r.put(i)
        assert r.join(timeout=10)
    assert reported == [1]

    runner = OrderedRunner(lambda items: items, conclude, when_full="wait")
    for i in range(3):
        runner.put(i)
    with pytest.raises(KeyError, match="publisher gone"):
        runner.join(timeout=10)
    assert runner.close() == []  # the workers went on: nothing left


def test_bad_settings_are_refused_with_their_names():
    with pytest.raises(ValueError, match="when_full"):
        OrderedRunner(lambda i: i, lambda *_: None, when_full="block")
    with pytest.raises(ValueError, match="workers, batch, depth"):
        OrderedRunner(lambda i: i, lambda *_: None, workers=0)


@pytest.mark.parametrize(
    "cores, args, expected",
    [
        (2, dict(on_cpu=True, reserved_cores=1, prefer="latency"), (1, 1)),  # the node on 2 cores
        (8, dict(on_cpu=True, reserved_cores=1, prefer="latency"), (1, 7)),
        (8, dict(on_cpu=True, prefer="throughput"), (8, 1)),  # analyze
        (8, dict(on_cpu=True, workers=2, prefer="throughput"), (2, 4)),
        (8, dict(on_cpu=False, prefer="throughput"), (1, 8)),  # a GPU: one worker feeds it
        (1, dict(on_cpu=True, reserved_cores=1), (1, 1)),  # never below one thread
        (8, dict(on_cpu=True, workers=3, threads=5), (3, 5)),  # explicit settings win
    ],
)
def test_inference_plan(monkeypatch, cores, args, expected):
    monkeypatch.setattr(resources, "cpu_cores", lambda: cores)
    assert inference_plan(**args) == expected


def test_throttle_reports_once_per_period_with_the_count_held_back():
    throttle = Throttle(5.0)
    assert [throttle("/lidar_top", t) for t in (0.0, 1.0, 2.0)] == [0, None, None]
    assert throttle("/radar_front", 2.5) == 0  # keys are independent
    assert throttle("/lidar_top", 5.0) == 2
    assert throttle("/lidar_top", 6.0) is None
