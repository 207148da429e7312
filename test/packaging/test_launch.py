"""launch/monitor.launch.py, as installed. Where launch_ros imports, the launch file is loaded as a
module and generate_launch_description() runs for real; otherwise (pip-wheel ROS 2 has no
launch_ros) its source is parsed and checked to start the installed executable with the installed
config. Either way the installed executable must run."""

import ast
import importlib.util
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# The package's colcon install: this repository's own (make bootstrap), or the workspace's under
# `colcon test` (CMakeLists.txt passes ROS2_LMD_INSTALL_PREFIX).
PREFIX = Path(os.environ.get("ROS2_LMD_INSTALL_PREFIX") or REPO / "install" / "ros2_lmd")
SHARE = PREFIX / "share" / "ros2_lmd"
LAUNCH_FILE = SHARE / "launch" / "monitor.launch.py"
ARGUMENTS = {"params_file", "autostart", "log_level", "use_sim_time", "device", "namespace", "rviz"}


@pytest.fixture(scope="module")
def launch_file() -> Path:
    pytest.importorskip("rclpy", reason="rclpy is not importable: run `make test`")
    if not LAUNCH_FILE.is_file():
        pytest.fail(f"{LAUNCH_FILE} missing: run `make bootstrap` (colcon build)")
    return LAUNCH_FILE


def _launch_ros_available() -> bool:
    return importlib.util.find_spec("launch_ros") is not None


# --- With launch_ros: run the launch description -------------------------------------------------


@pytest.mark.skipif(
    not _launch_ros_available(),
    reason="launch_ros is not installed (pip-wheel ROS 2); test_launch_file_source_* check the file instead",
)
def test_generate_launch_description_runs(launch_file):
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.utilities import perform_substitutions
    from launch_ros.actions import LifecycleNode

    from launch import LaunchContext

    spec = importlib.util.spec_from_file_location("monitor_launch", launch_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()

    declared = {e.name: e for e in description.entities if isinstance(e, DeclareLaunchArgument)}
    assert set(declared) == ARGUMENTS
    context = LaunchContext()
    default_params = perform_substitutions(context, declared["params_file"].default_value)
    assert Path(default_params).resolve() == (SHARE / "config" / "monitor.yaml").resolve()

    context.launch_configurations.update(
        {
            "params_file": default_params,
            "autostart": "false",
            "log_level": "debug",
            "use_sim_time": "false",
            "device": "cpu",
            "namespace": "",
            "rviz": "false",
        }
    )
    check, start = [e for e in description.entities if isinstance(e, OpaqueFunction)]
    assert check.execute(context) == []  # the default arguments pass the checks
    nodes = [e for e in start.execute(context) if isinstance(e, LifecycleNode)]
    assert [(n.node_package, n.node_executable) for n in nodes] == [("ros2_lmd", "monitor")]
    # checked before anything starts: the check comes before the monitor in the description
    assert description.entities.index(check) < description.entities.index(start)
    context.launch_configurations["params_file"] = "/nonexistent.yaml"
    with pytest.raises(ValueError, match='Argument "params_file" provided value "/nonexistent.yaml"'):
        check.execute(context)
    # every argument with a fixed set of values declares it (ros2 launch ... --show-args lists them)
    choices = {name: argument.choices for name, argument in declared.items() if argument.choices}
    assert choices == {
        "autostart": ["true", "false"],
        "log_level": ["debug", "info", "warn", "error", "fatal"],
        "use_sim_time": ["true", "false"],
        "device": ["", "auto", "cuda", "cpu"],
        "rviz": ["true", "false"],
    }


# --- Without launch_ros: parse the file ----------------------------------------------------------


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == name
    ]


def _keyword(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _constants(tree: ast.Module) -> dict[str, object]:
    """Module-level NAME = <literal> assignments."""
    return {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for target in node.targets
    }


def _literal(node: ast.AST, constants: dict[str, object]):
    if isinstance(node, ast.Name):
        return constants[node.id]
    return ast.literal_eval(node)


def test_launch_file_source_declares_the_arguments(launch_file):
    tree = ast.parse(launch_file.read_text())
    declared = {ast.literal_eval(call.args[0]) for call in _calls(tree, "DeclareLaunchArgument")}
    assert declared == ARGUMENTS
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)


def test_launch_file_source_starts_installed_executable_with_installed_config(launch_file):
    tree = ast.parse(launch_file.read_text())
    constants = _constants(tree)
    nodes = {
        _literal(_keyword(call, "package"), constants): (
            call,
            _literal(_keyword(call, "executable"), constants),
        )
        for call in _calls(tree, "LifecycleNode") + _calls(tree, "Node")
    }
    assert set(nodes) == {"ros2_lmd", "rviz2"}
    # the monitor is a lifecycle node (ros2 lifecycle / a lifecycle manager can drive it)
    assert [_literal(_keyword(c, "package"), constants) for c in _calls(tree, "LifecycleNode")] == [
        "ros2_lmd"
    ]
    monitor_call, executable = nodes["ros2_lmd"]
    executable_path = PREFIX / "lib" / "ros2_lmd" / executable
    assert executable_path.is_file() and os.access(executable_path, os.X_OK)
    # The node gets params_file (plus overrides) and the namespace argument.
    parameters = _keyword(monitor_call, "parameters")
    assert "params_file" in ast.unparse(parameters)
    assert "namespace" in ast.unparse(_keyword(monitor_call, "namespace"))
    assert "log_level" in ast.unparse(_keyword(monitor_call, "ros_arguments"))
    # autostart and use_sim_time reach the node as parameters (overrides after the file)
    source = ast.unparse(tree)
    assert "'autostart': _value(context, 'autostart') == 'true'" in source
    assert "'use_sim_time': _value(context, 'use_sim_time') == 'true'" in source

    # The params_file default is <share of ros2_lmd>/config/monitor.yaml, and it is installed.
    params_argument = next(
        call
        for call in _calls(tree, "DeclareLaunchArgument")
        if ast.literal_eval(call.args[0]) == "params_file"
    )
    default = _keyword(params_argument, "default_value")
    (join,) = _calls(default, "PathJoinSubstitution")
    parts = [ast.unparse(element) for element in join.args[0].elts]
    assert parts[1:] == ["'config'", "'monitor.yaml'"]
    share_call = next(
        n for n in ast.walk(tree) if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == parts[0]
    )
    (find_share,) = _calls(share_call.value, "FindPackageShare")
    assert _literal(find_share.args[0], constants) == "ros2_lmd"
    assert (SHARE / "config" / "monitor.yaml").is_file()

    # rviz2 only when asked, with the installed rviz config.
    rviz_call, _ = nodes["rviz2"]
    assert "rviz" in ast.unparse(_keyword(rviz_call, "condition"))
    assert "'monitor.rviz'" in ast.unparse(_keyword(rviz_call, "arguments"))
    # its camera displays (image_transport "compressed") reach the cameras' topics
    assert ast.unparse(_keyword(rviz_call, "remappings")) == "RVIZ_CAMERA_REMAPS"
    cameras = _literal(
        next(
            n.value for n in tree.body if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "CAMERAS"
        ),
        constants,
    )
    from ros2_lmd.monitor.params import MonitorParams

    assert [f"{c}/image_rect_compressed" for c in cameras] == list(MonitorParams().camera_image_topics)
    assert (SHARE / "config" / "monitor.rviz").is_file()


def test_installed_executable_runs(launch_file):
    executable = PREFIX / "lib" / "ros2_lmd" / "monitor"
    result = subprocess.run([str(executable), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "--params-file" in result.stdout
