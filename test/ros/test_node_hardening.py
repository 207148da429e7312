"""The live node under bad input, over the real middleware (test/support/node_harness.py): no message kind
or stamp can stop it or blind it for good, every bad message is counted and named, outputs carry
their input's stamp exactly, and a monitor that sees messages but builds no frame says so."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy is not importable: run `make test`")
pytest.importorskip("tf2_msgs", reason="tf2_msgs is not built: run `make bootstrap`")

from support.node_harness import MonitorHarness, SensorRig, status_by_hardware_id, values_of
from support.tiny import tiny_model

from ros2_lmd.messages.types import as_int
from ros2_lmd.sensors.frame import LIDAR_FIELDS

MONITOR = "lmd_monitor"


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> str:
    return tiny_model(tmp_path_factory.mktemp("model"))


def _monitor_values(harness: MonitorHarness) -> tuple[int, dict[str, str], str]:
    statuses = status_by_hardware_id(harness.diagnostics_after(time.monotonic()))
    status = statuses[MONITOR]
    return as_int(status.level), values_of(status), status.message


def _set_stamp(messages: dict, sec: int, nanosec: int) -> dict:
    for message in messages.values():
        message.header.stamp.sec, message.header.stamp.nanosec = sec, nanosec
    return messages


def test_outputs_carry_the_input_stamp_to_the_nanosecond(model_path):
    rig = SensorRig(cameras=("cam_front",), radars=("radar_front",))
    with MonitorHarness(rig, {"model": model_path}) as harness:
        harness.publish_tf_static()
        stamps = [(1_700_000_000 + i, 123_456_789 + i * 7) for i in range(3)]
        summaries = [harness.run_frame(_set_stamp(rig.frame(sec + ns * 1e-9), sec, ns)) for sec, ns in stamps]
        assert [(s.header.stamp.sec, s.header.stamp.nanosec) for s in summaries] == stamps
        for key in ("bev/fused", "bev/lidar", "bev_image", "markers"):
            harness.wait_for(lambda key=key: harness.count(key) >= 3, key)
            message = harness.messages(key)[-1]
            header = message.markers[0].header if key == "markers" else message.header
            assert (header.stamp.sec, header.stamp.nanosec) == stamps[-1], key


def test_a_nan_sweep_then_a_malformed_one_on_the_same_topic_does_not_stop_the_node(model_path):
    # The organised sweep is logged at INFO, the malformed one at WARN: one call site at two
    # severities made rclpy raise inside the callback and the executor died.
    rig = SensorRig(cameras=("cam_front",), radars=("radar_front",))
    with MonitorHarness(rig, {"model": model_path}) as harness:
        harness.publish_tf_static()
        points = np.random.default_rng(2).uniform(-5, 5, (40, len(LIDAR_FIELDS))).astype(np.float32)
        points[:4] = np.nan
        organised = rig.frame(1000.0)
        organised["/lidar_top"] = rig.lidar_cloud(1000.0, points)
        organised["/lidar_top"].is_dense = False
        assert harness.run_frame(organised) is not None
        broken = rig.frame(1000.1)
        broken["/lidar_top"].data = broken["/lidar_top"].data[:-5]
        assert harness.run_frame(broken) is None  # its frame is dropped, with a reason
        assert harness.node.drop_counts() == {"key sensor message malformed": 1}
        assert harness.run_frame(rig.frame(1000.2)) is not None  # and the node goes on


def _malformed_of_every_kind(rig: SensorRig, stamp: float) -> list[tuple[str, object]]:
    """(topic, message) pairs, each bad in a different way, for every message kind the node reads."""
    bad = []
    image = rig.image("cam_front", stamp)
    image.data = b"\x89PNG\r\n\x1a\n" + bytes(40)  # a PNG signature and garbage
    bad.append((rig.image_topic("cam_front"), image))
    image = rig.image("cam_front", stamp)
    image.data = b""
    bad.append((rig.image_topic("cam_front"), image))
    info = rig.camera_info("cam_front", stamp)
    info.k = np.full(9, np.nan)
    bad.append((rig.info_topic("cam_front"), info))
    info = rig.camera_info("cam_front", stamp)
    info.width = 0
    bad.append((rig.info_topic("cam_front"), info))
    for mutate in ("fields", "row_step", "stamp_zero", "stamp_future", "datatype"):
        cloud = rig.radar_cloud("radar_front", stamp)
        if mutate == "fields":
            cloud.fields = cloud.fields[:2]
        elif mutate == "row_step":
            cloud.row_step += 3
        elif mutate == "stamp_zero":
            cloud.header.stamp.sec, cloud.header.stamp.nanosec = 0, 0
        elif mutate == "stamp_future":
            cloud.header.stamp.sec += 1_000_000
        else:
            cloud.fields[0].datatype = 42
        bad.append(("/radar_front", cloud))
    return bad


def test_fuzzed_messages_of_every_kind_are_counted_and_good_data_flows_again(model_path):
    rig = SensorRig(cameras=("cam_front",), radars=("radar_front",), seed=5)
    with MonitorHarness(rig, {"model": model_path, "diagnostics_persistence": 2}) as harness:
        harness.publish_tf_static()
        assert all(s is not None for s in harness.run_frames(3, start_stamp=1000.0))
        bad = _malformed_of_every_kind(rig, 1000.3)
        health = harness.node.sensor_health
        errors_before = {name: _errors(harness, name) for name in ("cam_front", "radar_front")}
        for topic, message in bad:
            harness.publish({topic: message})
        harness.wait_for(
            lambda: (
                _errors(harness, "cam_front") + _errors(harness, "radar_front")
                >= len(bad) + sum(errors_before.values())
            ),
            "every bad message counted",
            guard_s=30,
        )
        assert _errors(harness, "cam_front") - errors_before["cam_front"] == 4
        assert _errors(harness, "radar_front") - errors_before["radar_front"] == 5
        level, values, _ = _monitor_values(harness)
        assert int(values["malformed_messages"]) == len(bad)
        assert int(values["stamps_rejected"]) == 2
        # good data again: processed, all sensors present
        summaries = harness.run_frames(3, start_stamp=1000.4)
        assert all(s is not None and list(s.present) == [True, True, True] for s in summaries)
        assert health.messages("lidar_top") == 6


def _errors(harness: MonitorHarness, sensor: str) -> int:
    statuses = harness.node.sensor_health.statuses(time.monotonic())
    return int(next(r.values["errors"] for r in statuses if r.hardware_id == sensor))


def test_a_monitor_that_builds_no_frame_while_sensors_publish_reports_error(model_path):
    rig = SensorRig(cameras=("cam_front",), radars=("radar_front",))
    params = {"model": model_path, "blind_timeout_s": 0.3, "key_fallback": "none"}
    with MonitorHarness(rig, params) as harness:
        harness.publish_tf_static()
        assert harness.run_frame(rig.frame(1000.0)) is not None
        # every LiDAR sweep truncated: no frame can be built. The sweeps keep coming while the
        # published /diagnostics are read (a monitor whose inputs stopped is not blind but quiet)
        level, message = 0, ""
        for i in range(1, 80):
            messages = rig.frame(1000.0 + i * 0.1)
            messages["/lidar_top"].data = messages["/lidar_top"].data[:-5]
            harness.publish(messages)
            time.sleep(0.1)
            if i >= 4:  # blind_timeout_s 0.3 has passed since the last processed frame
                statuses = status_by_hardware_id(harness.received["diagnostics"][-1][1])
                level, message = as_int(statuses[MONITOR].level), statuses[MONITOR].message
                if level == 2:
                    break
        assert level == 2 and message.startswith("blind: sensors publish but no frame was processed"), message
        assert "key sensor message malformed" in message
        assert harness.run_frame(rig.frame(1001.0)) is not None
        level, _, message = _monitor_values(harness)
        assert level == 0, message


def test_a_lasting_backwards_jump_of_every_stamp_restarts_time_instead_of_blinding(model_path):
    rig = SensorRig(cameras=("cam_front",), radars=("radar_front",))
    with MonitorHarness(rig, {"model": model_path, "stamp_tolerance_s": 1.0}) as harness:
        harness.publish_tf_static()
        assert all(s is not None for s in harness.run_frames(4, start_stamp=1000.0))
        # the bag is played again from its start: every stamp 10 s back, for good
        later = harness.run_frames(8, start_stamp=990.4)
        assert sum(s is not None for s in later) >= 5  # a few frames cross the jump, then all pass
        assert all(s is not None for s in later[-3:])
        _, values, _ = _monitor_values(harness)
        assert values["time_jumps"] == "1"
        moved = float(re.search(r"moved (-[\d.]+) s", values["last_time_jump"]).group(1))
        assert -10.5 < moved < -8.0  # 10 s back, less the wall time that passed meanwhile


def test_unknown_parameters_are_refused_on_every_path(tmp_path):
    from rclpy.context import Context
    from rclpy.parameter import Parameter

    from ros2_lmd.monitor.params import ParameterError
    from ros2_lmd.ros.node import MonitorNode

    context = Context()
    rclpy.init(context=context, domain_id=random.randint(100, 199))
    try:
        with pytest.raises(ParameterError, match="qeue_depth: unknown parameter"):
            MonitorNode(context=context, parameter_overrides=[Parameter("qeue_depth", value=2)])
    finally:
        rclpy.shutdown(context=context)
    # `--ros-args -p` and a second `--ros-args --params-file` (what the launch file passes)
    extra = tmp_path / "extra.yaml"
    extra.write_text("/**:\n  ros__parameters:\n    sync_tolerance: 0.1\n")
    for ros_args, name in (
        (["-p", "qeue_depth:=2"], "qeue_depth"),
        (["--params-file", str(extra)], "sync_tolerance"),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "ros2_lmd.cli", "monitor", "--ros-args", *ros_args],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "ROS_DOMAIN_ID": str(random.randint(100, 199))},
        )
        assert result.returncode == 2, result.stderr
        assert f"{name}: unknown parameter" in result.stderr and "Traceback" not in result.stderr
