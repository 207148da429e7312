"""The colcon install tree that tools/bootstrap.sh builds (install/ros2_lmd): launch and config
files, the node executable, the generated message modules, and the ament index entry."""

import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("rclpy", reason="rclpy is not importable: run `make test` (it sets up ROS 2)")

REPO = Path(__file__).resolve().parents[2]
# The package's colcon install: this repository's own (make bootstrap), or the workspace's under
# `colcon test` (CMakeLists.txt passes ROS2_LMD_INSTALL_PREFIX).
PREFIX = Path(os.environ.get("ROS2_LMD_INSTALL_PREFIX") or REPO / "install" / "ros2_lmd")
SHARE = PREFIX / "share" / "ros2_lmd"
SITE = (
    PREFIX / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages" / "ros2_lmd"
)


@pytest.fixture(scope="module", autouse=True)
def install_tree():
    if not PREFIX.is_dir():
        pytest.fail(f"{PREFIX} does not exist: run `make bootstrap` (colcon build)")


@pytest.mark.parametrize(
    "relative", ["launch/monitor.launch.py", "config/monitor.yaml", "config/monitor.rviz"]
)
def test_launch_and_config_installed_unchanged(relative):
    installed = SHARE / relative
    assert installed.is_file(), f"{installed} missing from the install tree"
    assert installed.read_bytes() == (REPO / relative).read_bytes()


def test_node_executable_installed():
    executable = PREFIX / "lib" / "ros2_lmd" / "monitor"
    assert executable.is_file() and os.access(executable, os.X_OK)
    assert 'main(["monitor"' in executable.read_text()


@pytest.mark.parametrize("module", ["_detection", "_decomposition_summary", "_alert", "_alert_array"])
def test_message_modules_installed(module):
    assert (SITE / "msg" / f"{module}.py").is_file()


def test_message_typesupport_and_definitions_installed():
    for support in (
        "rosidl_typesupport_c",
        "rosidl_typesupport_fastrtps_c",
        "rosidl_typesupport_introspection_c",
    ):
        assert list(SITE.glob(f"ros2_lmd_s__{support}*.so")), f"{support} extension missing"
    for name in ("Detection", "DecompositionSummary", "Alert", "AlertArray"):
        assert (SHARE / "msg" / f"{name}.msg").is_file()
        assert (SITE / "msg_defs" / f"{name}.msg").read_text() == (REPO / "msg" / f"{name}.msg").read_text()


def test_library_installed_beside_generated_messages():
    # One `ros2_lmd` package: the library's modules and the generated `msg` side by side.
    for module in ("__init__.py", "cli/__init__.py", "monitor/params.py", "ros/node.py"):
        assert (SITE / module).read_text() == (REPO / "ros2_lmd" / module).read_text()


def test_ament_index_finds_the_install_tree():
    ament_index_python = pytest.importorskip("ament_index_python")
    share = Path(ament_index_python.get_package_share_directory("ros2_lmd"))
    assert share.resolve() == SHARE.resolve()
    assert "rosidl_interface_packages" in (share / "package.xml").read_text()
