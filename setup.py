"""pip install of the ros2_lmd library and the `ros2-lmd` command (see README.md). Building the
ROS 2 package (generated messages, node executable, launch and config files) is CMakeLists.txt's
job, through colcon; tools/bootstrap.sh does both for development.

The version has one source, package.xml (ROS tooling reads it there); `ros2_lmd.__version__` repeats
it, and test/packaging/test_package.py checks that the two agree."""

import xml.etree.ElementTree as ET
from pathlib import Path

from setuptools import find_packages, setup


def package_xml_version() -> str:
    """The <version> of package.xml beside this file."""
    version = ET.parse(Path(__file__).resolve().parent / "package.xml").getroot().findtext("version")
    if not version or not version.strip():
        raise SystemExit("setup.py: package.xml has no <version>")
    return version.strip()


setup(
    name="ros2_lmd",
    version=package_xml_version(),
    description="Runtime monitor for camera-radar-LiDAR BEV fusion with Layer-Wise Modality Decomposition",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["ros2_lmd", "ros2_lmd.*"]) + ["ros2_lmd.msg_defs"],
    # The .msg files ship as package data (ros2_lmd/msg_defs/*.msg) so offline tools can register
    # them with rosbags without a colcon build: see ros2_lmd/messages/definitions.py.
    package_dir={"ros2_lmd.msg_defs": "msg"},
    package_data={
        "ros2_lmd.msg_defs": ["*.msg"],
        # the trained default models (small safetensors files and their JSON configs)
        "ros2_lmd.models": ["weights/*.safetensors", "weights/*.json", "weights/*.md"],
    },
    # Ranges, not pins: requirements.txt pins the development environment. Install torch first
    # where a specific build is wanted (pip would otherwise pick its default one).
    install_requires=[
        "torch>=2.1",
        "numpy>=1.24",
        "scipy>=1.10",
        "safetensors>=0.4",
        "opencv-python-headless>=4.8",
        "rosbags>=0.10",
        "mcap>=1.1",
        "tqdm>=4.60",
        "matplotlib>=3.7",
        # reads an image's size from its header before decoding it (decode-bomb check)
        "Pillow>=8.0",
        "PyYAML>=6.0",
    ],
    extras_require={"test": ["pytest>=8", "hypothesis>=6"]},
    entry_points={"console_scripts": ["ros2-lmd = ros2_lmd.cli:main"]},
)
