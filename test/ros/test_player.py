"""`ros2-lmd play` (ros2_lmd.ros.player): a rosbag2 written with rosbags (sqlite3 and MCAP) is
published over the real middleware, byte for byte, with each topic's QoS, to a subscriber in the
same process (random ROS_DOMAIN_ID)."""

from __future__ import annotations

import random
import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy is not importable: run `make test`")
pytest.importorskip("tf2_msgs", reason="tf2_msgs is not built: run `make bootstrap`")

from rclpy.context import Context  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import QoSProfile, QoSReliabilityPolicy  # noqa: E402
from rosbags.rosbag2 import StoragePlugin, Writer  # noqa: E402

from ros2_lmd.messages.types import rosbags_types  # noqa: E402
from ros2_lmd.ros.player import BagPlayer, message_class, qos_for  # noqa: E402
from ros2_lmd.sensors.frame import LIDAR_FIELDS  # noqa: E402
from ros2_lmd.sensors.pointcloud2 import pointcloud2_layout  # noqa: E402

HANG_GUARD_S = 60.0


def _write_bag(path, storage) -> dict[str, list[bytes]]:
    """A small bag: /tf_static once, three LiDAR sweeps, two strings. Returns topic -> CDR."""
    types = rosbags_types()
    store = types.typestore
    written: dict[str, list[bytes]] = {"/tf_static": [], "/lidar_top": [], "/chatter": []}
    with Writer(path, version=8, storage_plugin=storage) as writer:
        connections = {
            "/tf_static": writer.add_connection("/tf_static", "tf2_msgs/msg/TFMessage", typestore=store),
            "/lidar_top": writer.add_connection("/lidar_top", "sensor_msgs/msg/PointCloud2", typestore=store),
            "/chatter": writer.add_connection("/chatter", "std_msgs/msg/String", typestore=store),
        }

        def add(topic, message, t_ns):
            raw = bytes(store.serialize_cdr(message, message.__msgtype__))
            writer.write(connections[topic], t_ns, raw)
            written[topic].append(raw)

        transform = types.new(
            "geometry_msgs/msg/TransformStamped",
            child_frame_id="lidar_top",
            header=types.new("std_msgs/msg/Header", frame_id="base_link"),
        )
        add("/tf_static", types.new("tf2_msgs/msg/TFMessage", transforms=[transform]), 1_000)
        for i in range(3):
            points = np.full((5, len(LIDAR_FIELDS)), float(i), np.float32)
            fields, step, data = pointcloud2_layout(points, LIDAR_FIELDS)
            cloud = types.new(
                "sensor_msgs/msg/PointCloud2",
                height=1,
                width=5,
                point_step=step,
                row_step=step * 5,
                data=np.frombuffer(data, np.uint8),
                is_dense=True,
                fields=[
                    types.new("sensor_msgs/msg/PointField", name=n, offset=o, datatype=d, count=c)
                    for n, o, d, c in fields
                ],
            )
            add("/lidar_top", cloud, 2_000 + i * 50_000_000)
        for i in range(2):
            add("/chatter", types.new("std_msgs/msg/String", data=f"hello {i}"), 3_000 + i)
    return written


@pytest.fixture
def ros_context():
    context = Context()
    rclpy.init(context=context, domain_id=random.randint(100, 199))
    node = rclpy.create_node("lmd_play_probe", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    yield context, node
    executor.shutdown()
    spinner.join()
    node.destroy_node()
    rclpy.shutdown(context=context)


def _wait(condition, what):
    deadline = time.monotonic() + HANG_GUARD_S
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.01)


@pytest.mark.parametrize("storage", [StoragePlugin.SQLITE3, StoragePlugin.MCAP], ids=["sqlite3", "mcap"])
def test_play_publishes_every_message_unchanged(tmp_path, ros_context, storage):
    from rclpy.serialization import serialize_message

    context, probe = ros_context
    bag = tmp_path / "bag"
    written = _write_bag(bag, storage)
    received: dict[str, list[bytes]] = {topic: [] for topic in written}
    types = {
        "/tf_static": "tf2_msgs/msg/TFMessage",
        "/lidar_top": "sensor_msgs/msg/PointCloud2",
        "/chatter": "std_msgs/msg/String",
    }
    for topic, type_name in types.items():
        probe.create_subscription(
            message_class(type_name),
            topic,
            lambda m, t=topic: received[t].append(bytes(serialize_message(m))),
            qos_for(topic, type_name),
            raw=False,
        )
    player_node = rclpy.create_node("lmd_player_test", context=context)
    player = BagPlayer(bag, player_node, rate=0.0)
    try:
        _wait(lambda: all(p.get_subscription_count() for p in player.publishers.values()), "discovery")
        assert player.play() == 6
        _wait(lambda: all(len(received[t]) == len(written[t]) for t in written), "all messages")
    finally:
        player.close()
        player_node.destroy_node()
    for topic in written:
        # rclpy re-serialises with uninitialised padding: compare the deserialised messages.
        store = rosbags_types().typestore
        assert [repr(store.deserialize_cdr(r, types[topic])) for r in received[topic]] == [
            repr(store.deserialize_cdr(w, types[topic])) for w in written[topic]
        ], topic
    assert qos_for("/tf_static", types["/tf_static"]).durability.name == "TRANSIENT_LOCAL"
    assert qos_for("/lidar_top", types["/lidar_top"]).reliability.name == "BEST_EFFORT"


def test_play_selects_topics_and_names_unknown_ones(tmp_path, ros_context):
    context, _ = ros_context
    bag = tmp_path / "bag"
    _write_bag(bag, StoragePlugin.SQLITE3)
    node = rclpy.create_node("lmd_player_select", context=context)
    try:
        player = BagPlayer(bag, node, topics=["/chatter"], rate=0.0)
        assert set(player.publishers) == {"/chatter"} and player.play() == 2
        player.close()
        with pytest.raises(ValueError, match="/nope"):
            BagPlayer(bag, node, topics=["/nope"])
    finally:
        node.destroy_node()


def test_play_keeps_the_recorded_spacing_scaled_by_rate(tmp_path, ros_context):
    context, _ = ros_context
    bag = tmp_path / "bag"
    _write_bag(bag, StoragePlugin.SQLITE3)  # LiDAR sweeps 50 ms apart
    node = rclpy.create_node("lmd_player_rate", context=context)
    stamps = []
    try:
        player = BagPlayer(bag, node, topics=["/lidar_top"], rate=0.5)
        publisher = player.publishers["/lidar_top"]
        original = publisher.publish
        publisher.publish = lambda raw: (stamps.append(time.monotonic()), original(raw))
        started = time.monotonic()
        player.play()
        player.close()
    finally:
        node.destroy_node()
    # At half speed the i-th sweep (50 ms apart in the bag) is published no earlier than i * 100 ms
    # after the start: a lower bound, not a timing limit (a loaded machine may publish later, and
    # then catch up, so gaps between consecutive messages prove nothing).
    assert len(stamps) == 3 and all(t - started >= 0.1 * i - 1e-3 for i, t in enumerate(stamps))


def test_play_remaps_topics_and_applies_qos_overrides(tmp_path, ros_context):
    from ros2_lmd.ros.player import load_qos_overrides, parse_remaps

    context, _ = ros_context
    bag = tmp_path / "bag"
    _write_bag(bag, StoragePlugin.MCAP)
    overrides_file = tmp_path / "qos.yaml"
    overrides_file.write_text(
        "/sensing/lidar:\n  reliability: reliable\n  durability: transient_local\n  depth: 3\n"
    )
    node = rclpy.create_node("lmd_player_remap", context=context)
    try:
        player = BagPlayer(
            bag,
            node,
            rate=0.0,
            remap=parse_remaps(["/lidar_top:=/sensing/lidar"]),
            qos_overrides=load_qos_overrides(overrides_file),
        )
        lidar = player.publishers["/lidar_top"]
        assert lidar.topic_name == "/sensing/lidar"
        qos = lidar.qos_profile
        assert (qos.reliability.name, qos.durability.name, qos.depth) == ("RELIABLE", "TRANSIENT_LOCAL", 3)
        assert player.publishers["/chatter"].topic_name == "/chatter"  # not remapped: unchanged
        assert player.play() == 6
        player.close()
        with pytest.raises(ValueError, match=r"/nope.*not in the bag"):
            BagPlayer(bag, node, remap={"/nope": "/x"})
    finally:
        node.destroy_node()


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("/a:\n  reliability: sometimes\n", r"/a: reliability 'sometimes' is not one of"),
        ("/a:\n  depth: -1\n", r"/a: depth must be an integer >= 0"),
        ("/a:\n  deadline: 3\n", r"/a: unknown field\(s\) \['deadline'\]"),
        ("- /a\n", "expected a mapping topic -> QoS fields"),
    ],
)
def test_bad_qos_overrides_are_named(tmp_path, text, named):
    from ros2_lmd.ros.player import load_qos_overrides

    path = tmp_path / "qos.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=named):
        load_qos_overrides(path)


@pytest.mark.parametrize("remap", ["/a", "a:=/b", "/a:=b", "/a:=/b:=/c"])
def test_bad_remaps_are_named(remap):
    from ros2_lmd.ros.player import parse_remaps

    with pytest.raises(ValueError, match="expected /old_topic:=/new_topic"):
        parse_remaps([remap])


def test_play_clock_publishes_the_bag_time_being_played(tmp_path, ros_context):
    """/clock follows the bag's time: never behind a message already published, never ahead of the
    last message, increasing."""
    context, probe = ros_context
    bag = tmp_path / "bag"
    _write_bag(bag, StoragePlugin.SQLITE3)  # messages from 1 us to 100 ms of bag time
    clocks = []
    probe.create_subscription(
        message_class("rosgraph_msgs/msg/Clock"),
        "/clock",
        lambda m: clocks.append(m.clock.sec * 10**9 + m.clock.nanosec),
        QoSProfile(depth=100, reliability=QoSReliabilityPolicy.RELIABLE),
    )
    node = rclpy.create_node("lmd_player_clock", context=context)
    try:
        player = BagPlayer(bag, node, rate=1.0, clock_hz=200.0)
        _wait(lambda: player.clock_publisher.get_subscription_count() > 0, "discovery of /clock")
        assert player.play() == 6
        player.close()
        _wait(lambda: clocks and clocks[-1] == 2_000 + 2 * 50_000_000, "the clock of the last sweep")
    finally:
        node.destroy_node()
    assert clocks == sorted(clocks) and clocks[0] >= 1_000
    assert len(clocks) >= 6  # one with each message at least, more while waiting between them


def test_play_waits_for_a_late_subscriber_before_the_first_message(tmp_path, ros_context):
    """`play` waits (bounded) until its topics have subscribers: a monitor discovered late must
    still get the drive from its first message (with a fixed delay, 66 of 80 frames arrived)."""
    from ros2_lmd.ros.player import play

    context, probe = ros_context
    bag = tmp_path / "bag"
    written = _write_bag(bag, StoragePlugin.MCAP)
    received: list[int] = []
    outcome: dict[str, int] = {}
    domain = context.get_domain_id()
    thread = threading.Thread(
        target=lambda: outcome.update(
            count=play(bag, ["/lidar_top"], rate=1.0, delay_s=0.0, domain_id=domain)
        ),
        daemon=True,
    )
    thread.start()
    time.sleep(1.5)  # the subscriber appears well after the player is ready
    probe.create_subscription(
        message_class("sensor_msgs/msg/PointCloud2"),
        "/lidar_top",
        lambda m: received.append(m.width),
        QoSProfile(depth=10, reliability=QoSReliabilityPolicy.BEST_EFFORT),
    )
    thread.join(timeout=HANG_GUARD_S)
    assert outcome == {"count": len(written["/lidar_top"])}
    _wait(lambda: len(received) == len(written["/lidar_top"]), "every sweep, the first included")
