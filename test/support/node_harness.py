"""Run the monitor node in this process against hand-made sensor messages and collect what it
publishes. Shared by the node tests (and meant for the end-to-end ones): `tiny_model` saves a small
untrained model, `SensorRig` makes synchronised messages of a nuScenes-like rig, and
`MonitorHarness` starts the node in a private rclpy context on a random domain, publishes frames
and waits for outputs.

Waits have a generous hang guard (HANG_GUARD_S), never a timing assertion.
"""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import rclpy
import tf2_msgs.msg
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy

from ros2_lmd.messages.types import RclpyTypes, header_msg, time_msg
from ros2_lmd.monitor.params import NUSCENES_CAMERAS, NUSCENES_RADARS
from ros2_lmd.ros.node import MonitorNode
from ros2_lmd.sensors.camera_info import make_camera_info
from ros2_lmd.sensors.frame import LIDAR_FIELDS, RADAR_FIELDS
from ros2_lmd.sensors.image import make_compressed_image, make_image
from ros2_lmd.sensors.pointcloud2 import make_pointcloud2
from ros2_lmd.sensors.tf import make_tf_message

HANG_GUARD_S = 120.0

# Camera optical frame (z forward, x right, y down) in a forward-looking body frame.
_R_BODY_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
_CAMERA_YAW = {
    "cam_front": 0.0,
    "cam_front_right": -0.96,
    "cam_front_left": 0.96,
    "cam_back": np.pi,
    "cam_back_left": 1.9,
    "cam_back_right": -1.9,
}
_RADAR_POSE = {
    "radar_front": (3.6, 0.0, 0.0),
    "radar_front_left": (3.4, 0.6, 1.57),
    "radar_front_right": (3.4, -0.6, -1.57),
    "radar_back_left": (-0.6, 0.6, 3.14),
    "radar_back_right": (-0.6, -0.6, 3.14),
}


def _yaw_transform(x: float, y: float, z: float, yaw: float, R_local: np.ndarray | None = None) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    T = np.eye(4)
    R = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    T[:3, :3] = R @ (R_local if R_local is not None else np.eye(3))
    T[:3, 3] = (x, y, z)
    return T


@dataclass
class SensorRig:
    """A nuScenes-like rig (six cameras, five radars, one LiDAR) with tiny images. Topics follow
    the node's defaults; every sensor's frame_id is its name."""

    cameras: tuple[str, ...] = NUSCENES_CAMERAS
    radars: tuple[str, ...] = NUSCENES_RADARS
    lidar: str = "lidar_top"
    image_hw: tuple[int, int] = (24, 40)
    compressed: bool = True
    base_frame: str = "base_link"
    seed: int = 0
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self.types = RclpyTypes()

    def parameters(self) -> dict[str, Any]:
        """Node parameters matching this rig."""
        return {
            "camera_names": list(self.cameras),
            "camera_image_topics": [self.image_topic(c) for c in self.cameras],
            "camera_info_topics": [self.info_topic(c) for c in self.cameras],
            "use_compressed": self.compressed,
            "radar_topics": [f"/{r}" for r in self.radars],
            "lidar_topic": f"/{self.lidar}",
            "base_frame": self.base_frame,
        }

    def image_topic(self, camera: str) -> str:
        return f"/{camera}/image_rect_compressed" if self.compressed else f"/{camera}/image_rect"

    @staticmethod
    def info_topic(camera: str) -> str:
        return f"/{camera}/camera_info"

    @property
    def K(self) -> np.ndarray:
        h, w = self.image_hw
        return np.array([[w * 0.5, 0.0, w / 2], [0.0, w * 0.5, h / 2], [0.0, 0.0, 1.0]])

    def transforms(self) -> list[tuple[str, str, np.ndarray]]:
        """(parent, child, T_parent_child) of every sensor."""
        entries = [
            (self.base_frame, cam, _yaw_transform(1.0, 0.0, 1.5, _CAMERA_YAW.get(cam, 0.0), _R_BODY_OPTICAL))
            for cam in self.cameras
        ]
        entries += [
            (self.base_frame, radar, _yaw_transform(*_RADAR_POSE[radar][:2], 0.5, _RADAR_POSE[radar][2]))
            for radar in self.radars
        ]
        entries.append((self.base_frame, self.lidar, _yaw_transform(0.9, 0.0, 1.8, 0.0)))
        return entries

    def tf_static(self, stamp: float = 0.0) -> Any:
        return make_tf_message(self.types, time_msg(self.types, stamp), self.transforms())

    def header(self, stamp: float, frame_id: str) -> Any:
        return header_msg(self.types, stamp, frame_id)

    def image(self, camera: str, stamp: float, hw: tuple[int, int] | None = None) -> Any:
        h, w = hw or self.image_hw
        rgb = np.zeros((h, w, 3), np.uint8)
        rgb[h // 2 :, :] = (90, 90, 90)  # road
        rgb[h // 3 : h // 2 + 2, w // 3 : w // 2] = self.rng.integers(0, 255, 3, dtype=np.uint8)
        header = self.header(stamp, camera)
        if self.compressed:
            return make_compressed_image(self.types, header, rgb)
        return make_image(self.types, header, rgb)

    def camera_info(self, camera: str, stamp: float) -> Any:
        h, w = self.image_hw
        return make_camera_info(self.types, self.header(stamp, camera), self.K, w, h)

    def radar_cloud(self, radar: str, stamp: float, points: np.ndarray | None = None) -> Any:
        if points is None:
            points = np.zeros((4, len(RADAR_FIELDS)), np.float32)
            points[:, 0] = self.rng.uniform(2.0, 6.0, 4)
            points[:, 1] = self.rng.uniform(-1.0, 1.0, 4)
            points[:, 3] = 5.0  # rcs
        return make_pointcloud2(self.types, self.header(stamp, radar), points, RADAR_FIELDS)

    def lidar_cloud(self, stamp: float, points: np.ndarray | None = None) -> Any:
        if points is None:
            car = self.rng.uniform((3.0, 1.0, -1.5, 0.0), (5.0, 3.0, 0.0, 100.0), (150, 4))
            ground = self.rng.uniform((-7.0, -7.0, -1.8, 0.0), (7.0, 5.0, -1.7, 20.0), (100, 4))
            points = np.concatenate([car, ground]).astype(np.float32)
        return make_pointcloud2(self.types, self.header(stamp, self.lidar), points, LIDAR_FIELDS)

    def frame(self, stamp: float) -> dict[str, Any]:
        """topic -> message of one synchronised instant; the key sensor (LiDAR) last."""
        messages: dict[str, Any] = {}
        for camera in self.cameras:
            messages[self.info_topic(camera)] = self.camera_info(camera, stamp)
            messages[self.image_topic(camera)] = self.image(camera, stamp)
        for radar in self.radars:
            messages[f"/{radar}"] = self.radar_cloud(radar, stamp)
        messages[f"/{self.lidar}"] = self.lidar_cloud(stamp)
        return messages


OUTPUT_TYPES = {
    "bev/fused": "nav_msgs/msg/OccupancyGrid",
    "bev/camera": "nav_msgs/msg/OccupancyGrid",
    "bev/radar": "nav_msgs/msg/OccupancyGrid",
    "bev/lidar": "nav_msgs/msg/OccupancyGrid",
    "bev/bias": "nav_msgs/msg/OccupancyGrid",
    "bev_image": "sensor_msgs/msg/Image",
    "bev_image/camera": "sensor_msgs/msg/Image",
    "bev_image/radar": "sensor_msgs/msg/Image",
    "bev_image/lidar": "sensor_msgs/msg/Image",
    "bev_image/bias": "sensor_msgs/msg/Image",
    "markers": "visualization_msgs/msg/MarkerArray",
    "decomposition": "ros2_lmd/msg/DecompositionSummary",
    "alerts": "ros2_lmd/msg/AlertArray",
    "incidents": "ros2_lmd/msg/Incident",
}


class MonitorHarness:
    """The monitor node plus a probe node (sensor publishers, output subscribers) in one private
    context on a random ROS_DOMAIN_ID, spun by a background executor. Use as a context manager.

    `received[key]` lists (monotonic receive time, message) per output key (OUTPUT_TYPES keys and
    `diagnostics`)."""

    def __init__(
        self,
        rig: SensorRig,
        parameters: dict[str, Any],
        *,
        output_prefix: str = "/lmd",
        diagnostics_period_s: float = 0.25,
        domain_id: int | None = None,
        autostart: bool = True,
        outputs: tuple[str, ...] | None = None,
    ) -> None:
        """`outputs`: the output keys the probe subscribes to (default: all)."""
        self.rig = rig
        self.outputs = tuple(OUTPUT_TYPES) if outputs is None else outputs
        # A long stale timeout: the levels the tests read must not depend on how slow this
        # machine is between two frames.
        self.parameters = {
            **rig.parameters(),
            "output_prefix": output_prefix,
            "device": "cpu",
            "stale_timeout_s": 600.0,
            **parameters,
        }
        self.prefix = output_prefix.rstrip("/")
        self.diagnostics_period_s = diagnostics_period_s
        self.domain_id = random.randint(100, 199) if domain_id is None else domain_id
        self.autostart = autostart
        self.received: dict[str, list[tuple[float, Any]]] = defaultdict(list)
        self._received_lock = threading.Lock()
        self._publishers: dict[str, Any] = {}

    # --- set-up / tear-down --------------------------------------------------------------------

    def __enter__(self) -> MonitorHarness:
        self.types = RclpyTypes()
        self.context = Context()
        rclpy.init(context=self.context, domain_id=self.domain_id)
        overrides = [Parameter(name, value=value) for name, value in self.parameters.items()]
        self.node = MonitorNode(
            context=self.context,
            parameter_overrides=overrides,
            use_global_arguments=False,
            diagnostics_period_s=self.diagnostics_period_s,
        )
        self.probe = rclpy.create_node("lmd_probe", context=self.context)
        reliable = QoSProfile(depth=50, reliability=QoSReliabilityPolicy.RELIABLE)
        for key, type_name in OUTPUT_TYPES.items():
            if key not in self.outputs:
                continue
            self.probe.create_subscription(
                self.types.cls(type_name), f"{self.prefix}/{key}", self._store(key), reliable
            )
        self.probe.create_subscription(
            self.types.cls("diagnostic_msgs/msg/DiagnosticArray"),
            "/diagnostics",
            self._store("diagnostics"),
            reliable,
        )
        latched = QoSProfile(
            depth=1, reliability=QoSReliabilityPolicy.RELIABLE, durability=QoSDurabilityPolicy.TRANSIENT_LOCAL
        )
        self._publishers["/tf_static"] = self.probe.create_publisher(
            tf2_msgs.msg.TFMessage, "/tf_static", latched
        )
        if self.autostart:
            self.start_node()
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.probe)
        self._spinner = threading.Thread(target=self.executor.spin, daemon=True)
        self._spinner.start()
        return self

    def start_node(self) -> None:
        from rclpy.lifecycle import TransitionCallbackReturn

        assert self.node.trigger_configure() == TransitionCallbackReturn.SUCCESS, "configure failed"
        assert self.node.trigger_activate() == TransitionCallbackReturn.SUCCESS, "activate failed"

    def __exit__(self, *exc: Any) -> None:
        self.executor.shutdown()
        self._spinner.join(timeout=5.0)
        if self._spinner.is_alive():
            # rclpy race: a spin that entered its wait after shutdown() is only woken by taking the
            # context down (seen when a test ends right after the executor started)
            rclpy.shutdown(context=self.context)
            self._spinner.join(timeout=30.0)
        self.node.close()
        self.node.destroy_node()
        self.probe.destroy_node()
        if self.context.ok():
            rclpy.shutdown(context=self.context)

    def _store(self, key: str) -> Callable[[Any], None]:
        def store(message: Any) -> None:
            with self._received_lock:
                self.received[key].append((time.monotonic(), message))

        return store

    # --- publishing ------------------------------------------------------------------------------

    def publisher(self, topic: str, message: Any) -> Any:
        if topic not in self._publishers:
            qos = QoSProfile(depth=20, reliability=QoSReliabilityPolicy.RELIABLE)
            self._publishers[topic] = self.probe.create_publisher(type(message), topic, qos)
        return self._publishers[topic]

    def publish_tf_static(self) -> None:
        self._publishers["/tf_static"].publish(self.rig.tf_static())

    def publish(self, messages: dict[str, Any]) -> None:
        """Publish topic -> message in order, waiting for the node to subscribe to each topic
        first (best-effort sensor QoS loses what is sent before discovery)."""
        for topic, message in messages.items():
            publisher = self.publisher(topic, message)
            self.wait_for(
                lambda publisher=publisher: publisher.get_subscription_count() > 0,
                f"the monitor to subscribe to {topic}",
            )
            publisher.publish(message)

    # --- waiting and reading -----------------------------------------------------------------------

    def wait_for(self, condition: Callable[[], bool], what: str, guard_s: float = HANG_GUARD_S) -> None:
        deadline = time.monotonic() + guard_s
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"gave up waiting for {what} (hang guard {guard_s} s)")
            time.sleep(0.01)

    def messages(self, key: str) -> list[Any]:
        with self._received_lock:
            return [message for _, message in self.received[key]]

    def count(self, key: str) -> int:
        with self._received_lock:
            return len(self.received[key])

    def frames_accounted(self) -> int:
        return self.node.frames_processed + self.node.frames_dropped

    def run_frame(self, messages: dict[str, Any]) -> Any:
        """Publish one instant and wait until the node has processed or dropped it; returns the
        new DecompositionSummary, or None when the frame was dropped."""
        summaries = self.count("decomposition")
        processed = self.node.frames_processed
        accounted = self.frames_accounted()
        self.publish(messages)
        self.wait_for(lambda: self.frames_accounted() > accounted, "the frame to be processed")
        if self.node.frames_processed > processed:
            self.wait_for(lambda: self.count("decomposition") > summaries, "its DecompositionSummary")
            return self.messages("decomposition")[-1]
        return None

    def run_frames(
        self,
        count: int,
        start_stamp: float = 1000.0,
        period_s: float = 0.1,
        make: Callable[[float], dict[str, Any]] | None = None,
    ) -> list[Any]:
        """Publish `count` instants, one after another; returns their summaries (None: dropped)."""
        make = make or self.rig.frame
        return [self.run_frame(make(start_stamp + i * period_s)) for i in range(count)]

    def diagnostics_after(self, moment: float) -> Any:
        """The first DiagnosticArray received after monotonic time `moment`."""

        def found() -> Any:
            with self._received_lock:
                return next((m for t, m in self.received["diagnostics"] if t > moment), None)

        self.wait_for(lambda: found() is not None, "a DiagnosticArray")
        return found()


def status_by_hardware_id(array: Any) -> dict[str, Any]:
    return {status.hardware_id: status for status in array.status}


def values_of(status: Any) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}
