"""The project's ROS message definitions as text (msg/*.msg), without ROS: offline tools register
them with rosbags to read and write bags holding ros2_lmd messages, with no colcon build.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = "ros2_lmd"
MESSAGE_NAMES = ("Detection", "DecompositionSummary", "Alert", "AlertArray", "Incident")


def message_definitions_dir() -> Path:
    """The directory holding the .msg files, wherever the package was installed from."""
    package = Path(__file__).resolve().parent.parent  # ros2_lmd/
    candidates = (
        package / "msg_defs",  # pip install (package data) and the colcon install tree
        package.parent / "msg",  # source checkout (pip install -e)
    )
    for candidate in candidates:
        if all((candidate / f"{name}.msg").is_file() for name in MESSAGE_NAMES):
            return candidate
    raise FileNotFoundError(f"ros2_lmd message definitions not found in {[str(c) for c in candidates]}")


def message_definitions() -> dict[str, str]:
    """`ros2_lmd/msg/<Name>` -> the .msg text, for every project message."""
    directory = message_definitions_dir()
    return {f"{PACKAGE}/msg/{name}": (directory / f"{name}.msg").read_text() for name in MESSAGE_NAMES}


def register_with_rosbags(typestore) -> None:  # a rosbags.typesys Typestore
    """Register the project's messages with a rosbags typestore (e.g. Stores.ROS2_JAZZY)."""
    from rosbags.typesys import get_types_from_msg

    types = {}
    for name, text in message_definitions().items():
        types.update(get_types_from_msg(text, name))
    typestore.register(types)
