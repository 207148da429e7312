"""`ros2-lmd play BAG`: a stand-in for `ros2 bag play` where rosbag2_py is not installable (the
pip-wheel ROS 2). Reads a rosbag2 (MCAP or sqlite3) with rosbags and publishes each message's CDR
bytes unchanged through an rclpy publisher of its type, keeping the recorded spacing (scaled by
`rate`; 0 = as fast as possible). QoS: /tf_static transient-local reliable (late subscribers get
the extrinsics), sensor_msgs sensor topics sensor-data QoS, everything else reliable.
Besides ros2_lmd.ros.node, this is the one module that imports rclpy.

SIGINT and SIGTERM reach rclpy's signal handler, which shuts the context down at any moment, also
between the stop check and a publish: the player waits in short slices, checks the context after
each, and takes a failed publish on a context that is no longer valid as the stop it is, so a
stopped player ends with its count, not an RCLError traceback.
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

from ros2_lmd.ros.transport import use_shipped_transport

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
WAIT_SLICE_S = 0.05  # longest wait between two checks of the stop condition


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
        """Publish the messages (again and again with `loop`); returns how many were published when
        the bag ends or `should_stop()` turns true (checked at least every WAIT_SLICE_S)."""
        published = 0
        while True:
            first_stamp = None
            started = time.monotonic()
            for connection, timestamp_ns, rawdata in self._reader.messages(self.connections):
                if first_stamp is None:
                    first_stamp = timestamp_ns
                if self.rate > 0:
                    due = started + (timestamp_ns - first_stamp) * 1e-9 / self.rate
                    if not wait_until(due, should_stop):
                        return published
                elif should_stop():
                    return published
                try:
                    self.publishers[connection.topic].publish(bytes(rawdata))
                except Exception:
                    if should_stop():  # the context was shut down (a signal) after the last check
                        return published
                    raise
                published += 1
            if not self.loop or first_stamp is None:
                return published


def wait_until(due: float, should_stop: Callable[[], bool]) -> bool:
    """Sleep until time.monotonic() reaches `due`, in slices; False as soon as `should_stop()`."""
    while not should_stop():
        left = due - time.monotonic()
        if left <= 0:
            return True
        time.sleep(min(left, WAIT_SLICE_S))
    return False


def play(
    bag: str | Path,
    topics: Sequence[str] | None = None,
    rate: float = 1.0,
    loop: bool = False,
    delay_s: float = 0.5,
    domain_id: int | None = None,
    context: Context | None = None,
    on_start: Callable[[BagPlayer], None] | None = None,
) -> int:
    """Play a bag in a private context (domain from ROS_DOMAIN_ID unless given); returns the
    number of messages published. `delay_s` leaves time for subscribers to be discovered;
    `on_start(player)` is called once the publishers exist, before it."""
    own_context = context is None
    if own_context:
        use_shipped_transport()
        context = Context()
        rclpy.init(context=context, domain_id=domain_id)
    node = rclpy.create_node(f"lmd_player_{random.randint(0, 99999)}", context=context)
    player = None
    try:
        player = BagPlayer(bag, node, topics, rate, loop)
        if on_start is not None:
            on_start(player)
        stopped = lambda: not context.ok()  # noqa: E731 - SIGINT/SIGTERM shut the context down
        if not wait_until(time.monotonic() + delay_s, stopped):
            return 0
        return player.play(should_stop=stopped)
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
    """The `ros2-lmd play` job: exit code 0 after the bag (or Ctrl-C, or SIGTERM), 2 for a bad
    bag/topic."""
    from rosbags.rosbag2 import ReaderError

    def announce(player: BagPlayer) -> None:
        print(f"ros2-lmd play: publishing {len(player.publishers)} topics from {bag}", flush=True)

    print(f"ros2-lmd play: {use_shipped_transport()}", file=sys.stderr, flush=True)  # before rclpy.init
    rclpy.init(args=["lmd_player", *(ros_args or [])])
    context = rclpy.get_default_context()
    try:
        count = play(bag, topics, rate, loop, delay_s, context=context, on_start=announce)
        stopped = not context.ok()
    except ReaderError as error:
        print(f"ros2-lmd play: {bag}: not a readable rosbag2 ({error})", file=sys.stderr)
        return 2
    except (ValueError, LookupError, FileNotFoundError) as error:
        print(f"ros2-lmd play: {error}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    finally:
        rclpy.try_shutdown()
    print(f"ros2-lmd play: {'stopped after' if stopped else 'published'} {count} messages from {bag}")
    return 0
