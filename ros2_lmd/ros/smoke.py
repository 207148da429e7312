"""ROS 2 smoke check (`ros2-lmd smoke`): an in-process rclpy publisher and subscriber exchange one
message of each ros2_lmd type over the real middleware, and the received values must equal the
sent ones. It tells whether rclpy, the middleware and the generated messages work together.
Besides ros2_lmd.ros.node, this is the one module that imports rclpy; it is only imported on demand.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from typing import Any

import rclpy
from geometry_msgs.msg import Point32
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy

from ros2_lmd.msg import Alert, AlertArray, DecompositionSummary, Detection


def sample_detection() -> Detection:
    """A radar-only detection. Float values are exact in float32, so they survive the trip."""
    detection = Detection(id=7, area_m2=6.25, score=0.875, dominant_modality="radar", single_sensor=True)
    detection.position.x, detection.position.y = 12.5, -4.25
    detection.footprint.points = [
        Point32(x=x, y=y) for x, y in ((11.5, -5.25), (13.5, -5.25), (13.5, -3.25), (11.5, -3.25))
    ]
    detection.modalities = ["camera", "radar", "lidar"]
    detection.shares = [0.0625, 0.875, 0.0625]
    detection.supporting_modalities = ["radar"]
    return detection


def sample_messages(stamp_sec: int = 1700000000) -> dict[str, Any]:
    """One non-trivial message of each project type, keyed by type name."""
    detection = sample_detection()
    summary = DecompositionSummary(
        frame_index=42,
        conservation_error=0.0001220703125,
        latency_ms=37.5,
        frames_processed=43,
        frames_dropped=2,
    )
    summary.header.stamp.sec, summary.header.stamp.nanosec = stamp_sec, 500_000_000
    summary.header.frame_id = "base_link"
    summary.grid.resolution = 0.5
    summary.grid.width = summary.grid.height = 200
    summary.grid.origin.position.x = summary.grid.origin.position.y = -50.0
    summary.modalities = ["camera", "radar", "lidar"]
    summary.shares = [0.25, 0.5, 0.25]
    summary.present = [True, True, False]
    summary.detections = [detection]

    alert = Alert(
        kind=Alert.SINGLE_SENSOR_SUPPORT,
        severity=Alert.WARN,
        modality="radar",
        sensor="",
        message="object at (12.5, -4.2) m seen by radar alone (share 0.88)",
        has_detection=True,
        detection=detection,
    )
    alert.header = summary.header
    stale = Alert(
        kind=Alert.SENSOR_STALE,
        severity=Alert.ERROR,
        modality="camera",
        sensor="/cam_front/image_rect_compressed",
        message="no image for 0.75 s",
    )
    stale.header = summary.header
    alerts = AlertArray(header=summary.header, alerts=[alert, stale])
    return {"Detection": detection, "DecompositionSummary": summary, "Alert": alert, "AlertArray": alerts}


def exchange(
    messages: dict[str, Any], timeout_s: float = 10.0, domain_id: int | None = None
) -> dict[str, Any]:
    """Publish each message on its own topic and return what a subscriber in the same process
    received, keyed like `messages` (missing keys: nothing arrived within the timeout).

    A private context and a random domain id (unless given) keep concurrent runs apart.
    """
    if domain_id is None:
        domain_id = random.randint(100, 199)
    context = Context()
    rclpy.init(context=context, domain_id=domain_id)
    received: dict[str, Any] = {}
    try:
        node = rclpy.create_node(f"lmd_smoke_{os.getpid()}", context=context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        qos = QoSProfile(
            depth=1, reliability=QoSReliabilityPolicy.RELIABLE, durability=QoSDurabilityPolicy.TRANSIENT_LOCAL
        )
        publishers = {}
        for name, message in messages.items():
            topic = f"lmd_smoke_{os.getpid()}/{name.lower()}"
            publishers[name] = node.create_publisher(type(message), topic, qos)
            node.create_subscription(type(message), topic, _store(received, name), qos)
        deadline = time.monotonic() + timeout_s
        next_publish = 0.0
        while len(received) < len(messages) and time.monotonic() < deadline:
            if time.monotonic() >= next_publish:  # Re-send until discovery has matched.
                for name, publisher in publishers.items():
                    if name not in received:
                        publisher.publish(messages[name])
                next_publish = time.monotonic() + 0.2
            executor.spin_once(timeout_sec=0.05)
        executor.shutdown()
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
    return received


def _store(received: dict[str, Any], name: str) -> Callable[[Any], None]:
    return lambda message: received.setdefault(name, message)


def run(timeout_s: float = 10.0, out: Callable[[str], None] = print) -> bool:
    """The smoke check with a report on `out`; True when every message came back equal."""
    from rclpy.utilities import get_rmw_implementation_identifier

    sent = sample_messages()
    started = time.monotonic()
    received = exchange(sent, timeout_s=timeout_s)
    elapsed_ms = (time.monotonic() - started) * 1e3
    distro = os.environ.get("ROS_DISTRO") or "ROS 2 from pip wheels"
    out(f"ROS 2 smoke check: {distro}, middleware {get_rmw_implementation_identifier()}, {elapsed_ms:.0f} ms")
    ok = True
    for name, message in sent.items():
        got = received.get(name)
        if got is None:
            status, ok = "NOT RECEIVED", False
        elif got != message:
            status, ok = "RECEIVED, DIFFERENT", False
        else:
            status = "received, equal"
        out(f"  ros2_lmd/msg/{name:<21} {status}: {_describe(got if got is not None else message)}")
    out("smoke check " + ("passed" if ok else "FAILED"))
    return ok


def _describe(message: Any) -> str:
    if isinstance(message, Detection):
        return (
            f"id={message.id} at ({message.position.x}, {message.position.y}) m, "
            f"score={message.score}, dominant={message.dominant_modality}, "
            f"shares={[round(s, 4) for s in message.shares]}, "
            f"single_sensor={message.single_sensor}"
        )
    if isinstance(message, DecompositionSummary):
        return (
            f"frame {message.frame_index}, grid {message.grid.width}x{message.grid.height} "
            f"@ {message.grid.resolution} m, shares="
            f"{dict(zip(message.modalities, (round(s, 4) for s in message.shares)))}, "
            f"{len(message.detections)} detection(s), latency {message.latency_ms} ms"
        )
    if isinstance(message, Alert):
        return f"{message.kind} severity={message.severity} modality={message.modality}"
    if isinstance(message, AlertArray):
        return f"{len(message.alerts)} alerts: {[a.kind for a in message.alerts]}"
    return repr(message)
