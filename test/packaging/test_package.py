"""The package's plumbing: importing without ROS, finding the generated messages from a source
checkout, the `ros2-lmd` command, and the .msg definitions for rosbags."""

import ast
import importlib
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import ros2_lmd
from ros2_lmd import cli
from ros2_lmd.errors import LMDError
from ros2_lmd.messages import definitions as interfaces

REPO = Path(__file__).resolve().parents[2]


def _ros2_lmd(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ros2_lmd.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=REPO,
    )


def test_library_imports_without_ros():
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("AMENT_PREFIX_PATH", "LD_LIBRARY_PATH", "PYTHONPATH")
    }
    code = (
        "import sys, ros2_lmd, ros2_lmd.monitor.params, ros2_lmd.cli, ros2_lmd.messages.definitions; "
        "assert not [m for m in sys.modules if m.startswith(('rclpy', 'ros2_lmd.msg'))]; "
        "print(len(ros2_lmd.__path__))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"  # No generated messages found without a prefix.


def _fake_prefix(root: Path, name: str) -> Path:
    python = f"python{sys.version_info.major}.{sys.version_info.minor}"
    package = root / name / "lib" / python / "site-packages" / "ros2_lmd"
    (package / "msg").mkdir(parents=True)
    (package / "msg" / "__init__.py").write_text("")
    return package


def test_generated_messages_found_under_the_first_prefix_that_has_them(tmp_path):
    source = tmp_path / "src" / "ros2_lmd"
    source.mkdir(parents=True)
    first = _fake_prefix(tmp_path, "first")
    _fake_prefix(tmp_path, "second")
    prefixes = [str(tmp_path / "empty"), str(tmp_path / "first"), str(tmp_path / "second")]
    assert ros2_lmd._find_generated(source, prefixes) == [str(first)]
    assert ros2_lmd._find_generated(source, [str(tmp_path / "empty")]) == []


def test_no_search_when_the_package_has_its_messages(tmp_path):
    installed = _fake_prefix(tmp_path, "install")
    assert ros2_lmd._find_generated(installed, [str(tmp_path / "other")]) == []


def test_split_ros_args():
    assert cli.split_ros_args(["monitor", "--params-file", "a.yaml", "--ros-args", "-r", "__ns:=/car"]) == (
        ["monitor", "--params-file", "a.yaml"],
        ["--ros-args", "-r", "__ns:=/car"],
    )
    assert cli.split_ros_args(["smoke"]) == (["smoke"], [])


def test_help_lists_the_subcommands():
    result = _ros2_lmd("--help")
    assert result.returncode == 0
    assert "smoke" in result.stdout and "monitor" in result.stdout


def test_monitor_rejects_a_bad_params_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("/**:\n  ros__parameters:\n    device: gpu\n")
    result = _ros2_lmd("monitor", "--params-file", str(bad))
    assert result.returncode == cli.EXIT_USAGE
    assert "device: 'gpu' is not one of" in result.stderr


def test_smoke_command_exchanges_every_message():
    pytest.importorskip("rclpy", reason="rclpy is not importable: run `make test`")
    result = _ros2_lmd("smoke")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("received, equal") == 4
    assert "smoke check passed" in result.stdout


def test_message_definitions_register_with_rosbags():
    from rosbags.typesys import Stores, get_typestore

    typestore = get_typestore(Stores.ROS2_JAZZY)
    interfaces.register_with_rosbags(typestore)
    Detection = typestore.types["ros2_lmd/msg/Detection"]
    Alert = typestore.types["ros2_lmd/msg/Alert"]
    assert Alert.WARN == 1 and Alert.SENSOR_FAILED == "SENSOR_FAILED"
    assert "single_sensor" in Detection.__dataclass_fields__
    summary_fields = typestore.fielddefs["ros2_lmd/msg/DecompositionSummary"][1]
    assert [name for name, _ in summary_fields] == [
        "header",
        "frame_index",
        "grid",
        "modalities",
        "shares",
        "present",
        "detections",
        "conservation_error",
        "decomposition_error",
        "latency_ms",
        "frames_processed",
        "frames_dropped",
        "sensors",
        "messages_received",
        "messages_lost",
    ]


def test_message_definitions_are_the_repository_files():
    definitions = interfaces.message_definitions()
    assert set(definitions) == {f"ros2_lmd/msg/{name}" for name in interfaces.MESSAGE_NAMES}
    assert definitions["ros2_lmd/msg/Alert"] == (REPO / "msg" / "Alert.msg").read_text()


def _package_xml_version() -> str:
    return ET.parse(REPO / "package.xml").getroot().findtext("version", "").strip()


def test_one_version_everywhere():
    """package.xml holds the version; setup.py reads it there, ros2_lmd.__version__ repeats it, and
    the newest release in CHANGELOG.md is it (or a later one is still Unreleased)."""
    version = _package_xml_version()
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), version
    assert ros2_lmd.__version__ == version
    setup = subprocess.run(
        [sys.executable, "setup.py", "--version"], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert setup.returncode == 0, setup.stderr
    assert setup.stdout.strip().splitlines()[-1] == version
    releases = re.findall(r"^## \[(\d+\.\d+\.\d+)\]", (REPO / "CHANGELOG.md").read_text(), re.MULTILINE)
    assert releases and releases[0] == version


def _modules_defining_classes() -> list[str]:
    """Every module of the package with a class statement (the generated ros2_lmd.msg left out;
    ros2_lmd.ros only where rclpy imports)."""
    try:
        import rclpy  # noqa: F401
    except ImportError:
        has_rclpy = False
    else:
        has_rclpy = True
    modules = []
    for path in sorted((REPO / "ros2_lmd").rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts[1:2] == ("msg",) or (parts[1:2] == ("ros",) and not has_rclpy):
            continue
        if any(isinstance(node, ast.ClassDef) for node in ast.walk(ast.parse(path.read_text()))):
            modules.append(".".join(parts))
    return modules


def test_every_error_of_the_package_derives_from_lmd_error():
    """One `except LMDError` catches every error ros2_lmd defines, and each keeps its builtin base."""
    errors = {}
    for module_name in _modules_defining_classes():
        module = importlib.import_module(module_name)
        for name, value in vars(module).items():
            is_error = isinstance(value, type) and issubclass(value, BaseException)
            if is_error and value.__module__ == module_name:
                errors[f"{module_name}.{name}"] = value
    assert not [name for name, error in errors.items() if not issubclass(error, LMDError)]
    # The walk found them (a renamed module must not make this pass vacuously).
    known = {"SensorDataError", "TransformLookupError", "ParameterError", "LMDRuleError", "BagError"}
    assert known <= {name.rsplit(".", 1)[1] for name in errors}
    builtin = {ValueError, LookupError, RuntimeError, OSError}
    assert not [name for name, e in errors.items() if e is not LMDError and not builtin & set(e.__mro__)]
