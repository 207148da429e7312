"""`ros2-lmd play BAG`: a stand-in for `ros2 bag play` where rosbag2_py is not installable (the
pip-wheel ROS 2). Reads a rosbag2 (MCAP or sqlite3) with rosbags and publishes each message's CDR
bytes unchanged through an rclpy publisher of its type, keeping the recorded spacing (scaled by
`rate`; 0 = as fast as possible). QoS: /tf_static transient-local reliable (late subscribers get
the extrinsics), sensor_msgs sensor topics sensor-data QoS, everything else reliable.
Besides ros2_lmd.ros.node, this is the one module that imports rclpy.
"""

from __future__ import annotations

import importlib
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import rclpy
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException
from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy, qos_profile_sensor_data

SENSOR_TYPES = frozenset(
    {
        "sensor_msgs/msg/Image",
        "sensor_msgs/msg/CompressedImage",
        "sensor_msgs/msg/CameraInfo",
        "sensor_msgs/msg/PointCloud2",
        "sensor_msgs/msg/LaserScan",
        "sensor_msgs/msg/Imu",
    }
)
LATCHED_TOPICS = frozenset({"/tf_static"})


def message_class(type_name: str) -> type:
    """The rclpy class of `pkg/msg/Name`: rosidl_runtime_py when installed, else `<pkg>.msg`."""
    try:
        from rosidl_runtime_py.utilities import get_message
    except ImportError:
        package, _, name = type_name.split("/")
        try:
            return getattr(importlib.import_module(f"{package}.msg"), name)
        except (ImportError, AttributeError) as error:
            raise LookupError(f"message type {type_name} is not installed for rclpy: {error}") from None
    return get_message(type_name)


def qos_for(topic: str, type_name: str, reliable_sensors: bool = False) -> QoSProfile:
    """Latched /tf_static; sensor-data QoS for sensor topics (best effort, as drivers publish), or
    reliable ones where every message must arrive (a reliable publisher also serves best-effort
    subscribers)."""
    if topic in LATCHED_TOPICS:
        return QoSProfile(
            depth=100,
            reliability=QoSReliabilityPolicy.RELIABLE,
            durability=QoSDurabilityPolicy.TRANSIENT_LOCAL,
        )
    if type_name in SENSOR_TYPES:
        if not reliable_sensors:
            return qos_profile_sensor_data
        # a deep history: a slow subscriber gets every message late rather than missing some
        return QoSProfile(depth=100, reliability=QoSReliabilityPolicy.RELIABLE)
    return QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE)


class BagPlayer:
    """Publishes a bag's messages on a node it owns. `play()` returns how many were published."""

    def __init__(
        self,
        bag: str | Path,
        node: Any,
        topics: Sequence[str] | None = None,
        rate: float = 1.0,
        loop: bool = False,
        reliable_sensors: bool = False,
    ) -> None:
        from rosbags.rosbag2 import Reader

        if rate < 0:
            raise ValueError(f"rate must be >= 0 (0: as fast as possible), got {rate}")
        self.bag = Path(bag)
        self.node = node
        self.rate = rate
        self.loop = loop
        self._reader = Reader(self.bag)
        self._reader.open()
        wanted = set(topics or ())
        known = {c.topic for c in self._reader.connections}
        unknown = sorted(wanted - known)
        if unknown:
            self._reader.close()
            raise ValueError(f"{self.bag}: no topics {unknown} in the bag (it has {sorted(known)})")
        self.connections = [c for c in self._reader.connections if not wanted or c.topic in wanted]
        self.publishers: dict[str, Any] = {}
        for connection in self.connections:
            if connection.topic not in self.publishers:
                self.publishers[connection.topic] = node.create_publisher(
                    message_class(connection.msgtype),
                    connection.topic,
                    qos_for(connection.topic, connection.msgtype, reliable_sensors),
                )

    def close(self) -> None:
        self._reader.close()

    def play(self, should_stop: Callable[[], bool] = lambda: False) -> int:
        published = 0
        while True:
            first_stamp = None
            started = time.monotonic()
            for connection, timestamp_ns, rawdata in self._reader.messages(self.connections):
                if should_stop():
                    return published
                if first_stamp is None:
                    first_stamp = timestamp_ns
                if self.rate > 0:
                    due = started + (timestamp_ns - first_stamp) * 1e-9 / self.rate
                    delay = due - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                self.publishers[connection.topic].publish(bytes(rawdata))
                published += 1
            if not self.loop or first_stamp is None:
                return published


def play(
    bag: str | Path,
    topics: Sequence[str] | None = None,
    rate: float = 1.0,
    loop: bool = False,
    delay_s: float = 0.5,
    domain_id: int | None = None,
    context: Context | None = None,
) -> int:
    """Play a bag in a private context (domain from ROS_DOMAIN_ID unless given); returns the
    number of messages published. `delay_s` leaves time for subscribers to be discovered."""
    own_context = context is None
    if own_context:
        context = Context()
        rclpy.init(context=context, domain_id=domain_id)
    node = rclpy.create_node(f"lmd_player_{random.randint(0, 99999)}", context=context)
    player = None
    try:
        player = BagPlayer(bag, node, topics, rate, loop)
        time.sleep(delay_s)
        return player.play(should_stop=lambda: not context.ok())
    finally:
        if player is not None:
            player.close()
        node.destroy_node()
        if own_context:
            rclpy.try_shutdown(context=context)


def main(
    bag: str,
    topics: Sequence[str] | None = None,
    rate: float = 1.0,
    loop: bool = False,
    delay_s: float = 0.5,
    ros_args: Sequence[str] | None = None,
) -> int:
    """The `ros2-lmd play` job: exit code 0 after the bag (or Ctrl-C), 2 for a bad bag/topic."""
    from rosbags.rosbag2 import ReaderError

    rclpy.init(args=["lmd_player", *(ros_args or [])])
    context = rclpy.get_default_context()
    try:
        count = play(bag, topics, rate, loop, delay_s, context=context)
    except (ReaderError, ValueError, LookupError, FileNotFoundError) as error:
        print(f"ros2-lmd play: {error}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    finally:
        rclpy.try_shutdown()
    print(f"ros2-lmd play: published {count} messages from {bag}")
    return 0
