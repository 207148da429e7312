"""The shipped middleware set-up (ros2_lmd/ros/transport.py, config/fastdds_shm.xml): Fast DDS shared
memory with a segment that holds the rig's largest messages, made the default of the monitor's,
the player's and the demo's processes unless the user chose otherwise, and set by the launch file."""

from __future__ import annotations

import ast
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ros2_lmd.ros.transport import PROFILE_VARIABLES, shipped_profile, use_shipped_transport

REPO = Path(__file__).resolve().parents[2]
NS = {"f": "http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles"}
LIDAR_SWEEP_BYTES = 560_000  # the simulator's 32-beam sweep as PointCloud2 (x, y, z, intensity, float32)


def test_the_profile_gives_shared_memory_a_segment_for_many_lidar_sweeps_and_keeps_udp():
    root = ET.parse(REPO / "config" / "fastdds_shm.xml").getroot()
    transports = {
        d.findtext("f:transport_id", namespaces=NS): d for d in root.iterfind(".//f:transport_descriptor", NS)
    }
    kinds = {name: d.findtext("f:type", namespaces=NS) for name, d in transports.items()}
    assert sorted(kinds.values()) == ["SHM", "UDPv4"]
    (shm,) = [d for d in transports.values() if d.findtext("f:type", namespaces=NS) == "SHM"]
    assert int(shm.findtext("f:segment_size", namespaces=NS)) >= 16 * LIDAR_SWEEP_BYTES
    participant = root.find(".//f:participant", NS)
    assert participant.get("is_default_profile") == "true"
    used = [e.text for e in participant.iterfind(".//f:userTransports/f:transport_id", NS)]
    assert sorted(used) == sorted(transports)
    assert participant.findtext(".//f:useBuiltinTransports", namespaces=NS) == "false"


def test_the_shipped_profile_is_set_unless_the_user_chose_one_or_another_middleware():
    env: dict[str, str] = {}
    assert "shared memory" in use_shipped_transport(env)
    assert {env[name] for name in PROFILE_VARIABLES} == {str(shipped_profile())}
    assert shipped_profile().name == "fastdds_shm.xml"
    mine = {"FASTDDS_DEFAULT_PROFILES_FILE": "/etc/my_profile.xml"}
    assert "/etc/my_profile.xml" in use_shipped_transport(mine)
    assert mine == {"FASTDDS_DEFAULT_PROFILES_FILE": "/etc/my_profile.xml"}
    opted_out = {"ROS2_LMD_TRANSPORT": "default"}
    assert "defaults" in use_shipped_transport(opted_out) and opted_out == {"ROS2_LMD_TRANSPORT": "default"}
    cyclone = {"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}
    assert "left as configured" in use_shipped_transport(cyclone)
    assert cyclone == {"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}


@pytest.mark.parametrize("path", ["ros2_lmd/ros/node.py", "ros2_lmd/ros/player.py", "ros2_lmd/ros/demo.py"])
def test_every_process_entry_sets_the_transport_before_rclpy_init(path):
    source = (REPO / path).read_text()
    for init in [i for i in range(len(source)) if source.startswith("rclpy.init(", i)]:
        before = source[:init]
        function_start = before.rfind("\ndef ")
        assert "use_shipped_transport()" in before[function_start:], (path, source[function_start:init][:80])


def test_the_launch_file_sets_both_profile_variables_without_overriding_the_users():
    tree = ast.parse((REPO / "launch" / "monitor.launch.py").read_text())
    text = ast.unparse(tree)
    assert "SetEnvironmentVariable(name, EnvironmentVariable(name, default_value=profile))" in text
    assert "'fastdds_shm.xml'" in text
    for name in PROFILE_VARIABLES:
        assert f"'{name}'" in text
