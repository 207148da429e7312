"""The analysis scored against a ground-truth fault timeline (faults.csv of a simulated drive):
which injected faults the sensor-state alerts and the incidents caught, how fast, whether they
named the right sensor, and what they raised outside every fault. Pure: alerts, incidents and
faults in, scores out; report.py shows them, bench/bench_faults.py and the tests check them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ros2_lmd.monitor.report import SENSOR_DEGRADED, SENSOR_FAILED, SENSOR_MISSING, SENSOR_STALE

if TYPE_CHECKING:
    from ros2_lmd.replay.tables import AlertRow

# The alerts that say a sensor itself is at fault (the ones scored, drawn and snapshotted).
SENSOR_STATE_ALERTS = (SENSOR_DEGRADED, SENSOR_FAILED, SENSOR_MISSING, SENSOR_STALE)


def modality_of_sensor(sensor: str) -> str:
    """The modality a sensor's name implies (cam*, radar*, lidar*), for faults whose rig is unknown."""
    name = sensor.lower()
    for prefix, modality in (("cam", "camera"), ("radar", "radar"), ("lidar", "lidar")):
        if name.startswith(prefix) or name == modality:
            return modality
    return name


@dataclass
class FaultScore:
    """One injected fault (merged per modality and kind) against the sensor-state alerts."""

    modality: str
    kind: str
    start: float
    end: float
    detected: bool
    delay_s: float | None


def score_alerts(
    alerts: Sequence[AlertRow], faults: Sequence[Any], t0: float, grace_s: float = 1.0
) -> tuple[list[FaultScore], float, float]:
    """Per fault (merged per modality and kind): detected if a sensor-state alert for its modality is
    raised in [start, end + grace]; delay from the fault's start. Precision: the share of
    sensor-state alerts raised inside some fault of their modality (plus grace)."""
    merged: dict[tuple[str, str, float, float], None] = {}
    for f in faults:
        merged[(modality_of_sensor(f.sensor), f.kind, f.start, f.end)] = None
    state_alerts = [a for a in alerts if a.kind in SENSOR_STATE_ALERTS]
    scores = []
    for modality, kind, start, end in merged:
        hits = [
            a.stamp - t0 - start
            for a in state_alerts
            if a.modality == modality and start <= a.stamp - t0 <= end + grace_s
        ]
        scores.append(FaultScore(modality, kind, start, end, bool(hits), min(hits) if hits else None))
    inside = [
        a
        for a in state_alerts
        if any(a.modality == m and s <= a.stamp - t0 <= e + grace_s for m, _, s, e in merged)
    ]
    precision = len(inside) / len(state_alerts) if state_alerts else float("nan")
    recall = sum(s.detected for s in scores) / len(scores) if scores else float("nan")
    return scores, precision, recall


@dataclass
class FaultOutcome:
    """One injected fault (all its sensors, one kind, one window) against the incidents."""

    target: str  # the sensor, or the modality when the fault covers all of its sensors
    modality: str
    kind: str
    start: float
    end: float
    detected: bool  # an incident of its modality started within `within_s` of its onset
    delay_s: float | None
    right_sensor: bool  # that incident names exactly the target
    clear_s: float | None  # how long after the fault's end the incident closed (None: open)


@dataclass
class IncidentScore:
    faults: list[FaultOutcome]
    false_incidents: list[Any]

    @property
    def recall(self) -> float:
        return sum(f.detected for f in self.faults) / len(self.faults) if self.faults else float("nan")

    @property
    def right_sensor(self) -> float:
        detected = [f for f in self.faults if f.detected]
        return sum(f.right_sensor for f in detected) / len(detected) if detected else float("nan")


def score_incidents(
    incidents: Sequence[Any],
    faults: Sequence[Any],
    t0: float,
    sensor_modality: dict[str, str],
    within_s: float = 1.5,
    grace_s: float = 1.0,
) -> IncidentScore:
    """Incidents against the ground truth (faults.csv events, times from t0): a fault is detected
    when an incident of its modality starts in [onset - grace, onset + within_s] and names the
    right sensor when it names exactly the faulted sensor (or the modality, for a fault of all its
    sensors). An incident that matches no fault (from onset - grace to end + grace) is false."""
    grouped: dict[tuple[str, float, float, str], list[str]] = {}
    for f in faults:
        modality = sensor_modality.get(f.sensor) or modality_of_sensor(f.sensor)
        grouped.setdefault((modality, f.start, f.end, f.kind), []).append(f.sensor)
    outcomes, matched = [], set()
    for (modality, start, end, kind), sensors in grouped.items():
        members = [s for s, m in sensor_modality.items() if m == modality]
        target = modality if len(members) > 1 and set(members) <= set(sensors) else sensors[0]
        candidates = [
            i
            for i in incidents
            if i.modality == modality and start - grace_s <= i.start - t0 <= end + grace_s
        ]
        matched.update(id(i) for i in candidates)
        early = [i for i in candidates if i.start - t0 <= start + within_s]
        first = min(early, key=lambda i: i.start, default=None)
        outcomes.append(
            FaultOutcome(
                target,
                modality,
                kind,
                start,
                end,
                first is not None,
                None if first is None else max(0.0, first.start - t0 - start),
                any(i.sensor == target for i in early),
                None if first is None or first.end is None else first.end - t0 - end,
            )
        )
    false = [i for i in incidents if id(i) not in matched]
    return IncidentScore(outcomes, false)


__all__ = [
    "SENSOR_STATE_ALERTS",
    "modality_of_sensor",
    "FaultScore",
    "score_alerts",
    "FaultOutcome",
    "IncidentScore",
    "score_incidents",
]
