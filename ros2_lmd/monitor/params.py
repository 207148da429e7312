"""Parameters of the monitor node: one record, `MonitorParams`, holding every parameter with its
type, default, description and allowed range, and a loader for ROS 2 parameter YAML files that
checks them. No ROS import: the node turns `parameter_specs()` into ParameterDescriptors, and the
offline tools read the same file through `load_params_file`.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields, replace
from pathlib import Path
from typing import Any

from ros2_lmd.errors import LMDError
from ros2_lmd.models.rule_presets import RULE_PRESETS
from ros2_lmd.monitor.alerts import ALERT_PARAMETERS, AlertConfig, alert_config_problems
from ros2_lmd.monitor.declare import copied_from, setting
from ros2_lmd.sensors.frame import MODALITIES

NUSCENES_CAMERAS = (
    "cam_front",
    "cam_front_right",
    "cam_front_left",
    "cam_back",
    "cam_back_left",
    "cam_back_right",
)
NUSCENES_RADARS = (
    "radar_front",
    "radar_front_left",
    "radar_front_right",
    "radar_back_left",
    "radar_back_right",
)

# Parameters naming topics, and what a topic name may be here: absolute (/lidar_top) or relative to
# the node's namespace (lidar_top); no private (~) names or substitutions.
TOPIC_PARAMETERS = (
    "camera_image_topics",
    "camera_info_topics",
    "radar_topics",
    "lidar_topic",
    "output_prefix",
)
TOPIC_NAME = re.compile(r"/?[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*")

# Parameters every rclpy node has; a parameter file may set them beside ours.
ROS_NODE_PARAMETERS = {"use_sim_time": bool}
# rclpy reads these itself (QoS overrides per topic); they are passed through unchecked.
ROS_PARAMETER_PREFIXES = ("qos_overrides.",)


class ParameterError(LMDError, ValueError):
    """A parameter file or value that the monitor cannot use; the message names each parameter."""


@dataclass(frozen=True)
class ParameterSpec:
    """One node parameter, as the node declares it (name, type, default, ParameterDescriptor)."""

    name: str
    type: type  # bool, int, float, str, or tuple for a string array
    default: Any
    description: str
    min: float | None = None  # inclusive range, numeric parameters only
    max: float | None = None
    choices: tuple[str, ...] = ()  # allowed values, string parameters only

    @property
    def ros_type(self) -> str:
        """The ROS 2 parameter type name (rcl_interfaces/ParameterType), e.g. `double`."""
        return {bool: "bool", int: "integer", float: "double", str: "string", tuple: "string_array"}[
            self.type
        ]


@dataclass(frozen=True)
class MonitorParams:
    """Every parameter of the monitor node, with the defaults of config/monitor.yaml.

    Construction checks ranges, choices and the constraints between parameters, and raises
    ParameterError naming each offending parameter.
    """

    # --- Model ---
    model: str = setting(
        "compact_crl",
        "Fusion model: a registry name (e.g. compact_crl) or a path to a .safetensors file with "
        "its JSON config beside it.",
    )
    device: str = setting(
        "auto",
        "Where inference runs: auto (CUDA when available, else CPU), cuda or cpu.",
        choices=("auto", "cuda", "cpu"),
    )
    decomposition: str = setting(
        "compiled",
        "How LMD runs: compiled (traced once per input shape and compiled with torch.compile when "
        "the node is configured or analyze starts; checked against eager, its fallback on any failure) "
        "or eager (the rules run op by op: no compile time, slower per frame).",
        choices=("compiled", "eager"),
    )
    lmd_rules: str = setting(
        "default",
        "LMD rule preset (models/rule_presets.py): default (one rule per layer family: BatchNorm "
        "identity, InstanceNorm ratio, activations by the real gate) or paper (the LMD authors' "
        "configuration, chosen per module: BatchNorm uniform, InstanceNorm ratio in the BEV "
        "compressor and identity in the decoder).",
        choices=tuple(RULE_PRESETS),
    )
    cpu_threads: int = setting(
        0,
        "CPU threads per inference worker (torch intra-op threads). 0: the CPU cores less one, "
        "shared among the workers, at least 1: a core stays free for the sensor callbacks; with "
        "every core given to inference, each step waits for threads descheduled by the callbacks.",
        min=0,
        max=256,
    )
    inference_workers: int = setting(
        0,
        "Frames in inference at once, each in its own thread (alerts are still concluded in "
        "stamp order). 0: 1. More workers can raise the frame rate a many-core CPU sustains, not "
        "the latency of a frame.",
        min=0,
        max=8,
    )
    modalities: tuple[str, ...] = setting(
        MODALITIES, "Modalities fed to the model and decomposed; the others are not subscribed to."
    )

    # --- Inputs ---
    camera_names: tuple[str, ...] = setting(
        NUSCENES_CAMERAS, "Camera names, in the model's camera order; also the hardware ids in diagnostics."
    )
    camera_image_topics: tuple[str, ...] = setting(
        tuple(f"{name}/image_rect_compressed" for name in NUSCENES_CAMERAS),
        "Image topic of each camera, aligned with camera_names. Relative names (the default) "
        "are in the node's namespace: /cam_front/... in the root one, /car1/cam_front/... under "
        "namespace car1.",
    )
    camera_info_topics: tuple[str, ...] = setting(
        tuple(f"{name}/camera_info" for name in NUSCENES_CAMERAS),
        "sensor_msgs/CameraInfo topic of each camera (intrinsics), aligned with camera_names.",
    )
    use_compressed: bool = setting(
        True, "true: camera_image_topics carry sensor_msgs/CompressedImage; false: sensor_msgs/Image."
    )
    radar_topics: tuple[str, ...] = setting(
        tuple(NUSCENES_RADARS),
        "sensor_msgs/PointCloud2 topic of each radar (fields x, y, z, rcs, vx_comp, vy_comp).",
    )
    lidar_topic: str = setting(
        "lidar_top", "sensor_msgs/PointCloud2 topic of the LiDAR (fields x, y, z, intensity)."
    )

    # --- Synchronisation and frames ---
    key_sensor: str = setting(
        "lidar",
        "Modality whose messages trigger a frame; the others are matched to it in time.",
        choices=MODALITIES,
    )
    key_fallback: str = setting(
        "camera",
        "Modality whose first sensor triggers frames while the key sensor is silent (its "
        "messages then start a frame when no key message is within key_gap_s), so a dead key "
        "sensor is reported instead of stopping the monitor; none: no fallback.",
        choices=("none", *MODALITIES),
    )
    key_gap_s: float = setting(
        0.25,
        "How long (s) without a key-sensor message, around a fallback-sensor message, before "
        "that message starts a frame (a few key-sensor periods).",
        min=0.01,
        max=10.0,
    )
    sync_tolerance_s: float = setting(
        0.06,
        "Largest stamp difference (s) to the key sensor for a message to join its frame; a "
        "sensor outside it is missing for that frame.",
        min=0.0,
        max=1.0,
    )
    self_check_every: int = setting(
        20,
        "Every how many frames the decomposition checks itself: the frame is decomposed again "
        "with the bias as its own stream and its conservation error reported (decomposition_error "
        "in /diagnostics, DecompositionSummary and frames.csv). 0: never. Costs about one more "
        "decomposition of one frame per check.",
        min=0,
        max=100000,
    )
    sensor_checks: bool = setting(
        True,
        "true: each sensor is also judged by cheap checks of its own data (black, frozen, "
        "over-exposed, dimmed or blocked image; dark LiDAR sectors, near-field clutter, point "
        "count; radar ghosts) against its own healthy history, so incidents name the failing "
        "sensor and see faults the decomposition cannot (docs/sensor_checks.md).",
    )
    self_check_warn: float = setting(
        1e-4,
        "Decomposition error (relative) above which /diagnostics reports WARN.",
        min=0.0,
        max=1.0,
    )
    self_check_error: float = setting(
        1e-2,
        "Decomposition error (relative) above which /diagnostics reports ERROR.",
        min=0.0,
        max=1e6,
    )
    stamp_tolerance_s: float = setting(
        2.0,
        "How far (s) a message's stamp may stray from the time the other sensors keep (stamp "
        "minus arrival time live, minus log time in a bag) and from its own sensor's previous "
        "stamp plus the time since; a message beyond it is rejected and counted. When every "
        "sensor moves together (bag loop, clock reset) the time sync and the baselines restart.",
        min=0.01,
        max=3600.0,
    )
    blind_timeout_s: float = setting(
        2.0,
        "While sensors publish, /diagnostics reports ERROR once no frame has been processed for "
        "this long (s), with the reason frames are being dropped.",
        min=0.1,
        max=3600.0,
    )
    max_image_pixels: int = setting(
        4096 * 4096,
        "Largest camera image (width x height) decoded; larger ones are rejected before decoding "
        "(read from the image header), so one oversized image cannot stall the monitor.",
        min=1,
        max=1 << 30,
    )
    camera_decode: str = setting(
        "reduced",
        "How JPEG camera images are decoded: reduced (at 1/2, 1/4 or 1/8 of their size, scaled by "
        "libjpeg while decoding, the largest reduction that keeps at least the model's camera input "
        "and the 448x256 the camera checks were validated at: a 1600x900 camera at 800x450, three "
        "times cheaper with the checks) or full (every pixel).",
        choices=("reduced", "full"),
    )
    sensor_qos: str = setting(
        "sensor_data",
        "QoS of the sensor subscriptions: sensor_data (best effort, keep last 5: what "
        "drivers publish) or reliable (keep last 100: every message, late rather than lost, from "
        "reliable publishers only; e.g. bag replay into a node slower than the recording).",
        choices=("sensor_data", "reliable"),
    )
    sync_max_delay_s: float = setting(
        0.3,
        "How much later (s) than a newer message an older one may still arrive (transport and "
        "decoding jitter); a frame waits at most this long past the tolerance for a missing sensor. "
        "Larger: fewer sensors wrongly missing on a loaded machine; smaller: lower latency.",
        min=0.0,
        max=5.0,
    )
    base_frame: str = setting("base_link", "Vehicle frame of the BEV grid and of every output (REP-103).")
    extrinsics_source: str = setting(
        "tf_static",
        "Where sensor poses in base_frame come from: tf_static (the /tf_static "
        "topic) or config (extrinsics_file).",
        choices=("tf_static", "config"),
    )
    extrinsics_file: str = setting(
        "",
        "With extrinsics_source config: a YAML file mapping each sensor's frame_id to "
        "{translation: [x, y, z], rotation: [qx, qy, qz, qw]}, its pose in base_frame.",
    )

    # --- Detections and sensor health: the alert thresholds, declared in AlertConfig ---
    detection_threshold: float = copied_from(AlertConfig, "detection_threshold")
    min_detection_cells: int = copied_from(AlertConfig, "min_detection_cells")
    single_sensor_share: float = copied_from(AlertConfig, "single_sensor_share")
    support_share: float = copied_from(AlertConfig, "support_share")
    disagreement_logit: float = copied_from(AlertConfig, "disagreement_logit")
    degraded_ratio: float = copied_from(AlertConfig, "degraded_ratio")
    failed_ratio: float = copied_from(AlertConfig, "failed_ratio")
    baseline_window: int = copied_from(AlertConfig, "baseline_window")
    hysteresis_k: int = copied_from(AlertConfig, "hysteresis_k")
    hysteresis_n: int = copied_from(AlertConfig, "hysteresis_n")
    incident_clear_s: float = copied_from(AlertConfig, "incident_clear_s")
    incident_open_frames: int = copied_from(AlertConfig, "incident_open_frames")
    digest_window_s: float = copied_from(AlertConfig, "digest_window_s")
    digest_min_frames: int = copied_from(AlertConfig, "digest_min_frames")

    # --- Diagnostics ---
    stale_timeout_s: float = setting(
        0.5,
        "A sensor with no message for this long (s) is stale (diagnostics WARN; STALE is "
        "kept for a sensor that never sent anything).",
        min=0.001,
        max=3600.0,
    )
    diagnostics_persistence: int = setting(
        3, "Consecutive failing checks before a diagnostics status becomes ERROR.", min=1, max=1000
    )

    # --- Outputs ---
    publish_rate_hz: float = setting(
        0.0, "Most outputs per second; 0 publishes every processed frame.", min=0.0, max=1000.0
    )
    output_prefix: str = setting(
        "lmd",
        "Prefix of the output topics (<prefix>/bev/<fused|camera|radar|lidar|bias>, "
        "<prefix>/bev_image, <prefix>/markers, <prefix>/decomposition, <prefix>/alerts, "
        "<prefix>/incidents). Relative (the default): under the node's namespace, /lmd/... in the "
        "root one, /car1/lmd/... under namespace car1; an absolute name (/lmd) is the same in "
        "every namespace. /diagnostics is always global, as ROS diagnostics are.",
    )
    queue_depth: int = setting(
        1,
        "Frames waiting for inference; 1 keeps only the latest (older frames are dropped and "
        "counted in frames_dropped).",
        min=1,
        max=100,
    )
    bev_image_scale: int = setting(
        2, "Pixels per BEV cell in the colour image <prefix>/bev_image.", min=1, max=16
    )
    component_logit_range: float = setting(
        4.0,
        "Logit contribution shown at full scale in <prefix>/bev/<camera|radar|lidar|bias> "
        "(cell value 50 + 50 * clip(c / range, -1, 1): 50 no contribution, 100 at +range or "
        "more, 0 at -range or less) and at full intensity in <prefix>/bev_image.",
        min=0.01,
        max=1000.0,
    )

    # --- Lifecycle ---
    autostart: bool = setting(
        True,
        "true: the node configures and activates itself on start; false: it waits in the "
        "unconfigured state for a lifecycle manager (configure, activate).",
    )

    def __post_init__(self) -> None:
        problems = [
            problem for spec in parameter_specs() for problem in _check_value(spec, getattr(self, spec.name))
        ]
        if not problems:
            problems = self._check_consistency()
        if problems:
            raise ParameterError("; ".join(problems))

    def _check_consistency(self) -> list[str]:
        problems = []
        if self.self_check_warn > self.self_check_error:
            problems.append(
                f"self_check_warn: {self.self_check_warn} exceeds self_check_error {self.self_check_error}"
            )
        if len(set(self.modalities)) != len(self.modalities) or not self.modalities:
            problems.append(f"modalities: must be distinct and non-empty, got {list(self.modalities)}")
        unknown = [m for m in self.modalities if m not in MODALITIES]
        if unknown:
            problems.append(f"modalities: unknown {unknown}, expected some of {list(MODALITIES)}")
        if self.key_sensor not in self.modalities:
            problems.append(f"key_sensor: {self.key_sensor!r} is not in modalities {list(self.modalities)}")
        if self.key_fallback == self.key_sensor:
            problems.append(f"key_fallback: must differ from key_sensor ({self.key_sensor!r}) or be none")
        for name in ("camera_image_topics", "camera_info_topics"):
            if len(getattr(self, name)) != len(self.camera_names):
                problems.append(
                    f"{name}: {len(getattr(self, name))} topics for {len(self.camera_names)} camera_names"
                )
        problems += alert_config_problems({name: getattr(self, name) for name in ALERT_PARAMETERS})
        for name in TOPIC_PARAMETERS:
            value = getattr(self, name)
            for topic in (value,) if isinstance(value, str) else value:
                if not TOPIC_NAME.fullmatch(topic):
                    problems.append(
                        f"{name}: {topic!r} is not a ROS topic name (names of letters, digits and _, "
                        "not starting with a digit, separated by /; absolute with a leading /)"
                    )
        if self.extrinsics_source == "config" and not self.extrinsics_file:
            problems.append("extrinsics_file: required when extrinsics_source is config")
        return problems


def parameter_specs() -> tuple[ParameterSpec, ...]:
    """Every monitor parameter, in declaration order."""
    hints = typing.get_type_hints(MonitorParams)
    specs = []
    for f in fields(MonitorParams):
        kind = hints[f.name]
        specs.append(
            ParameterSpec(
                name=f.name,
                type=tuple if typing.get_origin(kind) is tuple else kind,
                default=f.default if f.default is not MISSING else None,
                description=f.metadata["description"],
                min=f.metadata["min"],
                max=f.metadata["max"],
                choices=f.metadata["choices"],
            )
        )
    return tuple(specs)


def _type_problem(spec: ParameterSpec, value: Any) -> str | None:
    """Why `value` is not of the parameter's ROS type, or None. As in rclpy, an integer is not
    accepted for a double parameter (write 2.0, not 2)."""
    expected = spec.type
    if expected is tuple:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            return f"expected a list of strings, got {value!r}"
        return None
    ok = isinstance(value, expected) and not (expected is not bool and isinstance(value, bool))
    if ok:
        return None
    hint = (
        f" (write {value}.0)"
        if expected is float and isinstance(value, int) and not isinstance(value, bool)
        else ""
    )
    return f"expected {spec.ros_type}, got {type(value).__name__} {value!r}{hint}"


def _check_value(spec: ParameterSpec, value: Any) -> list[str]:
    problem = _type_problem(spec, value)
    if problem:
        return [f"{spec.name}: {problem}"]
    if spec.min is not None and not spec.min <= value <= spec.max:
        return [f"{spec.name}: {value} is outside [{spec.min}, {spec.max}]"]
    if spec.choices and value not in spec.choices:
        return [f"{spec.name}: {value!r} is not one of {list(spec.choices)}"]
    return []


def resolve_topic(name: str, namespace: str = "/") -> str:
    """The topic `name` as ROS resolves it for a node in `namespace` (without remapping): an
    absolute name stays, a relative one goes under the namespace."""
    if name.startswith("/"):
        return name
    return f"{namespace.rstrip('/')}/{name}"


def with_resolved_topics(params: MonitorParams, namespace: str = "/") -> MonitorParams:
    """`params` with every topic parameter resolved for a node in `namespace`: what `analyze`
    reads and writes, as a bag names its topics in full (a bag recorded beside the monitor in the
    root namespace has /lidar_top, /lmd/incidents, ...)."""
    resolved: dict[str, Any] = {}
    for name in TOPIC_PARAMETERS:
        value = getattr(params, name)
        if isinstance(value, str):
            resolved[name] = resolve_topic(value, namespace)
        else:
            resolved[name] = tuple(resolve_topic(topic, namespace) for topic in value)
    return replace(params, **resolved)


def params_from_mapping(values: Mapping[str, Any], source: str = "parameters") -> MonitorParams:
    """MonitorParams from flat `name: value` pairs (missing names keep their defaults).

    Raises ParameterError naming every unknown or ill-typed parameter, prefixed by `source`.
    """
    specs = {spec.name: spec for spec in parameter_specs()}
    problems = []
    chosen: dict[str, Any] = {}
    for name, value in values.items():
        if name in ROS_NODE_PARAMETERS:
            if not isinstance(value, ROS_NODE_PARAMETERS[name]):
                problems.append(f"{name}: expected {ROS_NODE_PARAMETERS[name].__name__}, got {value!r}")
            continue
        if name.startswith(ROS_PARAMETER_PREFIXES):
            continue
        spec = specs.get(name)
        if spec is None:
            problems.append(f"{name}: unknown parameter")
            continue
        problem = _type_problem(spec, value)
        if problem:
            problems.append(f"{name}: {problem}")
        elif spec.type is tuple and not value:
            # rcl cannot type an empty YAML list, so the node could not load it either.
            problems.append(f"{name}: an empty list cannot be given in a ROS 2 parameter file")
        else:
            chosen[name] = tuple(value) if spec.type is tuple else value
    if problems:
        raise ParameterError(f"{source}: " + "; ".join(problems))
    try:
        return MonitorParams(**chosen)
    except ParameterError as error:
        raise ParameterError(f"{source}: {error}") from None


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested YAML mappings to dotted ROS parameter names ({'a': {'b': 1}} -> {'a.b': 1})."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _node_pattern_matches(pattern: str, node_fqn: str) -> bool:
    """rcl's node-name matching in parameter files: `/**` any namespace depth, `*` one token."""
    if not pattern.startswith("/"):
        pattern = "/" + pattern
    parts = []
    for token in re.split(r"(/\*\*|\*)", pattern):
        if token == "/**":
            parts.append("(/[^/]+)*")
        elif token == "*":
            parts.append("[^/]+")
        elif token:
            parts.append(re.escape(token))
    return re.fullmatch("".join(parts), node_fqn) is not None


def read_yaml_mapping(path: str | Path, expected: str, label: str = "") -> Mapping:
    """The YAML mapping in `path` (safe_load: plain data only), or ParameterError naming the file
    (after `label`, e.g. a parameter name) and what was wrong."""
    import yaml  # Imported here: only the file loaders need PyYAML.

    where = f"{label}: {path}" if label else str(path)
    try:
        document = yaml.safe_load(Path(path).read_text())
    except OSError as error:
        raise ParameterError(f"{where}: cannot read: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ParameterError(f"{where}: not valid YAML: {error}") from None
    if not isinstance(document, Mapping):
        raise ParameterError(f"{where}: expected {expected}")
    return document


def load_params_file(path: str | Path, node_name: str = "lmd_monitor", namespace: str = "/") -> MonitorParams:
    """MonitorParams from a ROS 2 parameter file (`/**:` or `<node>:` then `ros__parameters:`).

    Every section matching the node's fully qualified name applies, later ones overriding
    earlier ones, as rcl does. Raises ParameterError naming the file and each bad parameter.
    """
    path = Path(path)
    document = read_yaml_mapping(path, "a mapping of node names to ros__parameters")

    node_fqn = "/".join(("", namespace.strip("/"), node_name)).replace("//", "/")
    merged: dict[str, Any] = {}
    matched = []
    for section, body in document.items():
        if not _node_pattern_matches(str(section), node_fqn):
            continue
        if not isinstance(body, Mapping) or not isinstance(body.get("ros__parameters"), Mapping):
            raise ParameterError(f"{path}: section {section!r} has no ros__parameters mapping")
        extra = sorted(set(body) - {"ros__parameters"})
        if extra:
            raise ParameterError(
                f"{path}: section {section!r}: unexpected keys {extra} beside ros__parameters"
            )
        matched.append(str(section))
        merged.update(_flatten(body["ros__parameters"]))
    if not matched:
        raise ParameterError(
            f"{path}: no section applies to node {node_fqn} (sections: "
            f"{[str(s) for s in document]}); use '/**:' or '{node_name}:'"
        )
    return params_from_mapping(merged, source=str(path))
