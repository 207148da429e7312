"""Bags made from other bags for the error-path tests: a copy with some topics' messages replaced
(another type, damaged content), and the per-topic message counts and sizes of an output bag."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ros2_lmd.messages.types import rosbags_types
from ros2_lmd.replay.bag import BagWriter, ReadStats, read_messages

# (types, topic, msgtype, message) -> (msgtype, message) to write instead
Replacement = Callable[[Any, str, str, Any], tuple[str, Any]]


def rewrite_bag(source: Path, target: Path, replace: dict[str, Replacement]) -> None:
    """Copy the bag `source` to `target`, every message of a topic in `replace` replaced."""
    types = rosbags_types()
    with BagWriter(target, types.typestore) as writer:
        for topic, msgtype, stamp, message in read_messages(source, None, types.typestore, ReadStats()):
            if topic in replace:
                msgtype, message = replace[topic](types, topic, msgtype, message)
            writer.write(topic, msgtype, stamp, message, latched=topic == "/tf_static")


def as_string(types: Any, topic: str, msgtype: str, message: Any) -> tuple[str, Any]:
    """A std_msgs/String in place of the message."""
    return "std_msgs/msg/String", types.new("std_msgs/msg/String", data="not sensor data")


def tiny_image(types: Any, topic: str, msgtype: str, message: Any) -> tuple[str, Any]:
    """A 2x2 rgb8 sensor_msgs/Image with the message's header (disagrees with its CameraInfo)."""
    import numpy as np

    from ros2_lmd.sensors.image import make_image

    return "sensor_msgs/msg/Image", make_image(types, message.header, np.zeros((2, 2, 3), np.uint8))


def topic_messages(bag: Path) -> tuple[Counter[str], Counter[str]]:
    """(topic -> messages, topic -> serialised bytes) of a bag."""
    types = rosbags_types()
    counts: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    for topic, msgtype, _, message in read_messages(bag, None, types.typestore, ReadStats()):
        counts[topic] += 1
        sizes[topic] += len(types.typestore.serialize_cdr(message, msgtype))
    return counts, sizes
