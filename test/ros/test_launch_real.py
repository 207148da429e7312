"""`ros2 launch ros2_lmd monitor.launch.py` for real: the launch system and the ros2 CLI run as a user
runs them, as subprocesses (each test in its own ROS_DOMAIN_ID, logs in a temporary ROS_LOG_DIR,
ros2 CLI calls with `--no-daemon --spin-time`, so nothing outlives a test). Checked: the node is
active after start; autostart:=false waits for `ros2 lifecycle set`; a played faulted drive gives an
incident on /lmd/incidents; a terminal's Ctrl-C (SIGINT to the process group) ends with launch
reporting a clean finish and exit status 0; every bad argument is refused before anything starts,
with one line naming it and its valid values; two monitors in namespaces car1 and car2 of one
domain share no topic but the global ones.

Needs the launch system and ros2cli (a sourced ROS 2, or `bash tools/install_launch.sh DIR`, which
.ci/run does): skipped with the reason where they are absent. Marked `launch` (`pytest -m launch`).
A small untrained model with the eager decomposition keeps each node's warm-up short; launches are
shared by the checks that can use the same one.
"""

from __future__ import annotations

import importlib.util
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("rclpy", reason="rclpy is not importable: run `make test`")
pytest.importorskip("tf2_msgs", reason="tf2_msgs is not built: run `make bootstrap`")
pytestmark = [
    pytest.mark.launch,
    pytest.mark.skipif(
        shutil.which("ros2") is None
        or any(importlib.util.find_spec(p) is None for p in ("launch_ros", "ros2launch", "ros2lifecycle")),
        reason="the ROS 2 launch system / ros2cli is not installed: bash tools/install_launch.sh "
        "../shared/ros2-jazzy-src (or source a ROS 2 install)",
    ),
]

from support.tiny import tiny_model  # noqa: E402

HANG_GUARD_S = 240.0  # liveness guard for a node's start on a loaded 2-core machine, not a timing
CLI_TIMEOUT_S = 90.0
SPIN = ["--no-daemon", "--spin-time", "5"]
# Topics every node shares by ROS convention: they are global on purpose.
GLOBAL_TOPICS = {"/diagnostics", "/tf_static", "/rosout", "/parameter_events"}


def _domain() -> str:
    # 200-232: away from the in-process harness's 100-199 (Fast DDS allows up to 232)
    return str(random.randint(200, 232))


class Launch:
    """One `ros2 launch ros2_lmd monitor.launch.py ARGS` in a process group of its own, as a
    terminal runs it; its output goes to a file that `output()` reads."""

    def __init__(self, env: dict[str, str], tmp: Path, *arguments: str) -> None:
        self.env = env
        self.log = (
            tmp
            / f"launch_{'_'.join(a.split(':=')[0] for a in arguments) or 'default'}_{time.monotonic_ns()}.txt"
        )
        with open(self.log, "w") as out:
            self.process = subprocess.Popen(
                ["ros2", "launch", "ros2_lmd", "monitor.launch.py", *arguments],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=tmp,
                start_new_session=True,  # its own process group, as a terminal's job
            )
        self.group = self.process.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, guard_s: float = HANG_GUARD_S) -> None:
        deadline = time.monotonic() + guard_s
        while text not in self.output():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} in the launch output:\n{self.output()}")
            time.sleep(0.2)

    def ctrl_c(self) -> int:
        """SIGINT to the whole process group (what a terminal's Ctrl-C does); the exit status."""
        os.killpg(self.group, signal.SIGINT)
        return self.process.wait(timeout=60)

    def group_alive(self) -> bool:
        try:
            os.killpg(self.group, 0)
        except ProcessLookupError:
            return False
        return True

    def kill(self) -> None:
        if self.group_alive():
            os.killpg(self.group, signal.SIGKILL)
        self.process.wait(timeout=30)


def ros2(env: dict[str, str], *arguments: str, timeout: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ros2", *arguments],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def lifecycle_state(env: dict[str, str], node: str) -> str:
    """`ros2 lifecycle get NODE`, asked again while discovery has not found the node yet."""
    for _ in range(5):
        result = ros2(env, "lifecycle", "get", node, *SPIN)
        if result.returncode == 0:
            return result.stdout.strip()
    raise AssertionError(f"ros2 lifecycle get {node}: {result.stdout}{result.stderr}")


def wait_for_subscription(env: dict[str, str], topic: str, subscriber: subprocess.Popen) -> None:
    """Until `ros2 topic info TOPIC` counts a subscription (the `subscriber` process's)."""
    deadline = time.monotonic() + HANG_GUARD_S
    while True:
        info = ros2(env, "topic", "info", topic, *SPIN)
        if re.search(r"Subscription count: [1-9]", info.stdout):
            return
        if subscriber.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"no subscription on {topic}: {info.stdout}{info.stderr}")


def assert_clean_ctrl_c(launch: Launch) -> None:
    status = launch.ctrl_c()
    output = launch.output()
    assert status == 0, output
    assert re.search(r"\[INFO\] \[monitor-1\]: process has finished cleanly", output), output
    assert "process has died" not in output and "Traceback" not in output, output
    assert not launch.group_alive(), "a process of the launch outlived it"


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    logs = tmp_path_factory.mktemp("ros_log")
    return {**os.environ, "ROS_LOG_DIR": str(logs), "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def params_file(tmp_path_factory) -> Path:
    """A small untrained model, decomposed eagerly: the node is active seconds after start."""
    folder = tmp_path_factory.mktemp("launch_params")
    model = tiny_model(folder)
    path = folder / "monitor.yaml"
    path.write_text(
        "/**:\n  ros__parameters:\n"
        f"    model: {model}\n    device: cpu\n    decomposition: eager\n    self_check_every: 0\n"
    )
    return path


@pytest.fixture(scope="module")
def faulted_drive(tmp_path_factory) -> Path:
    """A 4 s drive whose six cameras go black from 1.5 s to 3.5 s (small images: cheap to play)."""
    bag = tmp_path_factory.mktemp("drive") / "drive"
    subprocess.run(
        [sys.executable, "-m", "ros2_lmd.cli", "simulate", "--out", str(bag), "--duration", "4",
         "--faults", "camera:blackout@1.5-3.5", "--camera-size", "64x36"],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    return bag


def test_launch_goes_active_gives_an_incident_of_a_played_drive_and_ends_cleanly_on_ctrl_c(
    env, params_file, faulted_drive, tmp_path
):
    env = {**env, "ROS_DOMAIN_ID": _domain()}
    launch = Launch(env, tmp_path, f"params_file:={params_file}")
    echo = None
    try:
        launch.wait_for("active:")
        assert lifecycle_state(env, "/lmd_monitor") == "active [3]"
        echo = subprocess.Popen(
            ["ros2", "topic", "echo", "--once", "/lmd/incidents", "ros2_lmd/msg/Incident", *SPIN],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        # `play` waits for the monitor's subscriptions, not for this echo: an incident published
        # before the echo's subscription is discovered is lost (volatile QoS), so wait for it
        wait_for_subscription(env, "/lmd/incidents", echo)
        play = subprocess.run(
            [sys.executable, "-m", "ros2_lmd.cli", "play", str(faulted_drive)],
            env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
        )  # fmt: skip
        assert play.returncode == 0, play.stdout + play.stderr
        incident, _ = echo.communicate(timeout=CLI_TIMEOUT_S)
        assert "change: OPENED" in incident and "modality: camera" in incident, incident + launch.output()
        assert "incident #1 opened" in launch.output()
        assert_clean_ctrl_c(launch)
    finally:
        if echo is not None and echo.poll() is None:
            echo.kill()
        launch.kill()


def test_two_namespaces_share_no_topic_and_autostart_false_waits_for_ros2_lifecycle(
    env, params_file, tmp_path
):
    env = {**env, "ROS_DOMAIN_ID": _domain()}
    car1 = Launch(env, tmp_path, f"params_file:={params_file}", "namespace:=car1", "autostart:=false")
    car2 = Launch(env, tmp_path, f"params_file:={params_file}", "namespace:=car2")
    try:
        car1.wait_for("autostart is false: waiting for a lifecycle manager")
        assert lifecycle_state(env, "/car1/lmd_monitor") == "unconfigured [1]"
        for transition in ("configure", "activate"):
            result = ros2(env, "lifecycle", "set", "/car1/lmd_monitor", transition, *SPIN)
            assert "Transitioning successful" in result.stdout, result.stdout + result.stderr + car1.output()
        assert lifecycle_state(env, "/car1/lmd_monitor") == "active [3]"
        car2.wait_for("active:")

        topics = {}
        for car in ("car1", "car2"):
            info = ros2(env, "node", "info", f"/{car}/lmd_monitor", *SPIN)
            assert info.returncode == 0, info.stdout + info.stderr
            topics[car] = set(re.findall(r"^\s+(/\S+): ", info.stdout, re.MULTILINE))
            assert {
                f"/{car}/lidar_top",
                f"/{car}/cam_front/image_rect_compressed",
                f"/{car}/lmd/incidents",
            } <= topics[car], info.stdout
        shared = topics["car1"] & topics["car2"]
        assert shared <= GLOBAL_TOPICS, f"topics shared by car1 and car2: {sorted(shared - GLOBAL_TOPICS)}"
        assert "/diagnostics" in shared  # ROS convention: one global diagnostics topic
        assert_clean_ctrl_c(car1)
        assert_clean_ctrl_c(car2)
    finally:
        car1.kill()
        car2.kill()


BAD_ARGUMENTS = [
    ("log_level:=loud", "log_level", ["debug", "info", "warn", "error", "fatal"]),
    ("autostart:=maybe", "autostart", ["true", "false"]),
    ("use_sim_time:=yes", "use_sim_time", ["true", "false"]),
    ("device:=bogus", "device", ["auto", "cuda", "cpu"]),
    ("rviz:=perhaps", "rviz", ["true", "false"]),
    ("params_file:=/nonexistent.yaml", "params_file", ["no such file"]),
    ("namespace:=1car", "namespace", ["car1"]),
    ("rviz:=true", "rviz", ["rviz2 is not installed", "false"]),
]


@pytest.mark.parametrize("argument, name, valid", BAD_ARGUMENTS, ids=[a for a, _, _ in BAD_ARGUMENTS])
def test_bad_argument_is_refused_in_one_line_before_anything_starts(env, tmp_path, argument, name, valid):
    if argument == "rviz:=true" and shutil.which("rviz2") is not None:
        pytest.skip("rviz2 is installed here: rviz:=true is valid")
    env = {**env, "ROS_DOMAIN_ID": _domain()}
    launch = Launch(env, tmp_path, argument)
    try:
        status = launch.process.wait(timeout=CLI_TIMEOUT_S)
        output = launch.output()
        assert status != 0, output
        (line,) = [line for line in output.splitlines() if "Caught exception in launch" in line]
        assert f'Argument "{name}" provided value "{argument.split(":=")[1]}" is not valid' in line, output
        assert "Valid options are" in line and all(v in line for v in valid), line
        assert "process started" not in output and "Traceback" not in output, output
        assert not launch.group_alive(), "a process of the refused launch is still running"
    finally:
        launch.kill()
