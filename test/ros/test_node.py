"""The monitor node over the real middleware, in this process (test/support/node_harness.py): a probe node
publishes hand-made synchronised frames of a nuScenes-like rig (6 CompressedImage + CameraInfo, 5
radar PointCloud2, 1 LiDAR PointCloud2, /tf_static) and every output must arrive on the configured
grid; malformed messages must be named (topic and reason) in /diagnostics while the node goes on.
A random ROS_DOMAIN_ID per harness keeps concurrent runs apart."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy is not importable: run `make test`")
pytest.importorskip("tf2_msgs", reason="tf2_msgs is not built: run `make bootstrap`")

from support.node_harness import (  # noqa: E402
    HANG_GUARD_S,
    OUTPUT_TYPES,
    MonitorHarness,
    SensorRig,
    status_by_hardware_id,
    values_of,
)
from support.tiny import tiny_model  # noqa: E402

from ros2_lmd.messages.types import as_int  # noqa: E402
from ros2_lmd.sensors.frame import LIDAR_FIELDS  # noqa: E402

NX, NY, RES, X_MIN, Y_MIN = 32, 28, 0.5, -8.0, -8.0  # node_harness.TINY_GRID


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> str:
    return tiny_model(tmp_path_factory.mktemp("model"))


def test_every_output_is_published_on_the_configured_grid(model_path):
    rig = SensorRig()
    with MonitorHarness(
        rig, {"model": model_path, "bev_image_scale": 2, "incident_open_frames": 1}
    ) as harness:
        harness.publish_tf_static()
        summaries = harness.run_frames(3)
        # A frame without radar: SENSOR_MISSING, so an AlertArray must follow.
        no_radar = {t: m for t, m in rig.frame(1000.3).items() if not t.startswith("/radar")}
        summaries.append(harness.run_frame(no_radar))
        assert all(s is not None for s in summaries)
        assert [s.frame_index for s in summaries] == [0, 1, 2, 3]
        assert [s.frames_processed for s in summaries] == [1, 2, 3, 4]
        assert [s.frames_dropped for s in summaries] == [0, 0, 0, 0]
        assert [list(s.present) for s in summaries] == [[True] * 3] * 3 + [[True, False, True]]
        assert [round(s.header.stamp.sec + s.header.stamp.nanosec * 1e-9, 6) for s in summaries] == [
            1000.0,
            1000.1,
            1000.2,
            1000.3,
        ]
        harness.wait_for(
            lambda: all(harness.count(k) >= 4 for k in OUTPUT_TYPES if k not in ("alerts", "incidents")),
            "every output of the four frames",
        )

        for key in ("bev/fused", "bev/camera", "bev/radar", "bev/lidar", "bev/bias"):
            for grid in harness.messages(key):
                info = grid.info
                assert (info.width, info.height, info.resolution) == (NX, NY, RES), key
                assert (info.origin.position.x, info.origin.position.y) == (X_MIN, Y_MIN), key
                assert grid.header.frame_id == "base_link" and len(grid.data) == NX * NY
                assert 0 <= min(grid.data) and max(grid.data) <= 100
        for summary in summaries:
            assert (summary.grid.width, summary.grid.height) == (NX, NY)
            assert list(summary.modalities) == ["camera", "radar", "lidar"]
        image = harness.messages("bev_image")[-1]
        assert (image.height, image.width, image.encoding) == (NX * 2, NY * 2, "rgb8")
        for key in ("bev_image/camera", "bev_image/radar", "bev_image/lidar", "bev_image/bias"):
            for image in harness.messages(key):  # signed: one pixel per cell, whatever the scale
                assert (image.height, image.width, image.encoding) == (NX, NY, "rgb8"), key
                assert image.header.frame_id == "base_link" and len(image.data) == NX * NY * 3
        for array in harness.messages("markers"):
            assert array.markers[0].action == 3  # DELETEALL first
        alerts = harness.messages("alerts")
        assert alerts and all(len(a.alerts) > 0 for a in alerts)  # only non-empty ones
        missing = [a for array in alerts for a in array.alerts if a.kind == "SENSOR_MISSING"]
        assert [a.modality for a in missing] == ["radar"]
        # every radar silent at once: one incident for the modality, naming the five sensors
        harness.wait_for(lambda: harness.count("incidents") >= 1, "the radar incident")
        (incident,) = harness.messages("incidents")
        assert (incident.change, incident.sensor, incident.modality) == ("OPENED", "radar", "radar")
        assert list(incident.sensors) == list(rig.radars) and "missing" in list(incident.evidence_kinds)
        assert (incident.start.sec, incident.start.nanosec) == (1000, 300_000_000)

        diagnostics = harness.diagnostics_after(time.monotonic())
        statuses = status_by_hardware_id(diagnostics)
        sensors = [*rig.cameras, *rig.radars, rig.lidar]
        assert set(sensors) | {"camera", "radar", "lidar", "lmd_monitor"} == set(statuses)
        for name in rig.cameras:
            values = values_of(statuses[name])
            assert values["topic"] == f"/{name}/image_rect_compressed"
            assert values["last_stamp"] == "1000.300000" and values["last_error"] == ""
            assert values["signal_checks"] == "ok"  # the camera's own signal checks
            assert as_int(statuses[name].level) == 0
        assert values_of(statuses["lmd_monitor"])["frames_processed"] == "4"
        assert values_of(statuses["radar"])["present"] == "false"


def test_views_nobody_subscribes_to_are_not_built(model_path):
    """BEV grids, the BEV image and markers cost most of the output time; with no subscriber they
    are not built, while the record (decomposition summary, alerts) still goes out. The node is
    warmed up at configure, with the decomposition it runs named in /diagnostics."""
    with MonitorHarness(SensorRig(), {"model": model_path}, outputs=("decomposition", "markers")) as harness:
        summaries = harness.run_frames(3)
        assert [s.frames_processed for s in summaries] == [1, 2, 3]
        harness.wait_for(lambda: harness.count("markers") >= 3, "the markers of three frames")
        values = values_of(status_by_hardware_id(harness.diagnostics_after(time.monotonic()))["lmd_monitor"])
        # per frame: 5 BEV grids (fused, three modalities, bias), the BEV image and the 4 signed
        # BEV images (three modalities, bias), not the markers
        assert values["views_not_built_no_subscriber"] == str(3 * 10)
        assert values["decomposition"] == "compiled, batch 1: compiled"


def _corrupt(rig: SensorRig, stamp: float) -> dict:
    """One instant with each kind of malformed message on a different sensor."""
    messages = rig.frame(stamp)
    messages["/cam_front/image_rect_compressed"].data = messages["/cam_front/image_rect_compressed"].data[
        :20
    ]  # corrupt JPEG
    info = messages["/cam_front_right/camera_info"]
    info.k = np.zeros(9)  # zero intrinsics
    messages["/cam_front_left/image_rect_compressed"] = rig.image(
        "cam_front_left", stamp, hw=(30, 50)
    )  # != CameraInfo
    truncated = messages["/radar_front"]
    truncated.data = truncated.data[:-7]
    wrong_step = messages["/radar_front_left"]
    wrong_step.point_step = 20  # six float32 fields need 24 bytes
    wrong_step.row_step = 20 * wrong_step.width
    wrong_step.data = wrong_step.data[: wrong_step.row_step]
    points = np.random.default_rng(1).uniform(-5, 5, (50, len(LIDAR_FIELDS))).astype(np.float32)
    points[:3, 0] = (np.nan, np.inf, -np.inf)
    nan_cloud = rig.lidar_cloud(stamp, points)
    nan_cloud.is_dense = True  # claims finite points
    del messages["/lidar_top"]
    messages["/lidar_top"] = nan_cloud  # the key sensor stays last
    return messages


EXPECTED_PROBLEMS = {
    "cam_front": ("/cam_front/image_rect_compressed", "cannot decode"),
    "cam_front_right": ("/cam_front_right/camera_info", "zero intrinsics"),
    "cam_front_left": ("/cam_front_left/image_rect_compressed", "disagrees with CameraInfo"),
    "radar_front": ("/radar_front", "truncated"),
    "radar_front_left": ("/radar_front_left", "point_step"),
    "lidar_top": ("/lidar_top", "NaN/inf"),
}


def test_malformed_messages_are_named_and_the_node_goes_on(model_path):
    rig = SensorRig(seed=3)
    with MonitorHarness(rig, {"model": model_path, "diagnostics_persistence": 2}) as harness:
        harness.publish_tf_static()
        assert harness.run_frame(rig.frame(1000.0)) is not None
        bad = harness.run_frame(_corrupt(rig, 1000.1))
        # The frame still comes out: every modality has another working sensor.
        assert bad is not None and list(bad.present) == [True, True, True]
        again = rig.frame(1000.2)
        again["/cam_front/image_rect_compressed"].data = b"\xff\xd8\xff broken"
        assert harness.run_frame(again) is not None
        moment = time.monotonic()
        statuses = status_by_hardware_id(harness.diagnostics_after(moment))
        for sensor, (topic, reason) in EXPECTED_PROBLEMS.items():
            last_error = values_of(statuses[sensor])["last_error"]
            assert last_error.startswith(f"{topic}: ") and reason in last_error, sensor
        # cam_front: two bad checks in a row (persistence 2) -> ERROR; the others recovered.
        assert as_int(statuses["cam_front"].level) == 2
        assert "/cam_front/image_rect_compressed" in statuses["cam_front"].message
        assert as_int(statuses["radar_front"].level) == 0
        monitor = values_of(statuses["lmd_monitor"])
        assert monitor["malformed_messages"] == str(len(EXPECTED_PROBLEMS) + 1)
        assert monitor["frames_processed"] == "3" and monitor["frames_dropped"] == "0"
        # And it recovers.
        assert harness.run_frame(rig.frame(1000.3)) is not None
        statuses = status_by_hardware_id(harness.diagnostics_after(time.monotonic()))
        assert as_int(statuses["cam_front"].level) == 0


def test_unknown_raw_image_encoding_is_named(model_path):
    rig = SensorRig(cameras=("cam_front",), radars=("radar_front",), compressed=False)
    with MonitorHarness(rig, {"model": model_path}) as harness:
        harness.publish_tf_static()
        assert harness.run_frame(rig.frame(50.0)) is not None
        messages = rig.frame(50.1)
        messages["/cam_front/image_rect"].encoding = "yuv422_weird"
        summary = harness.run_frame(messages)
        assert summary is not None and list(summary.present) == [False, True, True]
        statuses = status_by_hardware_id(harness.diagnostics_after(time.monotonic()))
        last_error = values_of(statuses["cam_front"])["last_error"]
        assert last_error.startswith("/cam_front/image_rect: ") and "yuv422_weird" in last_error
        assert as_int(statuses["cam_front"].level) == 1  # WARN: one bad check of persistence 3


def test_keep_latest_queue_counts_superseded_frames(model_path):
    rig = SensorRig(cameras=("cam_front",), radars=("radar_front",))
    with MonitorHarness(rig, {"model": model_path}) as harness:
        harness.publish_tf_static()
        health = harness.node.sensor_health
        for i in range(6):  # faster than inference: older queued frames are superseded
            harness.publish(rig.frame(10.0 + i * 0.1))
            # Paced by arrival (not by inference), so best-effort QoS loses no sweep.
            harness.wait_for(lambda i=i: health.messages("lidar_top") == i + 1, f"sweep {i}")
        harness.wait_for(lambda: harness.frames_accounted() == 6, "all six frames accounted for")
        drops = harness.node.drop_counts()
        assert harness.node.frames_processed + sum(drops.values()) == 6
        assert set(drops) <= {"superseded in the queue by a newer frame"}
        harness.wait_for(
            lambda: harness.count("decomposition") == harness.node.frames_processed, "the last summary"
        )
        last = harness.messages("decomposition")[-1]
        assert last.frames_processed + last.frames_dropped <= 6


def test_several_inference_workers_conclude_frames_in_stamp_order(model_path):
    rig = SensorRig(cameras=("cam_front",), radars=("radar_front",))
    params = {"model": model_path, "inference_workers": 3, "cpu_threads": 1, "queue_depth": 20}
    with MonitorHarness(rig, params) as harness:
        concluded = []
        harness.node.report_listeners.append(lambda frame, report: concluded.append(report.stamp))
        harness.publish_tf_static()
        health = harness.node.sensor_health
        for i in range(8):
            harness.publish(rig.frame(10.0 + i * 0.1))
            harness.wait_for(lambda i=i: health.messages("lidar_top") == i + 1, f"sweep {i}")
        harness.wait_for(lambda: harness.frames_accounted() == 8, "all eight frames accounted for")
        assert harness.node.drop_counts() == {}
        # three frames in inference at once, yet alerts and outputs follow the stamps
        assert concluded == sorted(concluded) and len(concluded) == 8


def test_lifecycle_without_autostart(model_path):
    rig = SensorRig(cameras=("cam_front",), radars=("radar_front",))
    with MonitorHarness(rig, {"model": model_path, "autostart": False}, autostart=False) as harness:
        node, probe = harness.node, harness.probe
        assert node.autostart is False
        assert probe.count_subscribers("/lidar_top") == 0  # unconfigured: nothing subscribed
        assert node.trigger_configure().name == "SUCCESS"
        assert probe.count_subscribers("/lidar_top") == 0  # inactive: still nothing
        assert node.trigger_activate().name == "SUCCESS"
        harness.wait_for(lambda: probe.count_subscribers("/lidar_top") == 1, "the subscription")
        harness.publish_tf_static()
        assert harness.run_frame(rig.frame(5.0)) is not None
        assert node.trigger_deactivate().name == "SUCCESS"
        harness.wait_for(lambda: probe.count_subscribers("/lidar_top") == 0, "unsubscribing")
        assert node.trigger_cleanup().name == "SUCCESS"
        # Read-only parameters refuse runtime changes; consistent changes are accepted.
        result = node.set_parameters([rclpy.parameter.Parameter("lidar_topic", value="/x")])[0]
        assert not result.successful
        result = node.set_parameters([rclpy.parameter.Parameter("failed_ratio", value=0.9)])[0]
        assert not result.successful and "degraded_ratio" in result.reason
        assert node.set_parameters([rclpy.parameter.Parameter("bev_image_scale", value=3)])[0].successful


def test_diagnostics_go_on_under_sim_time_when_the_clock_stops(model_path):
    """/diagnostics runs on the steady clock: under use_sim_time with no /clock (a bag that ended)
    the monitor still reports, so silent sensors show up as such instead of a frozen monitor."""
    rig = SensorRig(cameras=("cam_front",), radars=("radar_front",))
    parameters = {"model": model_path, "decomposition": "eager", "use_sim_time": True}
    with MonitorHarness(rig, parameters, diagnostics_period_s=0.2) as harness:
        assert harness.node.get_clock().now().nanoseconds == 0  # no /clock: sim time stands still
        harness.wait_for(lambda: harness.count("diagnostics") >= 3, "3 DiagnosticArrays", guard_s=60.0)
        statuses = status_by_hardware_id(harness.messages("diagnostics")[-1])
        assert {"cam_front", "radar_front", "lidar_top"} <= set(statuses)


def test_topics_are_in_the_node_namespace_and_diagnostics_stay_global(model_path):
    """With the default (relative) topics, a monitor in namespace car1 reads /car1/<sensor> and
    publishes /car1/lmd/..., so two monitors in one domain do not share a topic; /diagnostics
    and /tf_static are global, as ROS wants them."""
    from rclpy.context import Context
    from rclpy.parameter import Parameter

    from ros2_lmd.ros.node import MonitorNode

    context = Context()
    rclpy.init(context=context, domain_id=random.randint(100, 199))
    overrides = [
        Parameter("model", value=model_path),
        Parameter("device", value="cpu"),
        Parameter("decomposition", value="eager"),
    ]
    node = MonitorNode(context=context, namespace="car1", parameter_overrides=overrides)
    try:
        assert node.trigger_configure().name == "SUCCESS"
        assert node.trigger_activate().name == "SUCCESS"
        published = {name for name, _ in node.get_publisher_names_and_types_by_node("lmd_monitor", "/car1")}
        subscribed = {name for name, _ in node.get_subscriber_names_and_types_by_node("lmd_monitor", "/car1")}
        assert {"/car1/lmd/incidents", "/car1/lmd/bev/fused", "/diagnostics"} <= published
        assert not {t for t in published if t.startswith("/lmd")}
        assert {"/car1/lidar_top", "/car1/radar_front", "/car1/cam_front/image_rect_compressed"} <= subscribed
        assert {"/car1/cam_back/camera_info", "/tf_static"} <= subscribed
        assert not {t for t in subscribed | published if t.startswith(("/lidar", "/radar", "/cam"))}
        # sensors keep their names (hardware ids) in a namespace; the statuses on the global
        # /diagnostics are named in it, so that a second monitor's do not overwrite them
        assert {"lidar_top", "radar_front", "cam_front"} <= set(node.sensor_health.sensors)
        records = node.diagnostic_records()
        assert "car1/ros2_lmd: cam_front" in {record.name for record in records}
        assert all(record.name.startswith("car1/ros2_lmd: ") for record in records)
    finally:
        node.close()
        node.destroy_node()
        rclpy.shutdown(context=context)


def test_parameters_are_declared_with_descriptors(model_path):
    rig = SensorRig(cameras=("cam_front",), radars=("radar_front",))
    with MonitorHarness(rig, {"model": model_path}, autostart=False) as harness:
        node = harness.node
        (sync,) = node.describe_parameters(["sync_tolerance_s"])
        assert sync.floating_point_range[0].from_value == 0.0
        assert sync.floating_point_range[0].to_value == 1.0 and not sync.read_only
        (depth,) = node.describe_parameters(["queue_depth"])
        assert (depth.integer_range[0].from_value, depth.integer_range[0].to_value) == (1, 100)
        assert depth.read_only
        (key,) = node.describe_parameters(["key_sensor"])
        assert "lidar" in key.additional_constraints and key.description


def _wait_until_active(process: subprocess.Popen, lines: list[str]) -> float:
    """Read the monitor's output into `lines` until it says it is active; the hang guard's deadline."""
    deadline = time.monotonic() + HANG_GUARD_S
    for line in process.stdout:
        lines.append(line)
        if "active:" in line or time.monotonic() > deadline:
            break
    assert any("active:" in line for line in lines), "".join(lines)
    return deadline


def test_cli_monitor_starts_and_stops_cleanly_on_ctrl_c(model_path, tmp_path):
    params = tmp_path / "monitor.yaml"
    params.write_text(f"/**:\n  ros__parameters:\n    model: {model_path}\n    device: cpu\n")
    env = {**os.environ, "ROS_DOMAIN_ID": str(random.randint(100, 199))}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ros2_lmd.cli",
            "monitor",
            "--params-file",
            str(params),
            "--ros-args",
            "-p",
            "queue_depth:=2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    lines: list[str] = []
    try:
        _wait_until_active(process, lines)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=HANG_GUARD_S) == 0, "".join(lines)
    finally:
        if process.poll() is None:
            process.kill()


def test_cli_monitor_stops_cleanly_however_often_it_is_signalled(model_path, tmp_path):
    """Under `ros2 launch` a terminal's Ctrl-C reaches the node twice (the terminal's SIGINT to the
    process group, then launch's own, then SIGTERM after sigterm_timeout): every signal after the
    first must be harmless, also during the clean-up and the interpreter's exit (restoring the
    default handler made the second one a KeyboardInterrupt: launch saw exit code -2)."""
    params = tmp_path / "monitor.yaml"
    params.write_text(
        f"/**:\n  ros__parameters:\n    model: {model_path}\n    device: cpu\n    decomposition: eager\n"
    )
    env = {**os.environ, "ROS_DOMAIN_ID": str(random.randint(100, 199))}
    process = subprocess.Popen(
        [sys.executable, "-m", "ros2_lmd.cli", "monitor", "--params-file", str(params)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    lines: list[str] = []
    try:
        deadline = _wait_until_active(process, lines)
        process.send_signal(signal.SIGTERM)
        signals = (signal.SIGINT, signal.SIGTERM)
        sent = 0
        while process.poll() is None and time.monotonic() < deadline:
            try:
                process.send_signal(signals[sent % 2])
            except ProcessLookupError:
                break
            sent += 1
            time.sleep(0.005)
        lines += process.stdout.readlines()
        output = "".join(lines)
        assert process.wait(timeout=HANG_GUARD_S) == 0, f"after {sent} more signals:\n{output}"
        assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
        assert sent > 0
    finally:
        if process.poll() is None:
            process.kill()


def test_stop_signals_run_no_python_code_and_end_ignored_at_the_os_level():
    """A Python signal handler can be re-entered between any two of its own bytecodes: with signals
    arriving faster than the starved main thread ran, a handler that set an Event nested until a
    RecursionError (CI, under launch-like SIGINT+SIGTERM every 5 ms). The handler must be a C-level
    callable (no bytecode, so nothing to nest in), record the request, and after
    `ignore_from_now` every later signal is ignored by the OS."""
    import types

    from ros2_lmd.ros.node import STOP_SIGNALS, StopSignals

    saved = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    stop = StopSignals()
    try:
        stop.install()
        for sig in STOP_SIGNALS:
            handler = signal.getsignal(sig)
            assert callable(handler)
            assert not isinstance(handler, (types.FunctionType, types.MethodType)), handler
        assert not stop.is_set()
        for _ in range(50):
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGINT)
        signal.getsignal(signal.SIGINT)  # a few bytecodes: pending handlers have run by now
        assert stop.is_set()
        stop.ignore_from_now()
        assert all(signal.getsignal(sig) is signal.SIG_IGN for sig in STOP_SIGNALS)
        for _ in range(50):  # ignored by the OS: nothing runs, nothing is raised
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGTERM)
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def test_cli_monitor_refuses_bad_parameters(tmp_path):
    params = tmp_path / "monitor.yaml"
    params.write_text("/**:\n  ros__parameters:\n    queue_depth: 0\n")
    result = subprocess.run(
        [sys.executable, "-m", "ros2_lmd.cli", "monitor", "--params-file", str(params)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "queue_depth" in result.stderr
