"""Launch the ros2_lmd monitor (a lifecycle node), and optionally rviz2 showing its outputs.

    ros2 launch ros2_lmd monitor.launch.py
    ros2 launch ros2_lmd monitor.launch.py params_file:=/path/my.yaml device:=cuda rviz:=true
    ros2 launch ros2_lmd monitor.launch.py autostart:=false   # a lifecycle manager drives it
    ros2 launch ros2_lmd monitor.launch.py namespace:=car1    # /car1/lmd/..., /car1/lidar_top, ...

Arguments (`ros2 launch ros2_lmd monitor.launch.py --show-args` lists them with their valid
values): params_file (default: the installed config/monitor.yaml), autostart (configure and
activate by itself; false: wait in `unconfigured` for `ros2 lifecycle set` or a lifecycle
manager), log_level, use_sim_time (true when a bag is played with `--clock`), device (overrides
the file's `device` when set), namespace (the node's, and so of its relative topics), rviz.

Every argument is checked before anything starts: a value outside its choices, a params_file that
is not a file, a namespace that is not a ROS name, or rviz:=true without rviz2 installed ends the
launch with one line naming the argument and its valid values, and no process is left behind.
Fast DDS uses the installed config/fastdds_shm.xml (shared memory large enough for LiDAR sweeps)
unless FASTRTPS_DEFAULT_PROFILES_FILE / FASTDDS_DEFAULT_PROFILES_FILE are set already.
"""

import os
import re

from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

PACKAGE = "ros2_lmd"
EXECUTABLE = "monitor"  # installed in lib/ros2_lmd by CMakeLists.txt
NODE_NAME = "lmd_monitor"
# rviz2's Image display picks the image transport from the topic's last part, so it subscribes to
# <camera>/image_rect/compressed; the cameras publish <camera>/image_rect_compressed (the default
# camera_image_topics of config/monitor.yaml). Relative: both resolve in the launch's namespace.
CAMERAS = ("cam_front", "cam_front_right", "cam_front_left", "cam_back", "cam_back_left", "cam_back_right")
RVIZ_CAMERA_REMAPS = [(f"{c}/image_rect/compressed", f"{c}/image_rect_compressed") for c in CAMERAS]
TRANSPORT_PROFILE_VARIABLES = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")

BOOLEANS = ["true", "false"]
LOG_LEVELS = ["debug", "info", "warn", "error", "fatal"]
DEVICES = ["", "auto", "cuda", "cpu"]  # "": the params_file's device
# A ROS namespace: empty, or names of letters, digits and underscores (not starting with a digit)
# separated by "/" (rcl's validate_namespace, without ~ and substitutions).
NAMESPACE = re.compile(r"/?([A-Za-z_][A-Za-z0-9_]*)(/[A-Za-z_][A-Za-z0-9_]*)*")


class LaunchArgumentError(ValueError):
    """A launch argument the monitor cannot start with; one line naming it and its valid values."""

    def __init__(self, name: str, value: str, why: str, valid: str) -> None:
        super().__init__(
            f'Argument "{name}" provided value "{value}" is not valid: {why}. Valid options are: {valid}'
        )


def _value(context, name: str) -> str:
    return LaunchConfiguration(name).perform(context)


def _rviz2_executable() -> str | None:
    """rviz2 as launch_ros would start it (<prefix of package rviz2>/lib/rviz2/rviz2), or None."""
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix

    try:
        path = os.path.join(get_package_prefix("rviz2"), "lib", "rviz2", "rviz2")
    except PackageNotFoundError:
        return None
    return path if os.access(path, os.X_OK) else None


def _check_arguments(context):
    """The checks `choices` cannot make, before any process starts (an exception here ends the
    launch with its message, one line)."""
    params_file = _value(context, "params_file")
    if not os.path.isfile(params_file):
        raise LaunchArgumentError(
            "params_file",
            params_file,
            "no such file",
            "a ROS 2 parameter YAML file (default: the installed config/monitor.yaml)",
        )
    if not os.access(params_file, os.R_OK):
        raise LaunchArgumentError(
            "params_file", params_file, "not readable", "a readable ROS 2 parameter YAML file"
        )
    namespace = _value(context, "namespace")
    if namespace and not NAMESPACE.fullmatch(namespace):
        raise LaunchArgumentError(
            "namespace",
            namespace,
            "not a ROS namespace",
            "empty, or ROS names separated by / (e.g. car1, /fleet/car1)",
        )
    if _value(context, "rviz") == "true" and _rviz2_executable() is None:
        raise LaunchArgumentError(
            "rviz",
            "true",
            "rviz2 is not installed (no package rviz2 on AMENT_PREFIX_PATH)",
            "false, or true where rviz2 is installed",
        )
    return []


def _monitor_node(context):
    """The monitor lifecycle node; `device` is passed only when given, so the file's value holds
    otherwise. `autostart` is the node's own parameter: it takes itself to `active` at start-up."""
    overrides = {
        "use_sim_time": _value(context, "use_sim_time") == "true",
        "autostart": _value(context, "autostart") == "true",
    }
    device = _value(context, "device")
    if device:
        overrides["device"] = device
    return [
        LifecycleNode(
            package=PACKAGE,
            executable=EXECUTABLE,
            name=NODE_NAME,
            namespace=LaunchConfiguration("namespace"),
            parameters=[LaunchConfiguration("params_file"), overrides],
            ros_arguments=["--log-level", _value(context, "log_level")],
            output="screen",
            emulate_tty=True,
        )
    ]


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    profile = PathJoinSubstitution([share, "config", "fastdds_shm.xml"])
    transport = [
        SetEnvironmentVariable(name, EnvironmentVariable(name, default_value=profile))
        for name in TRANSPORT_PROFILE_VARIABLES
    ]
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "params_file",
                default_value=PathJoinSubstitution([share, "config", "monitor.yaml"]),
                description="ROS 2 parameter file of the monitor node (must exist)",
            ),
            DeclareLaunchArgument(
                "autostart",
                default_value="true",
                choices=BOOLEANS,
                description="Configure and activate the monitor at start-up (false: a lifecycle "
                "manager does)",
            ),
            DeclareLaunchArgument(
                "log_level",
                default_value="info",
                choices=LOG_LEVELS,
                description="Log level of the monitor node",
            ),
            DeclareLaunchArgument(
                "use_sim_time",
                default_value="false",
                choices=BOOLEANS,
                description="Use /clock (true when replaying a bag with `ros2 bag play --clock` or "
                "`ros2-lmd play --clock`)",
            ),
            DeclareLaunchArgument(
                "device",
                default_value="",
                choices=DEVICES,
                description="Inference device: auto, cuda or cpu (empty: the params_file value)",
            ),
            DeclareLaunchArgument(
                "namespace",
                default_value="",
                description="Namespace of the monitor node and of its relative topics (inputs, "
                "outputs under lmd/); /diagnostics and /tf_static stay global",
            ),
            DeclareLaunchArgument(
                "rviz",
                default_value="false",
                choices=BOOLEANS,
                description="Also start rviz2 with config/monitor.rviz (needs rviz2 installed)",
            ),
            OpaqueFunction(function=_check_arguments),
            *transport,
            OpaqueFunction(function=_monitor_node),
            Node(
                package="rviz2",
                executable="rviz2",
                name="lmd_rviz",
                namespace=LaunchConfiguration("namespace"),
                arguments=["-d", PathJoinSubstitution([share, "config", "monitor.rviz"])],
                parameters=[{"use_sim_time": LaunchConfiguration("use_sim_time")}],
                remappings=RVIZ_CAMERA_REMAPS,
                condition=IfCondition(LaunchConfiguration("rviz")),
                output="screen",
            ),
        ]
    )
