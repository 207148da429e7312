"""Records passed from the pipeline to the node and the replay tools (docs/architecture.md, contracts).
Plain dataclasses of numpy arrays and numbers: no torch, no ROS."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ros2_lmd.geometry.grid import BEVGrid
from ros2_lmd.sensors.stamps import seconds_to_ns

# Alert kinds; the strings match the constants of msg/Alert.msg.
SINGLE_SENSOR_SUPPORT = "SINGLE_SENSOR_SUPPORT"
MODALITY_DISAGREEMENT = "MODALITY_DISAGREEMENT"
SENSOR_DEGRADED = "SENSOR_DEGRADED"
SENSOR_FAILED = "SENSOR_FAILED"
SENSOR_STALE = "SENSOR_STALE"
SENSOR_MISSING = "SENSOR_MISSING"
SENSOR_RECOVERED = "SENSOR_RECOVERED"

# Severities, as diagnostic_msgs/DiagnosticStatus levels and msg/Alert.msg.
INFO, WARN, ERROR = 0, 1, 2
SEVERITY_NAMES = {INFO: "INFO", WARN: "WARN", ERROR: "ERROR"}


@dataclass
class Detection:
    """A connected region of the fused BEV output above the detection threshold."""

    id: int
    centroid: tuple[float, float]  # base_link metres
    footprint: np.ndarray  # (4, 2) corners of the minimum-area rectangle, base_link metres
    area_m2: float
    score: float  # peak fused probability in the region
    shares: dict[str, float]  # per modality, sums to 1 (0 for all when no positive evidence)
    dominant: str
    supporting: tuple[str, ...]
    single_sensor: bool
    cells: int
    label: int = 0  # its value in the frame's region label map


@dataclass
class Alert:
    kind: str
    severity: int
    modality: str
    message: str
    sensor: str = ""
    detection: Detection | None = None


@dataclass
class FrameReport:
    """Everything the monitor concluded about one SensorFrame."""

    stamp: float
    frame_index: int
    grid: BEVGrid
    fused: np.ndarray  # (ny, nx) logits
    components: dict[str, np.ndarray]  # modality and "bias" -> (ny, nx) logit contributions
    shares: dict[str, float]  # overall share of positive evidence per modality
    energy: dict[str, float]  # mean |component - its spatial mean| per modality
    present: dict[str, bool]
    detections: list[Detection]
    alerts: list[Alert]
    activity: dict[str, float | None] = field(default_factory=dict)  # the sensor-health signal
    timings_ms: dict[str, float] = field(default_factory=dict)
    conservation_error: float = 0.0
    # The self-check (Pipeline, `self_check_every`): conservation with an explicit bias stream;
    # NaN on frames not checked.
    decomposition_error: float = float("nan")
    stamp_ns: int | None = None  # the key message's header stamp exactly; default: from `stamp`
    # Incidents that opened, escalated or closed with this frame (monitor.incidents.IncidentChange)
    incidents: list = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.stamp_ns is None:
            self.stamp_ns = seconds_to_ns(self.stamp)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(m for m in self.components if m != "bias")

    @property
    def latency_ms(self) -> float:
        return float(sum(self.timings_ms.values()))
