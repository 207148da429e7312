"""Launch the ros2_lmd monitor (a lifecycle node), and optionally rviz2 showing its outputs.

    ros2 launch ros2_lmd monitor.launch.py
    ros2 launch ros2_lmd monitor.launch.py params_file:=/path/my.yaml device:=cuda rviz:=true
    ros2 launch ros2_lmd monitor.launch.py autostart:=false   # a lifecycle manager drives it

Arguments: params_file (default: the installed config/monitor.yaml), autostart (configure and
activate by itself; false: wait in `unconfigured` for `ros2 lifecycle set` or a lifecycle
manager), log_level, use_sim_time (true when a bag is played with `--clock`), device (overrides
the file's `device` when set), namespace, rviz. Fast DDS uses the installed
config/fastdds_shm.xml (shared memory large enough for LiDAR sweeps) unless
FASTRTPS_DEFAULT_PROFILES_FILE / FASTDDS_DEFAULT_PROFILES_FILE are set already.
"""

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
# /<camera>/image_rect/compressed; the cameras publish /<camera>/image_rect_compressed (the default
# camera_image_topics of config/monitor.yaml).
CAMERAS = ("cam_front", "cam_front_right", "cam_front_left", "cam_back", "cam_back_left", "cam_back_right")
RVIZ_CAMERA_REMAPS = [(f"/{c}/image_rect/compressed", f"/{c}/image_rect_compressed") for c in CAMERAS]
TRANSPORT_PROFILE_VARIABLES = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")


def _flag(context, name: str) -> bool:
    return LaunchConfiguration(name).perform(context).strip().lower() in ("true", "1", "yes")


def _monitor_node(context):
    """The monitor lifecycle node; `device` is passed only when given, so the file's value holds
    otherwise. `autostart` is the node's own parameter: it takes itself to `active` at start-up."""
    overrides = {"use_sim_time": _flag(context, "use_sim_time"), "autostart": _flag(context, "autostart")}
    device = LaunchConfiguration("device").perform(context)
    if device:
        overrides["device"] = device
    return [
        LifecycleNode(
            package=PACKAGE,
            executable=EXECUTABLE,
            name=NODE_NAME,
            namespace=LaunchConfiguration("namespace"),
            parameters=[LaunchConfiguration("params_file"), overrides],
            ros_arguments=["--log-level", LaunchConfiguration("log_level").perform(context)],
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
            *transport,
            DeclareLaunchArgument(
                "params_file",
                default_value=PathJoinSubstitution([share, "config", "monitor.yaml"]),
                description="ROS 2 parameter file of the monitor node",
            ),
            DeclareLaunchArgument(
                "autostart",
                default_value="true",
                description="Configure and activate the monitor at start-up (false: a lifecycle "
                "manager does)",
            ),
            DeclareLaunchArgument(
                "log_level",
                default_value="info",
                description="Log level of the monitor node: debug, info, warn, error or fatal",
            ),
            DeclareLaunchArgument(
                "use_sim_time",
                default_value="false",
                description="Use /clock (true when replaying a bag with `ros2 bag play --clock` or "
                "`ros2-lmd play --clock`)",
            ),
            DeclareLaunchArgument(
                "device",
                default_value="",
                description="Inference device: auto, cuda or cpu (empty: the params_file value)",
            ),
            DeclareLaunchArgument("namespace", default_value="", description="Namespace of the monitor node"),
            DeclareLaunchArgument(
                "rviz", default_value="false", description="Also start rviz2 with config/monitor.rviz"
            ),
            OpaqueFunction(function=_monitor_node),
            Node(
                package="rviz2",
                executable="rviz2",
                name="lmd_rviz",
                arguments=["-d", PathJoinSubstitution([share, "config", "monitor.rviz"])],
                parameters=[{"use_sim_time": LaunchConfiguration("use_sim_time")}],
                remappings=RVIZ_CAMERA_REMAPS,
                condition=IfCondition(LaunchConfiguration("rviz")),
                output="screen",
            ),
        ]
    )
