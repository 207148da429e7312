"""`ros2-lmd play BAG`: a stand-in for `ros2 bag play` where rosbag2_py is not installable (the
pip-wheel ROS 2). Reads a rosbag2 (MCAP or sqlite3) with rosbags and publishes each message's CDR
bytes unchanged through an rclpy publisher of its type, keeping the recorded spacing (scaled by
`rate`; 0 = as fast as possible). QoS: /tf_static transient-local reliable (late subscribers get
the extrinsics), sensor_msgs sensor topics sensor-data QoS, everything else reliable, unless a
rosbag2-style QoS overrides file says otherwise. As `ros2 bag play`: `--clock` publishes /clock
with the bag time being played (for nodes with use_sim_time), `--remap old:=new` renames topics.
Before the first message it waits (at most SUBSCRIBER_WAIT_S) until every topic has a subscriber:
what is published before a subscription matched is lost.

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
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import rclpy
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException
from rclpy.qos import (
    QoSDurabilityPolicy,
    QoSHistoryPolicy,
    QoSProfile,
    QoSReliabilityPolicy,
    qos_profile_sensor_data,
)

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
# How long `play` waits for every topic to have a subscriber before the first message: discovery
# of a node's 19 sensor subscriptions took over a second on a loaded machine, and what is published
# before a subscription matched is lost (66 of 80 frames reached the node with a fixed 0.5 s delay).
SUBSCRIBER_WAIT_S = 10.0


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


# rosbag2's QoS override keys and the values each takes (ros2 bag play --qos-profile-overrides-path)
QOS_POLICIES = {
    "history": {"keep_last": QoSHistoryPolicy.KEEP_LAST, "keep_all": QoSHistoryPolicy.KEEP_ALL},
    "reliability": {
        "reliable": QoSReliabilityPolicy.RELIABLE,
        "best_effort": QoSReliabilityPolicy.BEST_EFFORT,
    },
    "durability": {
        "volatile": QoSDurabilityPolicy.VOLATILE,
        "transient_local": QoSDurabilityPolicy.TRANSIENT_LOCAL,
    },
}


def load_qos_overrides(path: str | Path) -> dict[str, QoSProfile]:
    """topic -> QoSProfile from a rosbag2-style overrides YAML (`/topic: {history: keep_last, depth:
    10, reliability: reliable, durability: transient_local}`); unset fields keep ROS defaults
    (keep_last, depth 10, reliable, volatile). ValueError naming the file, topic and field."""
    import yaml

    path = Path(path)
    try:
        content = yaml.safe_load(path.read_text())
    except OSError as error:
        raise ValueError(f"QoS overrides {path}: {error.strerror or error}") from None
    except yaml.YAMLError as error:
        raise ValueError(f"QoS overrides {path}: not YAML ({error})") from None
    if not isinstance(content, dict):
        raise ValueError(f"QoS overrides {path}: expected a mapping topic -> QoS fields")
    profiles = {}
    for topic, fields in content.items():
        if not isinstance(fields, dict):
            raise ValueError(f"QoS overrides {path}: {topic}: expected a mapping of QoS fields")
        unknown = sorted(set(fields) - {*QOS_POLICIES, "depth"})
        if unknown:
            raise ValueError(
                f"QoS overrides {path}: {topic}: unknown field(s) {unknown} "
                f"(known: {sorted({*QOS_POLICIES, 'depth'})})"
            )
        profile = QoSProfile(depth=10)
        for name, choices in QOS_POLICIES.items():
            if name in fields:
                value = str(fields[name]).lower()
                if value not in choices:
                    raise ValueError(
                        f"QoS overrides {path}: {topic}: {name} {fields[name]!r} is not one of "
                        f"{sorted(choices)}"
                    )
                setattr(profile, name, choices[value])
        if "depth" in fields:
            depth = fields["depth"]
            if not isinstance(depth, int) or isinstance(depth, bool) or depth < 0:
                raise ValueError(
                    f"QoS overrides {path}: {topic}: depth must be an integer >= 0, got {depth!r}"
                )
            profile.depth = depth
        profiles[str(topic)] = profile
    return profiles


def parse_remaps(remaps: Sequence[str]) -> dict[str, str]:
    """`old:=new` pairs (as `ros2 bag play --remap`) -> {old: new}; ValueError naming a bad one."""
    result = {}
    for remap in remaps:
        old, sep, new = remap.partition(":=")
        if not sep or not old.startswith("/") or not new.startswith("/") or ":=" in new:
            raise ValueError(f"--remap {remap!r}: expected /old_topic:=/new_topic")
        result[old] = new
    return result


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
        remap: Mapping[str, str] | None = None,
        qos_overrides: Mapping[str, QoSProfile] | None = None,
        clock_hz: float = 0.0,
    ) -> None:
        """`remap`: recorded topic -> topic to publish on; `qos_overrides`: published topic -> QoS;
        `clock_hz`: publish /clock this often with the bag time being played (0: no clock)."""
        from rosbags.rosbag2 import Reader

        from ros2_lmd.replay.bag import resolve_bag

        if rate < 0:
            raise ValueError(f"rate must be >= 0 (0: as fast as possible), got {rate}")
        if clock_hz < 0:
            raise ValueError(f"clock rate must be >= 0 (0: no /clock), got {clock_hz}")
        self.bag = resolve_bag(bag)
        self.node = node
        self.rate = rate
        self.loop = loop
        self.remap = dict(remap or {})
        self.clock_period = 1.0 / clock_hz if clock_hz > 0 else None
        self._next_clock = 0.0
        self._last_clock_ns = -1
        self.clock_publisher = None
        self._reader = Reader(self.bag)
        self._reader.open()
        wanted = set(topics or ())
        known = {c.topic for c in self._reader.connections}
        unknown = sorted(wanted - known)
        if unknown:
            self._reader.close()
            raise ValueError(f"{self.bag}: no topics {unknown} in the bag (it has {sorted(known)})")
        unknown = sorted(set(self.remap) - known)
        if unknown:
            self._reader.close()
            raise ValueError(
                f"{self.bag}: --remap names topics {unknown} not in the bag (it has {sorted(known)})"
            )
        self.connections = [c for c in self._reader.connections if not wanted or c.topic in wanted]
        overrides = dict(qos_overrides or {})
        self.publishers: dict[str, Any] = {}  # recorded topic -> publisher (on the remapped topic)
        for connection in self.connections:
            if connection.topic not in self.publishers:
                topic = self.remap.get(connection.topic, connection.topic)
                qos = overrides.get(topic) or qos_for(topic, connection.msgtype, reliable_sensors)
                self.publishers[connection.topic] = node.create_publisher(
                    message_class(connection.msgtype), topic, qos
                )
        if self.clock_period is not None:
            # rclpy's time source subscribes best effort, depth 1: a reliable publisher serves it
            self.clock_publisher = node.create_publisher(
                message_class("rosgraph_msgs/msg/Clock"), "/clock", QoSProfile(depth=1)
            )

    def close(self) -> None:
        self._reader.close()

    def wait_for_subscribers(
        self, timeout_s: float, should_stop: Callable[[], bool] = lambda: False
    ) -> list[str]:
        """Wait until every published topic has a subscriber, at most `timeout_s` (or until
        `should_stop()`); returns the topics still without one (none once stopped)."""
        deadline = time.monotonic() + timeout_s
        while not should_stop():
            try:
                unmatched = [
                    self.remap.get(topic, topic)
                    for topic, publisher in self.publishers.items()
                    if publisher.get_subscription_count() == 0
                ]
            except Exception:
                if should_stop():  # the context was shut down (a signal) after the last check
                    break
                raise
            if not unmatched or time.monotonic() >= deadline:
                return unmatched
            time.sleep(WAIT_SLICE_S)
        return []

    def play(self, should_stop: Callable[[], bool] = lambda: False) -> int:
        """Publish the messages (again and again with `loop`); returns how many were published when
        the bag ends or `should_stop()` turns true (checked at least every WAIT_SLICE_S)."""
        published = 0
        while True:
            first_stamp = None
            started = time.monotonic()
            self._last_clock_ns = -1  # a loop starts the bag's time again: /clock jumps back
            for connection, timestamp_ns, rawdata in self._reader.messages(self.connections):
                if first_stamp is None:
                    first_stamp = timestamp_ns
                if self.rate > 0:
                    due = started + (timestamp_ns - first_stamp) * 1e-9 / self.rate

                    def tick(
                        first: int = first_stamp, start: float = started, until: int = timestamp_ns
                    ) -> None:
                        # the bag time now, never past the message being waited for
                        played = first + int((time.monotonic() - start) * self.rate * 1e9)
                        self._publish_clock(min(played, until))

                    if not wait_until(
                        due, should_stop, tick if self.clock_publisher else None, self.clock_period
                    ):
                        return published
                elif should_stop():
                    return published
                self._publish_clock(timestamp_ns, force=True)
                try:
                    self.publishers[connection.topic].publish(bytes(rawdata))
                except Exception:
                    if should_stop():  # the context was shut down (a signal) after the last check
                        return published
                    raise
                published += 1
            if not self.loop or first_stamp is None:
                return published

    def _publish_clock(self, bag_time_ns: int, force: bool = False) -> None:
        """/clock = the bag time being played, at most every clock period (and at each message,
        so a subscriber's clock never lags the data it receives by more than a period)."""
        if self.clock_publisher is None or bag_time_ns <= self._last_clock_ns:
            return  # /clock never goes back, nor repeats itself
        now = time.monotonic()
        if not force and now < self._next_clock:
            return
        self._next_clock = now + self.clock_period
        self._last_clock_ns = bag_time_ns
        clock = message_class("rosgraph_msgs/msg/Clock")()
        clock.clock.sec, clock.clock.nanosec = divmod(int(bag_time_ns), 1_000_000_000)
        self.clock_publisher.publish(clock)


def wait_until(
    due: float,
    should_stop: Callable[[], bool],
    on_slice: Callable[[], None] | None = None,
    slice_s: float | None = None,
) -> bool:
    """Sleep until time.monotonic() reaches `due`, in slices (calling `on_slice` after each); False
    as soon as `should_stop()`."""
    step = min(WAIT_SLICE_S, slice_s) if slice_s else WAIT_SLICE_S
    while not should_stop():
        if on_slice is not None:
            on_slice()
        left = due - time.monotonic()
        if left <= 0:
            return True
        time.sleep(min(left, step))
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
    remap: Mapping[str, str] | None = None,
    qos_overrides: Mapping[str, QoSProfile] | None = None,
    clock_hz: float = 0.0,
    subscriber_wait_s: float = SUBSCRIBER_WAIT_S,
) -> int:
    """Play a bag in a private context (domain from ROS_DOMAIN_ID unless given); returns the
    number of messages published. Before the first message it waits until every topic has a
    subscriber, at most `subscriber_wait_s` (then it warns, naming the topics without one, and
    plays anyway), and then `delay_s` more (the subscribers' side of discovery);
    `on_start(player)` is called once the publishers exist, before both."""
    own_context = context is None
    if own_context:
        use_shipped_transport()
        context = Context()
        rclpy.init(context=context, domain_id=domain_id)
    node = rclpy.create_node(f"lmd_player_{random.randint(0, 99999)}", context=context)
    player = None
    try:
        player = BagPlayer(
            bag, node, topics, rate, loop, remap=remap, qos_overrides=qos_overrides, clock_hz=clock_hz
        )
        if on_start is not None:
            on_start(player)
        stopped = lambda: not context.ok()  # noqa: E731 - SIGINT/SIGTERM shut the context down
        unmatched = player.wait_for_subscribers(subscriber_wait_s, stopped)
        if unmatched and not stopped():
            node.get_logger().warning(
                f"no subscriber after {subscriber_wait_s:g} s on {len(unmatched)} of "
                f"{len(player.publishers)} topics ({', '.join(sorted(unmatched))}): playing anyway"
            )
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
    remaps: Sequence[str] = (),
    qos_overrides_path: str | None = None,
    clock_hz: float = 0.0,
) -> int:
    """The `ros2-lmd play` job: exit code 0 after the bag (or Ctrl-C, or SIGTERM), 2 for a bad
    bag/topic/remap/QoS overrides file."""
    from rosbags.rosbag2 import ReaderError

    def announce(player: BagPlayer) -> None:
        print(f"ros2-lmd play: publishing {len(player.publishers)} topics from {bag}", flush=True)

    try:
        remap = parse_remaps(remaps)
        overrides = load_qos_overrides(qos_overrides_path) if qos_overrides_path else {}
    except ValueError as error:
        print(f"ros2-lmd play: {error}", file=sys.stderr)
        return 2
    print(f"ros2-lmd play: {use_shipped_transport()}", file=sys.stderr, flush=True)  # before rclpy.init
    rclpy.init(args=["lmd_player", *(ros_args or [])])
    context = rclpy.get_default_context()
    try:
        count = play(
            bag,
            topics,
            rate,
            loop,
            delay_s,
            context=context,
            on_start=announce,
            remap=remap,
            qos_overrides=overrides,
            clock_hz=clock_hz,
        )
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
