"""The monitor node: an rclpy lifecycle node that holds lifecycle, parameters and pub/sub, and
nothing else; the work is done by ROS-free parts it wires together (docs/architecture.md):

configure  reads and checks the parameters, loads the model, builds the Pipeline, the Ingest (time
           sync), the per-sensor health tracker and the output publishers;
activate   subscribes to the sensors (sensor-data QoS) and /tf_static (transient local) and starts
           the OrderedRunner (`inference_workers` threads, keep-latest queue of `queue_depth`);
deactivate / cleanup / shutdown undo that, in reverse.

Every message goes to the Ingest, as in `ros2-lmd analyze`; complete SensorFrames go to the runner,
which computes them in parallel and concludes them (alerts, publishing) in stamp order. Every
key-sensor instant is either processed or counted as dropped with a reason. A malformed message
never stops the node: it is counted, named (topic and reason) in /diagnostics and logged at most
every LOG_THROTTLE_S per topic.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import rclpy
import rclpy.exceptions
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    ParameterType,
    SetParametersResult,
)
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import (
    QoSDurabilityPolicy,
    QoSHistoryPolicy,
    QoSProfile,
    QoSReliabilityPolicy,
    qos_profile_sensor_data,
)
from rclpy.signals import SignalHandlerOptions

from ros2_lmd.messages import outputs
from ros2_lmd.messages.types import RclpyTypes
from ros2_lmd.monitor import status
from ros2_lmd.monitor.diagnostics import (
    DIAGNOSTICS_PERIOD_S,
    DROP_ASSEMBLY,
    DROP_INFERENCE,
    DROP_SHUTDOWN,
    DROP_SUPERSEDED,
    MONITOR_NAME,
    MonitorStatus,
    drop_kind,
)
from ros2_lmd.monitor.ingest import TF_STATIC, Ingest, ingest_for_model
from ros2_lmd.monitor.params import MonitorParams, ParameterError, parameter_specs, params_from_mapping
from ros2_lmd.monitor.resources import inference_plan
from ros2_lmd.monitor.runner import OrderedRunner
from ros2_lmd.monitor.sensor_health import SensorHealthTracker
from ros2_lmd.monitor.throttle import Throttle
from ros2_lmd.ros.transport import use_shipped_transport
from ros2_lmd.sensors.errors import SensorDataError
from ros2_lmd.sensors.frame import SensorFrame
from ros2_lmd.sensors.sync import DroppedFrame

NODE_NAME = MONITOR_NAME
LOG_THROTTLE_S = 5.0
SYNC_TICK_S = 0.1
# After this long (wall clock) without any sensor message, the time sync finishes the frames it
# holds instead of waiting for sensors that may never send again.
QUIET_FLUSH_S = 0.5

# Changing these while the node runs would leave subscriptions, the model or the queue out of
# step with them: ROS refuses the change (read_only); change them in the parameter file instead.
READ_ONLY_PARAMETERS = frozenset(
    {
        "model",
        "device",
        "modalities",
        "camera_names",
        "camera_image_topics",
        "camera_info_topics",
        "use_compressed",
        "radar_topics",
        "lidar_topic",
        "key_sensor",
        "base_frame",
        "extrinsics_source",
        "extrinsics_file",
        "output_prefix",
        "queue_depth",
        "autostart",
        "cpu_threads",
        "inference_workers",
    }
)
# Applied to the next published frame.
RUNTIME_PARAMETERS = frozenset({"publish_rate_hz", "bev_image_scale", "component_logit_range"})

_ROS_TYPES = {
    bool: ParameterType.PARAMETER_BOOL,
    int: ParameterType.PARAMETER_INTEGER,
    float: ParameterType.PARAMETER_DOUBLE,
    str: ParameterType.PARAMETER_STRING,
    tuple: ParameterType.PARAMETER_STRING_ARRAY,
}


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
            name=spec.name,
            type=_ROS_TYPES[spec.type],
            description=spec.description,
            additional_constraints="; ".join(constraints),
            read_only=spec.name in READ_ONLY_PARAMETERS,
        )
        if spec.min is not None and spec.type is float:
            descriptor.floating_point_range = [
                FloatingPointRange(from_value=float(spec.min), to_value=float(spec.max), step=0.0)
            ]
        elif spec.min is not None and spec.type is int:
            descriptor.integer_range = [
                IntegerRange(from_value=int(spec.min), to_value=int(spec.max), step=1)
            ]
        descriptors[spec.name] = descriptor
    return descriptors


class _Run:
    """Everything built in configure and dropped in cleanup."""

    def __init__(
        self,
        params: MonitorParams,
        pipeline: Any,
        ingest: Ingest,
        status: MonitorStatus,
        inference_workers: int,
        cpu_threads: int,
    ) -> None:
        self.params = params
        self.pipeline = pipeline
        self.ingest = ingest
        self.status = status  # counters and statuses behind /diagnostics, as analyze keeps them
        self.inference_workers = inference_workers
        self.cpu_threads = cpu_threads
        self.runner: OrderedRunner | None = None  # from activate to deactivate
        self.publishers: dict[str, Any] = {}
        self.subscriptions: list[Any] = []
        self.timers: list[Any] = []


class MonitorNode(LifecycleNode):
    """The LMD runtime monitor (module docstring). Node options (context, parameter_overrides,
    namespace, ...) pass through to rclpy."""

    def __init__(
        self,
        node_name: str = NODE_NAME,
        *,
        diagnostics_period_s: float = DIAGNOSTICS_PERIOD_S,
        **node_options: Any,
    ) -> None:
        super().__init__(node_name, **node_options)
        self.diagnostics_period_s = diagnostics_period_s
        self.types = RclpyTypes()
        # Overrides for names the node does not declare (a typo in a launch file, a stale
        # parameter) would be ignored by rclpy without a word: refuse them, with the message the
        # params-file check of `ros2-lmd monitor` gives. (rclpy has no public accessor for them.)
        overrides = {name: p.value for name, p in getattr(self, "_parameter_overrides", {}).items()}
        params_from_mapping(overrides, source=f"node {self.get_name()}: parameter overrides")
        for spec in parameter_specs():
            default = list(spec.default) if spec.type is tuple else spec.default
            self.declare_parameter(spec.name, default, parameter_descriptors()[spec.name])
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._runtime = {name: self.get_parameter(name).value for name in RUNTIME_PARAMETERS}
        self._run: _Run | None = None
        self._lock = threading.Lock()  # assembler, extrinsics, counters, latest results
        self._throttle = Throttle(LOG_THROTTLE_S)
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
        except (
            ParameterError,
            SensorDataError,
            FileNotFoundError,
            KeyError,
            ValueError,
            RuntimeError,
            OSError,
        ) as error:
            self.get_logger().error(f"configure failed: {error}")
            self._run = None
            return TransitionCallbackReturn.FAILURE
        run = self._run
        self.get_logger().info(
            f"configured: model {run.params.model} ({', '.join(run.pipeline.modalities)}) on "
            f"{run.pipeline.device} ({run.inference_workers} workers x {run.cpu_threads} threads), "
            f"{len(run.ingest.sensors)} sensors, "
            f"key sensor {run.ingest.key_sensor}, "
            f"grid {run.pipeline.model.grid.nx}x{run.pipeline.model.grid.ny} @ "
            f"{run.pipeline.model.grid.resolution} m"
        )
        return TransitionCallbackReturn.SUCCESS

    def _configure(self) -> _Run:
        # Imported here: torch and the models load in configure, not when the node is created.
        import torch

        from ros2_lmd.models import load_model
        from ros2_lmd.monitor.pipeline import pipeline_for, resolve_device

        params = self.read_params()
        device = resolve_device(params.device)
        # A core stays with the message callbacks: on 2 cores with one core busy elsewhere, a
        # 2-thread model call took 7 to 17 times as long as a 1-thread one.
        workers, threads = inference_plan(
            device.type == "cpu",
            params.inference_workers,
            params.cpu_threads,
            reserved_cores=1,
            prefer="latency",
        )
        torch.set_num_threads(threads)  # process-wide: each worker's operators use this many
        model = load_model(params.model, device)
        # topics resolved in the node's namespace (relative ones under it), so logs and
        # /diagnostics name them in full; remapping rules still apply (rcl matches them on the
        # resolved name)
        ingest, ignored = ingest_for_model(params, model, namespace=self.get_namespace())
        params = ingest.params
        if ignored:
            self.get_logger().warn(
                f"modalities {ignored} are not inputs of model {params.model}: not subscribed"
            )
        pipeline = pipeline_for(model, params, device)
        # The first call of a model is slow (lazy kernel set-up; compiling the decomposition takes
        # seconds): done here, at configure, so the first live frame is on time.
        warm_s = pipeline.warm_up(1)
        self.get_logger().info(f"warmed up in {warm_s:.1f} s: decomposition {pipeline.decomposition_status}")
        monitor_status = MonitorStatus.for_run(params, ingest, pipeline.modalities, self.get_name())
        run = _Run(params, pipeline, ingest, monitor_status, workers, threads)
        prefix = params.output_prefix.rstrip("/") or "/"
        reliable = QoSProfile(
            depth=5, reliability=QoSReliabilityPolicy.RELIABLE, history=QoSHistoryPolicy.KEEP_LAST
        )
        grid_class = self.types.cls("nav_msgs/msg/OccupancyGrid")
        image_class = self.types.cls("sensor_msgs/msg/Image")
        for layer in ("fused", *pipeline.modalities, "bias"):
            run.publishers[f"bev/{layer}"] = self.create_lifecycle_publisher(
                grid_class, f"{prefix}/bev/{layer}", reliable
            )
        for layer in (*pipeline.modalities, "bias"):  # the signed images of the components
            run.publishers[f"bev_image/{layer}"] = self.create_lifecycle_publisher(
                image_class, f"{prefix}/bev_image/{layer}", reliable
            )
        for key, type_name in (
            ("bev_image", "sensor_msgs/msg/Image"),
            ("markers", "visualization_msgs/msg/MarkerArray"),
            ("decomposition", "ros2_lmd/msg/DecompositionSummary"),
            ("alerts", "ros2_lmd/msg/AlertArray"),
            ("incidents", "ros2_lmd/msg/Incident"),
        ):
            run.publishers[key] = self.create_lifecycle_publisher(
                self.types.cls(type_name), f"{prefix}/{key}", reliable
            )
        run.publishers["diagnostics"] = self.create_lifecycle_publisher(
            self.types.cls("diagnostic_msgs/msg/DiagnosticArray"),
            "/diagnostics",
            QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE),
        )
        with self._lock:
            self._reset_counters()
        return run

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        run = self._run
        if run is None:
            return TransitionCallbackReturn.FAILURE
        with self._lock:
            self._last_processed_at = time.monotonic()  # the blind check counts from activation
        if run.params.extrinsics_source == "tf_static":
            try:
                from tf2_msgs.msg import TFMessage
            except ImportError:
                self.get_logger().error(
                    "extrinsics_source is tf_static but tf2_msgs is not installed: no /tf_static "
                    "subscription (use extrinsics_source config, or build vendor/tf2_msgs)"
                )
                with self._lock:
                    self._extrinsics_error = "tf2_msgs is not installed: /tf_static not subscribed"
            else:
                latched = QoSProfile(
                    depth=100,
                    reliability=QoSReliabilityPolicy.RELIABLE,
                    durability=QoSDurabilityPolicy.TRANSIENT_LOCAL,
                )
                run.subscriptions.append(
                    self.create_subscription(TFMessage, TF_STATIC, self._handler(TF_STATIC), latched)
                )
        # reliable: a deep history, so a node that falls behind processes every message late
        # instead of losing some (the time sync is by stamp, so the frames are the same)
        sensor_qos = (
            qos_profile_sensor_data
            if run.params.sensor_qos == "sensor_data"
            else QoSProfile(
                depth=100, reliability=QoSReliabilityPolicy.RELIABLE, history=QoSHistoryPolicy.KEEP_LAST
            )
        )
        classes = {
            "image": "sensor_msgs/msg/CompressedImage"
            if run.params.use_compressed
            else "sensor_msgs/msg/Image",
            "camera_info": "sensor_msgs/msg/CameraInfo",
            "points": "sensor_msgs/msg/PointCloud2",
        }
        for topic, kind in run.ingest.topics().items():
            if kind in classes:
                run.subscriptions.append(
                    self.create_subscription(
                        self.types.cls(classes[kind]), topic, self._handler(topic), sensor_qos
                    )
                )
        run.runner = OrderedRunner(
            run.pipeline.compute,
            self._conclude,
            workers=run.inference_workers,
            depth=run.params.queue_depth,
            when_full="drop_oldest",
            on_error=self._conclude_failed,
            name="lmd_inference",
        )
        # Both on the steady clock: under use_sim_time a ROS-clock timer stops with /clock (a bag
        # that ends), and a monitor whose inputs stop must still flush its frames and report
        # the silence in /diagnostics, not look frozen.
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        run.timers.append(self.create_timer(SYNC_TICK_S, self._on_sync_tick, clock=steady))
        run.timers.append(
            self.create_timer(self.diagnostics_period_s, self._publish_diagnostics, clock=steady)
        )
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
        runner, run.runner = run.runner, None
        if runner is not None:
            for frame in runner.close(discard=True):
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
        """The live-only timing (the counters of a run are its MonitorStatus)."""
        self._key_arrivals: dict[float, float] = {}
        self._latest_receive: tuple[float, float] | None = None  # (stamp, monotonic)
        self._last_publish = -float("inf")
        # For the blind check: when a sensor message last came in and a frame was last processed
        # (monotonic).
        self._last_message_at: float | None = None
        self._last_processed_at = time.monotonic()

    @property
    def sensor_health(self) -> SensorHealthTracker | None:
        """The per-sensor bookkeeping behind /diagnostics (None until configured)."""
        return self._run.status.tracker if self._run else None

    @property
    def frames_processed(self) -> int:
        run = self._run
        return run.status.frames_processed if run else 0

    @property
    def frames_dropped(self) -> int:
        run = self._run
        if run is None:
            return 0
        with self._lock:
            return run.status.frames_dropped

    def frames_pending(self) -> int:
        """Frames held anywhere in the node: in the time sync (including fallback-key readings not
        yet decided), in the runner's queue, or in inference."""
        run = self._run
        if run is None:
            return 0
        # The runner first: a frame moves from the time sync to the runner under self._lock, so
        # counted in this order it is never missed (at worst counted twice).
        in_runner = run.runner.pending() if run.runner is not None else 0
        with self._lock:
            return run.ingest.frames_pending + in_runner

    @property
    def last_message_at(self) -> float | None:
        """When (time.monotonic()) the last sensor message came in; None before any."""
        with self._lock:
            return self._last_message_at

    def drop_counts(self) -> dict[str, int]:
        run = self._run
        if run is None:
            return {}
        with self._lock:
            return dict(run.status.drops)

    # --- Callbacks: convert and add ----------------------------------------------------------------

    def _handler(self, topic: str) -> Callable[[Any], None]:
        return lambda msg: self._on_message(topic, msg)

    def _on_message(self, topic: str, msg: Any) -> None:
        run = self._run
        if run is None:
            return
        now = time.monotonic()
        # The reference the stamp is checked against: ROS time (simulated time under use_sim_time)
        reference = self.get_clock().now().nanoseconds * 1e-9
        with self._lock:
            outcome = run.ingest.on_message(topic, msg, reference)
            run.status.on_message(outcome, now)
            if outcome.kind == "reading":
                self._last_message_at = now
            if outcome.kind == "reading" and not outcome.error:
                if outcome.sensor.name == run.ingest.key_sensor:
                    self._key_arrivals[outcome.stamp] = now
                    while len(self._key_arrivals) > 100:
                        self._key_arrivals.pop(next(iter(self._key_arrivals)))
                self._latest_receive = (outcome.stamp, now)
        if outcome.time_jump:
            self.get_logger().warn(
                f"time jumped ({outcome.time_jump}, seen on {topic}): the time sync and the sensor-health "
                "baselines start over"
            )
        if outcome.bad:
            self._log_problem(outcome.topic, outcome.bad)
        elif outcome.note:
            self._log_note(topic, outcome.note)
        if outcome.kind == "reading":
            self._assemble(run)

    def _log_problem(self, topic: str, reason: str) -> None:
        held = self._throttle(topic, time.monotonic())
        if held is not None:
            more = f" ({held} more since the last report)" if held else ""
            self.get_logger().warn(f"{topic}: {reason}{more}")

    def _log_note(self, topic: str, note: str) -> None:
        # Its own call site: rclpy refuses one call site logging at two severities.
        held = self._throttle(topic, time.monotonic())
        if held is not None:
            more = f" ({held} more since the last report)" if held else ""
            self.get_logger().info(f"{topic}: {note}{more}")

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
        runner = run.runner
        if runner is None:
            return
        # From the time sync to the runner under one lock: a frame is always in one or the other
        # (frames_pending).
        with self._lock:
            results = run.ingest.pop_ready(now_stamp)
            superseded = [runner.put(r) for r in results if not isinstance(r, DroppedFrame)]
        for result in results:
            if isinstance(result, DroppedFrame):
                self._count_drop(drop_kind(result), result.stamp, result.reason)
                if drop_kind(result) == DROP_ASSEMBLY:  # a malformed message was logged on arrival
                    self._log_problem("time sync", f"frame at {result.stamp:.3f} dropped: {result.reason}")
        for frame in superseded:
            if frame is not None:
                self._count_drop(DROP_SUPERSEDED, frame.stamp, "superseded by a newer frame")

    def _count_drop(self, kind: str, stamp: float, reason: str) -> None:
        run = self._run
        if run is not None:
            with self._lock:
                run.status.on_drop(kind, reason)
        for listener in self.drop_listeners:
            listener(stamp, f"{kind}: {reason}")

    # --- Conclusion (runner workers, in stamp order): alerts and outputs ---------------------------

    def _conclude(self, frame: SensorFrame, computed: Any, failure: BaseException | None) -> None:
        run = self._run
        if failure is not None:  # a model failure must not stop the monitor
            self._count_drop(DROP_INFERENCE, frame.stamp, f"{type(failure).__name__}: {failure}")
            self._log_problem("inference", f"frame at {frame.stamp:.3f}: {type(failure).__name__}: {failure}")
            return
        try:
            report = run.pipeline.conclude(computed)
        except Exception as error:  # noqa: BLE001 — an alert-step failure must not stop the monitor
            self._count_drop(DROP_INFERENCE, frame.stamp, f"{type(error).__name__}: {error}")
            self._log_problem("inference", f"frame at {frame.stamp:.3f}: {type(error).__name__}: {error}")
            return
        self._after_frame(run, frame, report)

    def _conclude_failed(self, frame: SensorFrame, error: BaseException) -> None:
        # nor may a failing listener or publisher
        self._log_problem("outputs", f"frame at {frame.stamp:.3f}: {type(error).__name__}: {error}")

    def _after_frame(self, run: _Run, frame: SensorFrame, report: Any) -> None:
        now = time.monotonic()
        with self._lock:
            run.status.on_frame(frame)
            run.status.on_report(report, run.pipeline)
            self._last_processed_at = now
            processed, dropped = run.status.frames_processed, run.status.frames_dropped
            arrival = self._key_arrivals.pop(frame.stamp, None)
        self._log_incidents(report)
        for listener in self.report_listeners:
            listener(frame, report)
        latency_ms = (now - arrival) * 1e3 if arrival is not None else report.latency_ms
        rate = float(self._runtime["publish_rate_hz"])
        if rate > 0 and now - self._last_publish < 1.0 / rate:
            for change in report.incidents:  # incidents are never thinned out
                run.publishers["incidents"].publish(
                    outputs.incident_msg(change, report, self.types, run.params.base_frame)
                )
            return
        self._last_publish = now
        self._publish_outputs(run, report, processed, dropped, latency_ms)

    def _log_incidents(self, report: Any) -> None:
        """Each incident is logged once when it opens (or escalates) and once when it closes."""
        for change in report.incidents:
            incident = change.incident
            if change.change == "CLOSED":
                self.get_logger().info(
                    f"incident #{incident.id} closed at {incident.end:.3f}, after "
                    f"{incident.end - incident.start:.1f} s: {incident.describe()}"
                )
            else:
                self.get_logger().warn(
                    f"incident #{incident.id} {change.change.lower()} (since {incident.start:.3f}): "
                    f"{incident.describe()}"
                )

    def _publish_outputs(
        self, run: _Run, report: Any, processed: int, dropped: int, latency_ms: float
    ) -> None:
        skip_views = {
            key
            for key, publisher in run.publishers.items()
            if outputs.is_view(key) and publisher.get_subscription_count() == 0
        }
        with self._lock:
            sensor_messages = run.ingest.sensor_messages()
            run.status.views_skipped += len(skip_views)
        for key, _type, message in outputs.frame_messages(
            report,
            self.types,
            run.params.base_frame,
            processed,
            dropped,
            latency_ms,
            int(self._runtime["bev_image_scale"]),
            float(self._runtime["component_logit_range"]),
            run.params.detection_threshold,
            sensor_messages,
            skip_views,
        ):
            run.publishers[key].publish(message)

    # --- Diagnostics -------------------------------------------------------------------------------

    def diagnostic_records(self, now: float | None = None) -> list[status.StatusRecord]:
        """The /diagnostics statuses (monitor.diagnostics.MonitorStatus, as `analyze` records
        them) at `now` (monotonic seconds; default: now), named in the node's namespace
        (status.in_namespace: two monitors in one domain publish distinct names)."""
        run = self._run
        if run is None:
            return []
        now = time.monotonic() if now is None else now
        with self._lock:
            intake = run.status.intake(run.ingest, now)
            records = run.status.records(intake, run.pipeline.decomposition_status, self._blind_for(run, now))
        return status.in_namespace(records, self.get_namespace())

    def _blind_for(self, run: _Run, now: float) -> float | None:
        """Seconds without a processed frame while sensor messages keep coming, once that exceeds
        blind_timeout_s; else None. Call under self._lock."""
        timeout = run.params.blind_timeout_s
        if self._last_message_at is None or now - self._last_message_at > timeout:
            return None  # nothing comes in: the sensors' own statuses say so
        quiet = now - self._last_processed_at
        return quiet if quiet > timeout else None

    def _publish_diagnostics(self) -> None:
        run = self._run
        if run is None:
            return
        stamp = self.get_clock().now().nanoseconds * 1e-9
        run.publishers["diagnostics"].publish(
            outputs.diagnostic_array(self.diagnostic_records(), self.types, stamp)
        )


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """SIGINT and SIGTERM as a request to stop, however often and however fast they come.

    The handler is a C-level callable (a dict's `setdefault(signum, frame)`), so no Python
    bytecode runs in it. A Python handler runs between bytecodes of the main thread, also between
    those of a handler already running: with the main thread waiting for the GIL behind the
    compute threads, signals 5 ms apart (launch's SIGINT and SIGTERM after a Ctrl-C, a supervisor
    repeating them) nested a handler that set a `threading.Event` until a RecursionError (seen in
    CI). `ignore_from_now` leaves both ignored at the OS level for the rest of the process: at
    exit Python resets a signal with a Python handler to the default action (death by that
    signal), but leaves an ignored one ignored; `signal.signal` runs the handlers of signals
    already pending before it changes one, so none is reported as lost."""

    def __init__(self) -> None:
        self._received: dict[int, object] = {}

    def install(self) -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._received.setdefault)

    def is_set(self) -> bool:
        return bool(self._received)

    def ignore_from_now(self) -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)


def main(params_file: str | None = None, ros_args: list[str] | None = None) -> int:
    """Run the monitor until SIGINT (Ctrl-C) or SIGTERM. `ros_args` are `--ros-args ...`
    (remappings, more parameter files, which override `params_file`). Exit codes: 0 clean stop
    (also when stopped by a signal), 1 configure failed, 2 bad parameters.

    This is the process's entry point (`ros2-lmd monitor`, lib/ros2_lmd/monitor): once stopping,
    it ignores SIGINT and SIGTERM for the rest of the process. A terminal's Ctrl-C reaches the
    whole process group, so under `ros2 launch` the node gets the terminal's SIGINT and then
    launch's own (and SIGTERM after sigterm_timeout): with the default handler restored, that
    second signal raised KeyboardInterrupt in the clean-up or killed the process at exit, and
    launch reported "process has died [... exit code -2 ...]"."""
    args = [NODE_NAME]
    if params_file:
        args += ["--ros-args", "--params-file", str(params_file)]
    args += list(ros_args or [])
    # Our own SIGINT/SIGTERM handling: rclpy's raises KeyboardInterrupt wherever the main thread
    # happens to be (even inside the clean-up); here a signal only ends the spin loop, however
    # often it comes.
    stop = StopSignals()
    stop.install()
    transport = use_shipped_transport()  # before rclpy.init: Fast DDS reads it once
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node = None
    try:
        try:
            node = MonitorNode()
        except (
            ParameterError,
            rclpy.exceptions.InvalidParameterTypeException,
            rclpy.exceptions.InvalidParameterValueException,
        ) as error:
            print(f"ros2-lmd monitor: {error}", file=sys.stderr)
            return 2
        node.get_logger().info(transport)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        if node.autostart:
            # configure takes seconds (the model's warm-up): a stop asked meanwhile is honoured
            # before activate
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                return 1
            if not stop.is_set() and node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
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
        # Stopping: a further signal must not interrupt the clean-up or the interpreter's exit.
        # Ignored at the OS level: at exit Python resets a signal with a Python handler to the
        # default action (death by that signal), but leaves an ignored one ignored.
        stop.ignore_from_now()
        if node is not None:
            node.close()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
