"""Reading a bag's messages back as tests compare them: raw CDR bytes by (topic, log time), and
decoded messages of one topic, in log-time order."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from ros2_lmd.messages.types import project_typestore
from ros2_lmd.replay.bag import resolve_bag


def raw_messages(bag: str | Path) -> dict[tuple[str, int], bytes]:
    """(topic, log time ns) -> the message's serialised bytes, for every message of `bag`."""
    from rosbags.rosbag2 import Reader

    with Reader(resolve_bag(bag)) as reader:
        return {(c.topic, t): bytes(raw) for c, t, raw in reader.messages()}


@cache
def _typestore() -> Any:
    return project_typestore()  # building one takes a noticeable fraction of a second


def decoded(bag: str | Path, topic: str) -> list[tuple[int, Any]]:
    """(log time ns, message) of every message on `topic`."""
    from rosbags.rosbag2 import Reader

    typestore = _typestore()
    with Reader(resolve_bag(bag)) as reader:
        connections = [c for c in reader.connections if c.topic == topic]
        return [(t, typestore.deserialize_cdr(raw, c.msgtype)) for c, t, raw in reader.messages(connections)]


def stamp_ns(message: Any) -> int:
    return int(message.header.stamp.sec) * 10**9 + int(message.header.stamp.nanosec)


def bag_start_ns(bag: str | Path) -> int:
    from rosbags.rosbag2 import Reader

    with Reader(resolve_bag(bag)) as reader:
        return int(reader.start_time)
