"""The monitor node: an rclpy lifecycle node around monitor.Pipeline (DESIGN.md "Runtime").

configure  reads and checks the parameters, loads the model, builds the Pipeline, the FrameAssembler
           (time sync) and the output publishers;
activate   subscribes to the sensors (sensor-data QoS) and /tf_static (transient local) and starts
           the inference workers;
deactivate / cleanup / shutdown undo that, in reverse.

Subscription callbacks only convert (ros2_lmd.sensors) and add to the assembler; complete
SensorFrames go to a keep-latest queue (depth `queue_depth`) that `inference_workers` threads drain:
each runs the stateless part of the pipeline (model, LMD, detections) on a frame; the stateful part
(alerts) and publishing (ros2_lmd.outputs) follow in the queue's order, so alerts do not depend on
the number of workers. Every key-sensor instant is either processed or counted as dropped with a
reason. A malformed message never stops the node: it is counted, named (topic and reason) in
/diagnostics and logged at most every LOG_THROTTLE_S per topic.
This and ros2_lmd.player are the modules that import rclpy.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections import Counter, deque
from typing import Any, Callable

import rclpy
import rclpy.exceptions
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType,
                                SetParametersResult)
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import (QoSDurabilityPolicy, QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy,
                       qos_profile_sensor_data)
from rclpy.signals import SignalHandlerOptions

from ros2_lmd import outputs
from ros2_lmd.msgtypes import RclpyTypes
from ros2_lmd.params import (MonitorParams, ParameterError, parameter_specs, params_from_mapping,
                             read_yaml_mapping)
from ros2_lmd.sensor_health import SensorHealthTracker, SensorInfo
from ros2_lmd.ingest import InputSensor, convert_reading, frame_assembler, input_sensors
from ros2_lmd.sensors.camera_info import CameraCalibration
from ros2_lmd.sensors.errors import SensorDataError
from ros2_lmd.sensors.frame import SensorFrame
from ros2_lmd.sensors.sync import DroppedFrame, FrameAssembler
from ros2_lmd.sensors.tf import TransformTree

NODE_NAME = "lmd_monitor"
LOG_THROTTLE_S = 5.0
DIAGNOSTICS_PERIOD_S = 1.0
SYNC_TICK_S = 0.1
# After this long (wall clock) without any sensor message, the time sync finishes the frames it
# holds instead of waiting for sensors that may never send again.
QUIET_FLUSH_S = 0.5

# Changing these while the node runs would leave subscriptions, the model or the queue out of
# step with them: ROS refuses the change (read_only); change them in the parameter file instead.
READ_ONLY_PARAMETERS = frozenset({
    "model", "device", "modalities", "camera_names", "camera_image_topics", "camera_info_topics",
    "use_compressed", "radar_topics", "lidar_topic", "key_sensor", "base_frame",
    "extrinsics_source", "extrinsics_file", "output_prefix", "queue_depth", "autostart",
    "cpu_threads", "inference_workers"})
# Applied to the next published frame.
RUNTIME_PARAMETERS = frozenset({"publish_rate_hz", "bev_image_scale", "component_logit_range"})

_ROS_TYPES = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
              float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING,
              tuple: ParameterType.PARAMETER_STRING_ARRAY}

DROP_SUPERSEDED = "superseded in the queue by a newer frame"
DROP_ASSEMBLY = "could not be assembled (late, duplicate or out-of-order key reading)"
DROP_KEY_MALFORMED = "key sensor message malformed"
DROP_INFERENCE = "inference failed"
DROP_SHUTDOWN = "still queued at deactivate"


def parameter_descriptors() -> dict[str, ParameterDescriptor]:
    """A ParameterDescriptor per MonitorParams field (description, type, range, read_only)."""
    descriptors = {}
    for spec in parameter_specs():
        constraints = []
        if spec.choices:
            constraints.append(f"one of: {', '.join(spec.choices)}")
        if spec.name not in READ_ONLY_PARAMETERS and spec.name not in RUNTIME_PARAMETERS:
            constraints.append("read at configure: takes effect after cleanup and configure")
        descriptor = ParameterDescriptor(
            name=spec.name, type=_ROS_TYPES[spec.type], description=spec.description,
            additional_constraints="; ".join(constraints),
            read_only=spec.name in READ_ONLY_PARAMETERS)
        if spec.min is not None and spec.type is float:
            descriptor.floating_point_range = [FloatingPointRange(
                from_value=float(spec.min), to_value=float(spec.max), step=0.0)]
        elif spec.min is not None and spec.type is int:
            descriptor.integer_range = [IntegerRange(
                from_value=int(spec.min), to_value=int(spec.max), step=1)]
        descriptors[spec.name] = descriptor
    return descriptors


class LatestQueue:
    """A bounded FIFO that keeps the newest items: `put` returns the item it pushed out, if any;
    `get` numbers the items it hands out 0, 1, 2, ... in order."""

    def __init__(self, depth: int) -> None:
        self._items: deque[Any] = deque()
        self._depth = depth
        self._ready = threading.Condition()
        self._taken = 0

    def put(self, item: Any) -> Any | None:
        with self._ready:
            superseded = self._items.popleft() if len(self._items) >= self._depth else None
            self._items.append(item)
            self._ready.notify()
            return superseded

    def get(self, timeout: float) -> tuple[int, Any] | None:
        """(number, item), or None when nothing came within `timeout` seconds."""
        with self._ready:
            if not self._items:
                self._ready.wait(timeout)
            if not self._items:
                return None
            self._taken += 1
            return self._taken - 1, self._items.popleft()

    def counts(self) -> tuple[int, int]:
        """(items handed out by `get` so far, items waiting), read together."""
        with self._ready:
            return self._taken, len(self._items)

    def clear(self) -> list[Any]:
        with self._ready:
            items = list(self._items)
            self._items.clear()
            return items


class _Throttle:
    """At most one log line per key every `period_s`, with the count of lines held back."""

    def __init__(self, period_s: float) -> None:
        self.period_s = period_s
        self._last: dict[str, float] = {}
        self._held: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, key: str, now: float) -> int | None:
        """None: stay quiet; otherwise log now, mentioning the returned number of lines held."""
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.period_s:
                self._held[key] += 1
                return None
            self._last[key] = now
            return self._held.pop(key, 0)


class _Run:
    """Everything built in configure and dropped in cleanup."""

    def __init__(self, params: MonitorParams, pipeline: Any, sensors: list[InputSensor],
                 assembler: FrameAssembler, extrinsics: TransformTree,
                 tracker: SensorHealthTracker, inference_workers: int, cpu_threads: int) -> None:
        self.params = params
        self.pipeline = pipeline
        self.sensors = sensors
        self.by_name = {s.name: s for s in sensors}
        self.assembler = assembler
        self.extrinsics = extrinsics
        self.tracker = tracker
        self.key_sensor = assembler.key_sensor
        self.calibrations: dict[str, CameraCalibration] = {}
        self.queue = LatestQueue(params.queue_depth)
        self.inference_workers = inference_workers
        self.cpu_threads = cpu_threads
        # Workers take frames in queue order, numbered; they conclude (alerts, publishing) in that
        # order, each waiting for the turn of its number.
        self.turn = threading.Condition()
        self.next_turn = 0
        self.publishers: dict[str, Any] = {}
        self.subscriptions: list[Any] = []
        self.timers: list[Any] = []
        self.workers: list[threading.Thread] = []
        self.stop = threading.Event()


class MonitorNode(LifecycleNode):
    """The LMD runtime monitor (module docstring). Node options (context, parameter_overrides,
    namespace, ...) pass through to rclpy."""

    def __init__(self, node_name: str = NODE_NAME, *,
                 diagnostics_period_s: float = DIAGNOSTICS_PERIOD_S, **node_options: Any) -> None:
        super().__init__(node_name, **node_options)
        self.diagnostics_period_s = diagnostics_period_s
        self.types = RclpyTypes()
        for spec in parameter_specs():
            default = list(spec.default) if spec.type is tuple else spec.default
            self.declare_parameter(spec.name, default, parameter_descriptors()[spec.name])
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._runtime = {name: self.get_parameter(name).value for name in RUNTIME_PARAMETERS}
        self._run: _Run | None = None
        self._lock = threading.Lock()  # assembler, extrinsics, counters, latest results
        self._throttle = _Throttle(LOG_THROTTLE_S)
        # In-process observers (the demo, tests): called from the worker thread with every
        # (SensorFrame, FrameReport) processed, and with (stamp, reason) for every dropped frame.
        self.report_listeners: list[Callable[[SensorFrame, Any], None]] = []
        self.drop_listeners: list[Callable[[float, str], None]] = []
        self._reset_counters()

    # --- Parameters ------------------------------------------------------------------------------

    def parameter_values(self) -> dict[str, Any]:
        return {spec.name: self.get_parameter(spec.name).value for spec in parameter_specs()}

    def read_params(self) -> MonitorParams:
        """The node's parameters as one checked record (ParameterError names each bad one)."""
        return params_from_mapping(self.parameter_values(), source=f"node {self.get_name()}")

    @property
    def autostart(self) -> bool:
        return bool(self.get_parameter("autostart").value)

    def _on_set_parameters(self, parameters: list[Any]) -> SetParametersResult:
        # ROS has checked types, ranges and read_only; this adds the checks across parameters.
        values = self.parameter_values()
        values.update({p.name: p.value for p in parameters if p.name in values})
        try:
            params_from_mapping(values, source="parameter update")
        except ParameterError as error:
            return SetParametersResult(successful=False, reason=str(error))
        for parameter in parameters:
            if parameter.name in RUNTIME_PARAMETERS:
                self._runtime[parameter.name] = parameter.value
        return SetParametersResult(successful=True)

    # --- Lifecycle ---------------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._run = self._configure()
        except (ParameterError, SensorDataError, FileNotFoundError, KeyError, ValueError,
                RuntimeError, OSError) as error:
            self.get_logger().error(f"configure failed: {error}")
            self._run = None
            return TransitionCallbackReturn.FAILURE
        run = self._run
        self.get_logger().info(
            f"configured: model {run.params.model} ({', '.join(run.pipeline.modalities)}) on "
            f"{run.pipeline.device} ({run.inference_workers} workers x {run.cpu_threads} threads), "
            f"{len(run.sensors)} sensors, "
            f"key sensor {run.key_sensor}, "
            f"grid {run.pipeline.model.grid.nx}x{run.pipeline.model.grid.ny} @ "
            f"{run.pipeline.model.grid.resolution} m")
        return TransitionCallbackReturn.SUCCESS

    def _configure(self) -> _Run:
        # Imported here: torch and the models load in configure, not when the node is created.
        from ros2_lmd.models import load_model
        import torch

        from ros2_lmd.monitor.pipeline import (Pipeline, alert_config_from, inference_plan,
                                               resolve_device)

        params = self.read_params()
        device = resolve_device(params.device)
        workers, threads = inference_plan(device, params.inference_workers, params.cpu_threads)
        torch.set_num_threads(threads)  # process-wide: each worker's operators use this many
        model = load_model(params.model, device)
        unknown = sorted({n.lower() for n in params.camera_names} - set(model.config.camera_names))
        if "camera" in params.modalities and "camera" in model.modalities and unknown:
            raise ParameterError(f"camera_names: {unknown} are not cameras of model "
                                 f"{params.model} ({list(model.config.camera_names)})")
        modalities = tuple(m for m in params.modalities if m in model.modalities)
        if params.key_sensor not in modalities:
            raise ParameterError(f"key_sensor: {params.key_sensor} is not a modality of model "
                                 f"{params.model} ({list(model.modalities)}) among modalities "
                                 f"{list(params.modalities)}")
        ignored = sorted(set(params.modalities) - set(model.modalities))
        if ignored:
            self.get_logger().warn(f"modalities {ignored} are not inputs of model {params.model}: "
                                   "not subscribed")
        pipeline = Pipeline(model, alert_config_from(params), device)
        sensors = input_sensors(params, modalities)
        if params.extrinsics_source == "config":
            extrinsics = _extrinsics_from_file(params.extrinsics_file, params.base_frame)
        else:
            extrinsics = TransformTree()
        assembler = frame_assembler(params, sensors, extrinsics)
        tracker = SensorHealthTracker([SensorInfo(s.name, s.topic, s.modality) for s in sensors],
                                      params.stale_timeout_s, params.diagnostics_persistence)
        run = _Run(params, pipeline, sensors, assembler, extrinsics, tracker, workers, threads)
        prefix = params.output_prefix.rstrip("/") or "/"
        reliable = QoSProfile(depth=5, reliability=QoSReliabilityPolicy.RELIABLE,
                              history=QoSHistoryPolicy.KEEP_LAST)
        grid_class = self.types.cls("nav_msgs/msg/OccupancyGrid")
        for layer in ("fused", *pipeline.modalities, "bias"):
            run.publishers[f"bev/{layer}"] = self.create_lifecycle_publisher(
                grid_class, f"{prefix}/bev/{layer}", reliable)
        for key, type_name in (("bev_image", "sensor_msgs/msg/Image"),
                               ("markers", "visualization_msgs/msg/MarkerArray"),
                               ("decomposition", "ros2_lmd/msg/DecompositionSummary"),
                               ("alerts", "ros2_lmd/msg/AlertArray")):
            run.publishers[key] = self.create_lifecycle_publisher(
                self.types.cls(type_name), f"{prefix}/{key}", reliable)
        run.publishers["diagnostics"] = self.create_lifecycle_publisher(
            self.types.cls("diagnostic_msgs/msg/DiagnosticArray"), "/diagnostics",
            QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE))
        with self._lock:
            self._reset_counters()
        return run

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        run = self._run
        if run is None:
            return TransitionCallbackReturn.FAILURE
        if run.params.extrinsics_source == "tf_static":
            try:
                from tf2_msgs.msg import TFMessage
            except ImportError:
                self.get_logger().error(
                    "extrinsics_source is tf_static but tf2_msgs is not installed: no /tf_static "
                    "subscription (use extrinsics_source config, or build vendor/tf2_msgs)")
                with self._lock:
                    self._extrinsics_error = "tf2_msgs is not installed: /tf_static not subscribed"
            else:
                latched = QoSProfile(depth=100, reliability=QoSReliabilityPolicy.RELIABLE,
                                     durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
                run.subscriptions.append(self.create_subscription(
                    TFMessage, "/tf_static", self._on_tf_static, latched))
        # reliable: a deep history, so a node that falls behind processes every message late
        # instead of losing some (the time sync is by stamp, so the frames are the same)
        sensor_qos = (qos_profile_sensor_data if run.params.sensor_qos == "sensor_data"
                      else QoSProfile(depth=100, reliability=QoSReliabilityPolicy.RELIABLE,
                                      history=QoSHistoryPolicy.KEEP_LAST))
        image_class = self.types.cls("sensor_msgs/msg/CompressedImage" if run.params.use_compressed
                                     else "sensor_msgs/msg/Image")
        cloud_class = self.types.cls("sensor_msgs/msg/PointCloud2")
        for sensor in run.sensors:
            if sensor.modality == "camera":
                run.subscriptions.append(self.create_subscription(
                    self.types.cls("sensor_msgs/msg/CameraInfo"), sensor.info_topic,
                    self._callback(self._on_camera_info, sensor), sensor_qos))
                run.subscriptions.append(self.create_subscription(
                    image_class, sensor.topic, self._callback(self._on_reading, sensor), sensor_qos))
            else:
                run.subscriptions.append(self.create_subscription(
                    cloud_class, sensor.topic, self._callback(self._on_reading, sensor), sensor_qos))
        run.stop.clear()
        run.workers = [threading.Thread(target=self._worker_loop, args=(run,),
                                        name=f"lmd_inference_{i}", daemon=True)
                       for i in range(run.inference_workers)]
        for worker in run.workers:
            worker.start()
        run.timers.append(self.create_timer(SYNC_TICK_S, self._on_sync_tick))
        run.timers.append(self.create_timer(self.diagnostics_period_s, self._publish_diagnostics))
        self.get_logger().info(f"active: {len(run.subscriptions)} subscriptions")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_activity()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_activity()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_activity()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _stop_activity(self) -> None:
        """Undo activate: subscriptions and timers first (no new frames), then the worker."""
        run = self._run
        if run is None:
            return
        for subscription in run.subscriptions:
            self.destroy_subscription(subscription)
        run.subscriptions.clear()
        for timer in run.timers:
            self.destroy_timer(timer)
        run.timers.clear()
        run.stop.set()
        for worker in run.workers:
            worker.join()
        run.workers = []
        for frame in run.queue.clear():
            self._count_drop(DROP_SHUTDOWN, frame.stamp, "still queued when the node was deactivated")

    def _release(self) -> None:
        """Undo configure."""
        run, self._run = self._run, None
        if run is None:
            return
        for publisher in run.publishers.values():
            self.destroy_lifecycle_publisher(publisher)
        run.publishers.clear()

    def close(self) -> None:
        """Stop everything whatever the lifecycle state (Ctrl-C, tests); safe to call twice."""
        self._stop_activity()
        self._release()

    # --- Counters ----------------------------------------------------------------------------------

    def _reset_counters(self) -> None:
        self._drops: Counter[str] = Counter()
        self._frames_processed = 0
        self._malformed: Counter[str] = Counter()  # topic -> malformed messages
        self._key_arrivals: dict[float, float] = {}
        self._latest_receive: tuple[float, float] | None = None  # (stamp, monotonic)
        self._latest: tuple[Any, dict[str, str], dict[str, float]] | None = None
        self._extrinsics_error = ""
        self._last_publish = -float("inf")

    @property
    def sensor_health(self) -> SensorHealthTracker | None:
        """The per-sensor bookkeeping behind /diagnostics (None until configured)."""
        return self._run.tracker if self._run else None

    @property
    def frames_processed(self) -> int:
        return self._frames_processed

    @property
    def frames_dropped(self) -> int:
        with self._lock:
            return sum(self._drops.values())

    def frames_pending(self) -> int:
        """Frames held anywhere in the node: in the time sync (including fallback-key readings not
        yet decided), in the queue, or in inference."""
        run = self._run
        if run is None:
            return 0
        with run.turn:  # first: it only grows, so the count below errs on the high side
            concluded = run.next_turn
        with self._lock:
            in_sync = run.assembler.frames_pending
            taken, queued = run.queue.counts()
        return in_sync + queued + taken - concluded

    def drop_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._drops)

    # --- Callbacks: convert and add ----------------------------------------------------------------

    def _callback(self, handler: Callable[..., None], *args: Any) -> Callable[[Any], None]:
        return lambda msg: handler(*args, msg)

    def _on_reading(self, sensor: InputSensor, msg: Any) -> None:
        run = self._run
        if run is None:
            return
        now = time.monotonic()
        try:
            reading = convert_reading(sensor, msg, run.calibrations.get(sensor.name))
            stamp, problem = reading.stamp, reading.problem
            if problem:
                self._bad_message(sensor, sensor.topic, problem, now)
            elif reading.note:
                self._log_problem(sensor.topic, reading.note, warn=False)
            with self._lock:
                run.assembler.add(sensor.name, stamp, reading.payload, str(msg.header.frame_id))
        except SensorDataError as error:
            self._bad_message(sensor, sensor.topic, error.reason, now)
            if sensor.name == run.key_sensor:
                stamp = _header_stamp_or_nan(msg)
                self._count_drop(DROP_KEY_MALFORMED, stamp, f"{sensor.topic}: {error.reason}")
            return
        run.tracker.message(sensor.name, stamp, now, ok=not problem)
        with self._lock:
            if sensor.name == run.key_sensor:
                self._key_arrivals[stamp] = now
                while len(self._key_arrivals) > 100:
                    self._key_arrivals.pop(next(iter(self._key_arrivals)))
            self._latest_receive = (stamp, now)
        self._assemble(run)

    def _on_camera_info(self, sensor: InputSensor, msg: Any) -> None:
        run = self._run
        if run is None:
            return
        try:
            with self._lock:
                calibration = run.assembler.add_camera_info(sensor.name, msg, sensor.info_topic)
        except SensorDataError as error:
            self._bad_message(sensor, sensor.info_topic, error.reason, time.monotonic())
            return
        run.calibrations[sensor.name] = calibration

    def _on_tf_static(self, msg: Any) -> None:
        run = self._run
        if run is None:
            return
        try:
            with self._lock:
                run.extrinsics.add_tf_message(msg, "/tf_static")
                self._extrinsics_error = ""
        except SensorDataError as error:
            with self._lock:
                self._extrinsics_error = str(error)
            self._log_problem("/tf_static", error.reason)

    def _bad_message(self, sensor: InputSensor, topic: str, reason: str, now: float) -> None:
        run = self._run
        if run is not None:
            run.tracker.error(sensor.name, topic, reason, now)
        with self._lock:
            self._malformed[topic] += 1
        self._log_problem(topic, reason)

    def _log_problem(self, topic: str, reason: str, warn: bool = True) -> None:
        held = self._throttle(topic, time.monotonic())
        if held is None:
            return
        more = f" ({held} more since the last report)" if held else ""
        log = self.get_logger().warn if warn else self.get_logger().info
        log(f"{topic}: {reason}{more}")

    def _on_sync_tick(self) -> None:
        """When every sensor has gone quiet, let the time sync finish the frames it holds."""
        run = self._run
        with self._lock:
            latest = self._latest_receive
        if run is None or latest is None:
            return
        stamp, received = latest
        quiet = time.monotonic() - received
        if quiet > QUIET_FLUSH_S:
            self._assemble(run, now_stamp=stamp + quiet)

    def _assemble(self, run: _Run, now_stamp: float | None = None) -> None:
        # From the time sync to the queue under one lock: a frame is always in one or the other
        # (frames_pending).
        with self._lock:
            results = run.assembler.pop_ready(now_stamp)
            superseded = [run.queue.put(r) for r in results if not isinstance(r, DroppedFrame)]
        for result in results:
            if isinstance(result, DroppedFrame):
                self._count_drop(DROP_ASSEMBLY, result.stamp, result.reason)
                self._log_problem("time sync", f"frame at {result.stamp:.3f} dropped: "
                                  f"{result.reason}")
        for frame in superseded:
            if frame is not None:
                self._count_drop(DROP_SUPERSEDED, frame.stamp, "superseded by a newer frame")

    def _count_drop(self, kind: str, stamp: float, reason: str) -> None:
        with self._lock:
            self._drops[kind] += 1
        for listener in self.drop_listeners:
            listener(stamp, f"{kind}: {reason}")

    # --- Worker: inference and outputs ----------------------------------------------------------

    def _worker_loop(self, run: _Run) -> None:
        while not run.stop.is_set():
            taken = run.queue.get(timeout=0.1)
            if taken is None:
                continue
            turn, frame = taken
            # A numbered frame is always concluded (or counted as dropped), even when stopping:
            # the workers holding later numbers wait for it.
            try:
                computed, failure = run.pipeline.compute([frame])[0], None
            except Exception as error:  # a model failure must not stop the monitor
                computed, failure = None, error
            with run.turn:
                run.turn.wait_for(lambda: run.next_turn == turn)
                try:
                    if failure is not None:
                        self._count_drop(DROP_INFERENCE, frame.stamp,
                                         f"{type(failure).__name__}: {failure}")
                        self._log_problem("inference", f"frame at {frame.stamp:.3f}: "
                                          f"{type(failure).__name__}: {failure}")
                    else:
                        self._conclude(run, frame, computed)
                finally:
                    run.next_turn += 1
                    run.turn.notify_all()

    def _conclude(self, run: _Run, frame: SensorFrame, computed: Any) -> None:
        try:
            report = run.pipeline.conclude(computed)
        except Exception as error:  # noqa: BLE001 — an alert-step failure must not stop the monitor
            self._count_drop(DROP_INFERENCE, frame.stamp, f"{type(error).__name__}: {error}")
            self._log_problem("inference", f"frame at {frame.stamp:.3f}: {type(error).__name__}: {error}")
            return
        try:
            self._after_frame(run, frame, report)
        except Exception as error:  # noqa: BLE001 — nor may a failing listener or publisher
            self._log_problem("outputs", f"frame at {frame.stamp:.3f}: {type(error).__name__}: {error}")

    def _after_frame(self, run: _Run, frame: SensorFrame, report: Any) -> None:
        from ros2_lmd.monitor.pipeline import health_ratios

        included = {name: not reason for name, reason in frame.sensor_status.items()}
        run.tracker.frame(included, frame.sensor_status)
        now = time.monotonic()
        with self._lock:
            self._frames_processed += 1
            processed = self._frames_processed
            dropped = sum(self._drops.values())
            arrival = self._key_arrivals.pop(frame.stamp, None)
            self._latest = (report, run.pipeline.alerts.states(), health_ratios(run.pipeline))
        for listener in self.report_listeners:
            listener(frame, report)
        latency_ms = (now - arrival) * 1e3 if arrival is not None else report.latency_ms
        rate = float(self._runtime["publish_rate_hz"])
        if rate > 0 and now - self._last_publish < 1.0 / rate:
            return
        self._last_publish = now
        self._publish_outputs(run, report, processed, dropped, latency_ms)

    def _publish_outputs(self, run: _Run, report: Any, processed: int, dropped: int,
                         latency_ms: float) -> None:
        for key, _type, message in outputs.frame_messages(
                report, self.types, run.params.base_frame, processed, dropped, latency_ms,
                int(self._runtime["bev_image_scale"]), float(self._runtime["component_logit_range"]),
                run.params.detection_threshold):
            run.publishers[key].publish(message)

    # --- Diagnostics -------------------------------------------------------------------------------

    def diagnostic_records(self) -> list[outputs.StatusRecord]:
        run = self._run
        if run is None:
            return []
        now = time.monotonic()
        with self._lock:
            latest = self._latest
            drops = dict(self._drops)
            processed = self._frames_processed
            malformed = sum(self._malformed.values())
            extrinsics_error = self._extrinsics_error
            frames_known = len(run.extrinsics.frames)
        records = run.tracker.statuses(now)
        report, states, ratios = latest if latest else (None, {}, {})
        records += outputs.modality_statuses(run.pipeline.modalities, report, states, ratios)
        values = {"frames_processed": str(processed),
                  "frames_dropped": str(sum(drops.values())),
                  "malformed_messages": str(malformed),
                  "extrinsic_frames": str(frames_known),
                  "extrinsics_error": extrinsics_error}
        values.update({f"dropped: {reason}": str(count) for reason, count in drops.items()})
        if report is not None:
            values["latency_ms"] = f"{report.latency_ms:.1f}"
            values["conservation_error"] = f"{report.conservation_error:.3g}"
        level = outputs.DIAG_OK if processed else outputs.DIAG_STALE
        message = f"{processed} frames processed, {sum(drops.values())} dropped" if processed \
            else "no frame processed yet"
        if extrinsics_error:
            level, message = outputs.DIAG_WARN, f"extrinsics: {extrinsics_error}"
        records.append(outputs.StatusRecord(f"ros2_lmd: {self.get_name()}", self.get_name(),
                                            level, message, values))
        return records

    def _publish_diagnostics(self) -> None:
        run = self._run
        if run is None:
            return
        stamp = self.get_clock().now().nanoseconds * 1e-9
        run.publishers["diagnostics"].publish(
            outputs.diagnostics(self.diagnostic_records(), self.types, stamp))


def _header_stamp_or_nan(msg: Any) -> float:
    try:
        return float(msg.header.stamp.sec) + float(msg.header.stamp.nanosec) * 1e-9
    except (AttributeError, TypeError, ValueError):
        return float("nan")


def _extrinsics_from_file(path: str, base_frame: str) -> TransformTree:
    document = read_yaml_mapping(path, "a mapping of frame ids to poses", label="extrinsics_file")
    return TransformTree.from_config(dict(document), base_frame=base_frame, source=path)


def main(params_file: str | None = None, ros_args: list[str] | None = None) -> int:
    """Run the monitor until Ctrl-C. `ros_args` are `--ros-args ...` (remappings, more parameter
    files, which override `params_file`). Exit codes: 0 clean stop, 1 configure failed, 2 bad
    parameters."""
    args = [NODE_NAME]
    if params_file:
        args += ["--ros-args", "--params-file", str(params_file)]
    args += list(ros_args or [])
    # Our own SIGINT/SIGTERM handling: rclpy's raises KeyboardInterrupt wherever the main thread
    # happens to be (even inside the clean-up); here a signal only ends the spin loop.
    stop = threading.Event()
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    node = None
    try:
        try:
            node = MonitorNode()
        except (ParameterError, rclpy.exceptions.InvalidParameterTypeException,
                rclpy.exceptions.InvalidParameterValueException) as error:
            print(f"ros2-lmd monitor: {error}", file=sys.stderr)
            return 2
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        if node.autostart:
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                return 1
            if node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
                return 1
        else:
            node.get_logger().info("autostart is false: waiting for a lifecycle manager")
        try:
            while not stop.is_set() and rclpy.ok():
                executor.spin_once(timeout_sec=0.1)
        except ExternalShutdownException:
            pass
        node.get_logger().info("shutting down")
        executor.shutdown()
    finally:
        if node is not None:
            node.close()
            node.destroy_node()
        rclpy.try_shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
