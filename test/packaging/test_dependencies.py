"""Every module the library imports is declared where a user's install looks for it: ROS 2 packages
and rosdep-keyed Python libraries in package.xml (rosdep install), the others in requirements.txt
(pip); and `colcon test` runs this suite (CMakeLists.txt registers it with ament_cmake_pytest)."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Import name -> where it is declared: ("package.xml", rosdep key) or ("requirements.txt", pip name).
# A module the library starts to import must be added here, and declared there.
DECLARED_AS = {
    # ROS 2 packages
    "rclpy": ("package.xml", "rclpy"),
    "rosidl_runtime_py": ("package.xml", "rclpy"),  # optional: a dependency of rclpy's tooling
    "sensor_msgs": ("package.xml", "sensor_msgs"),
    "std_msgs": ("package.xml", "std_msgs"),
    "geometry_msgs": ("package.xml", "geometry_msgs"),
    "nav_msgs": ("package.xml", "nav_msgs"),
    "builtin_interfaces": ("package.xml", "builtin_interfaces"),
    "visualization_msgs": ("package.xml", "visualization_msgs"),
    "diagnostic_msgs": ("package.xml", "diagnostic_msgs"),
    "tf2_msgs": ("package.xml", "tf2_msgs"),
    "rosgraph_msgs": ("package.xml", "rosgraph_msgs"),
    "lifecycle_msgs": ("package.xml", "rclpy"),  # rclpy.lifecycle's own messages
    "rcl_interfaces": ("package.xml", "rclpy"),
    "ament_index_python": ("package.xml", "ament_index_python"),
    "launch": ("package.xml", "launch"),
    "launch_ros": ("package.xml", "launch_ros"),
    # Python libraries with rosdep keys
    "numpy": ("package.xml", "python3-numpy"),
    "scipy": ("package.xml", "python3-scipy"),
    "yaml": ("package.xml", "python3-yaml"),
    "PIL": ("package.xml", "python3-pil"),
    "cv2": ("package.xml", "python3-opencv"),
    "tqdm": ("package.xml", "python3-tqdm"),
    "matplotlib": ("package.xml", "python3-matplotlib"),
    # without a rosdep key everywhere: pip, pinned
    "torch": ("requirements.txt", "torch"),
    "safetensors": ("requirements.txt", "safetensors"),
    "rosbags": ("requirements.txt", "rosbags"),
    "mcap": ("requirements.txt", "mcap"),
    "ray": ("requirements.txt", "ray"),  # `ros2-lmd fleet`
}


def _imported_modules() -> dict[str, list[str]]:
    """Top-level module -> files of the library (and its launch file) importing it, function-level
    imports included; the standard library and the package itself left out."""
    found: dict[str, list[str]] = {}
    files = [*sorted((REPO / "ros2_lmd").rglob("*.py")), *sorted((REPO / "launch").glob("*.py"))]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in ("ros2_lmd", "__future__"):
                    continue
                found.setdefault(top, []).append(str(path.relative_to(REPO)))
    return found


def _package_xml_keys() -> set[str]:
    root = ET.parse(REPO / "package.xml").getroot()
    return {e.text.strip() for e in root if e.tag in ("depend", "exec_depend") and e.text}


def _requirements() -> set[str]:
    names = set()
    for line in (REPO / "requirements.txt").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==", line.strip())
        if match:
            names.add(match.group(1).lower())
    return names


def test_every_named_message_package_is_declared():
    missing = _message_packages() - _package_xml_keys()
    assert not missing, f"message types of {sorted(missing)} are used but not declared in package.xml"


def test_every_imported_module_is_declared():
    imported = _imported_modules()
    unknown = {m: files[:3] for m, files in imported.items() if m not in DECLARED_AS}
    assert not unknown, f"imported but not mapped in DECLARED_AS (declare them, then map): {unknown}"
    keys, requirements = _package_xml_keys(), _requirements()
    missing = [
        f"{module} ({where}: {key}; imported in {imported[module][0]})"
        for module in imported
        for where, key in [DECLARED_AS[module]]
        if (key not in keys if where == "package.xml" else key.lower() not in requirements)
    ]
    assert not missing, f"not declared: {missing}"


def _message_packages() -> set[str]:
    """Packages of the message types the library names as "pkg/msg/Name" (messages/types.py builds
    them by name, so they appear as strings, not imports)."""
    names = set()
    for path in (REPO / "ros2_lmd").rglob("*.py"):
        names.update(re.findall(r"[\"']([a-z0-9_]+)/msg/[A-Z][A-Za-z0-9]*[\"']", path.read_text()))
    return names - {"ros2_lmd", "pkg"}  # "pkg/msg/Name": the pattern itself, in docstrings


def test_the_declarations_are_used():
    """A dependency nobody imports nor names any more is dropped from package.xml (message
    packages the .msg files use excepted)."""
    imported = set(_imported_modules())
    used_keys = {DECLARED_AS[m][1] for m in imported if DECLARED_AS.get(m, ("", ""))[0] == "package.xml"}
    used_keys |= _message_packages()
    message_dependencies = {
        "builtin_interfaces",
        "std_msgs",
        "geometry_msgs",
        "nav_msgs",
        "rosidl_default_runtime",
    }
    unused = _package_xml_keys() - used_keys - message_dependencies
    assert not unused, f"declared in package.xml but imported nowhere: {sorted(unused)}"


def test_colcon_test_runs_the_suite(tmp_path):
    """Configure the package with BUILD_TESTING=ON (as `colcon build` does by default on a ROS 2
    machine) and ask CTest what `colcon test` would run: this suite, with pytest, against the
    install prefix."""
    cmake, ctest = shutil.which("cmake"), shutil.which("ctest")
    venv = REPO / ".venv"
    if not (cmake and ctest and (venv / "share" / "ament_cmake_pytest").is_dir()):
        pytest.skip("cmake or the ROS 2 ament_cmake_pytest of .venv is missing: run `make bootstrap`")
    env = {**os.environ, "AMENT_PREFIX_PATH": str(venv), "CMAKE_PREFIX_PATH": str(venv)}
    build = tmp_path / "build"
    configure = subprocess.run(
        [
            cmake,
            "-S",
            str(REPO),
            "-B",
            str(build),
            "-DBUILD_TESTING=ON",
            f"-DPython3_EXECUTABLE={sys.executable}",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert configure.returncode == 0, configure.stderr[-2000:]
    listed = subprocess.run([ctest, "-N", "--test-dir", str(build)], capture_output=True, text=True)
    assert "ros2_lmd_pytest" in listed.stdout and "Total Tests: 1" in listed.stdout
    registered = (build / "CTestTestfile.cmake").read_text()
    assert '"-m" "pytest"' in registered and f'"{REPO / "test"}"' in registered
    assert "ROS2_LMD_INSTALL_PREFIX=" in registered
