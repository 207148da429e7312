"""Incidents: one sensor fault is one incident, from its first evidence to its recovery, however many
frames and alerts it spans. Evidence comes per frame from every check the monitor has (a silent or
late sensor in the time sync, a sensor's own signal checks, a modality's contribution collapsing
in the decomposition); the tracker folds it into incidents that open once, escalate when the
evidence gets worse, and close once no evidence has been seen for `clear_after_s`.

When every sensor of a modality (two or more) shows evidence at once, the fault is the modality's
(all six cameras blacked out is one incident, not six), and that incident absorbs the sensors'
evidence while it is open. Deterministic: the same frames give the same incidents live and offline.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ros2_lmd.monitor.report import ERROR, SEVERITY_NAMES, WARN

if TYPE_CHECKING:  # sensor_checks needs cv2, which the incident logic does not
    from ros2_lmd.monitor.sensor_checks import Finding, SensorVerdict

OPENED, ESCALATED, CLOSED = "OPENED", "ESCALATED", "CLOSED"


@dataclass(frozen=True)
class Evidence:
    """One frame's sign that a sensor, or a whole modality (`sensor` == `modality`), is faulty."""

    sensor: str
    modality: str
    kind: str  # what saw it: silent, missing, late, contribution, or a signal check (frozen, ...)
    severity: int  # WARN or ERROR
    detail: str


@dataclass
class Incident:
    """A sensor fault. `sensor` is a sensor name, or the modality for a fault of all its sensors
    (`sensors` then lists them). `end` is None while the incident is open."""

    id: int
    sensor: str
    modality: str
    sensors: tuple[str, ...]
    kinds: list[str]
    evidence: str
    start: float
    start_ns: int
    peak_severity: int
    last_evidence: float
    end: float | None = None
    end_ns: int | None = None
    frames: int = 0

    @property
    def open(self) -> bool:
        return self.end is None

    @property
    def who(self) -> str:
        return (
            self.sensor if self.sensor != self.modality else f"{self.modality} ({len(self.sensors)} sensors)"
        )

    def describe(self) -> str:
        """Sensor, severity and evidence, without times."""
        severity = SEVERITY_NAMES.get(self.peak_severity, self.peak_severity)
        return f"{self.who}: {severity} [{', '.join(self.kinds)}] {self.evidence}"

    def summary(self, t0: float = 0.0) -> str:
        """One line: sensor, start-end (seconds from t0), severity, evidence."""
        span = f"{self.start - t0:.1f}-{'' if self.end is None else f'{self.end - t0:.1f}'} s"
        return f"{self.who}: {span} {self.describe()[len(self.who) + 2 :]}"


@dataclass(frozen=True)
class IncidentChange:
    """An incident opening, escalating or closing, as of this frame (a snapshot)."""

    change: str
    incident: Incident


@dataclass
class IncidentTracker:
    """Folds per-frame evidence into incidents (module docstring). `sensors`: sensor -> modality,
    every configured sensor (for the all-sensors-of-a-modality rule)."""

    sensors: Mapping[str, str]
    clear_after_s: float = 0.5
    open_after_frames: int = 3
    incidents: list[Incident] = field(default_factory=list)
    _open: dict[str, Incident] = field(default_factory=dict)
    # key -> (stamp, stamp_ns) of the first of the consecutive frames with evidence, and their count
    _streak: dict[str, tuple[float, int, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.clear_after_s > 0 or self.open_after_frames < 1:
            raise ValueError(
                f"IncidentTracker: need clear_after_s > 0 and open_after_frames >= 1, got "
                f"{self.clear_after_s}, {self.open_after_frames}"
            )

    def open_incidents(self) -> list[Incident]:
        return list(self._open.values())

    def close_all(self, stamp: float, stamp_ns: int) -> list[IncidentChange]:
        """Close every open incident now (time jumped; the end of a bag keeps them open)."""
        changes = []
        for incident in self._open.values():
            incident.end, incident.end_ns = stamp, stamp_ns
            changes.append(IncidentChange(CLOSED, dataclasses.replace(incident)))
        self._open.clear()
        return changes

    def update(self, stamp: float, stamp_ns: int, evidence: Sequence[Evidence]) -> list[IncidentChange]:
        """One frame, in stamp order: the evidence seen in it. Returns what changed."""
        changes: list[IncidentChange] = []
        groups = self._group(evidence)
        for key in list(self._streak):
            if key not in groups:
                del self._streak[key]  # evidence must hold in consecutive frames to open
        for key, items in groups.items():
            incident = self._open.get(key)
            severity = max(e.severity for e in items)
            if incident is None:
                first_stamp, first_ns, count = self._streak.get(key, (stamp, stamp_ns, 0))
                self._streak[key] = (first_stamp, first_ns, count + 1)
                if count + 1 < self.open_after_frames:
                    continue
                del self._streak[key]
                first = max(items, key=lambda e: e.severity)
                modality = first.modality
                scope = self._scope(key, modality, items, ())
                incident = Incident(
                    id=len(self.incidents) + 1,
                    sensor=key,
                    modality=modality,
                    sensors=scope,
                    kinds=sorted({e.kind for e in items}),
                    evidence=first.detail,
                    start=first_stamp,  # the first frame of the evidence, not the one it opened with
                    start_ns=first_ns,
                    peak_severity=severity,
                    last_evidence=stamp,
                )
                self.incidents.append(incident)
                self._open[key] = incident
                changes.append(IncidentChange(OPENED, dataclasses.replace(incident)))
            else:
                incident.last_evidence = stamp
                incident.kinds = sorted(set(incident.kinds) | {e.kind for e in items})
                incident.sensors = self._scope(key, incident.modality, items, incident.sensors)
                if severity > incident.peak_severity:
                    incident.peak_severity = severity
                    incident.evidence = max(items, key=lambda e: e.severity).detail
                    changes.append(IncidentChange(ESCALATED, dataclasses.replace(incident)))
            incident.frames += 1
        for key, incident in list(self._open.items()):
            if stamp - incident.last_evidence >= self.clear_after_s or stamp < incident.last_evidence:
                incident.end, incident.end_ns = stamp, stamp_ns
                del self._open[key]
                changes.append(IncidentChange(CLOSED, dataclasses.replace(incident)))
        return changes

    def _scope(
        self, key: str, modality: str, items: Sequence[Evidence], before: tuple[str, ...]
    ) -> tuple[str, ...]:
        """The sensors an incident concerns, in configuration order: its sensor; for a modality's
        incident the sensors named in its evidence so far (all of them when none is named)."""
        if key != modality:
            return (key,)
        named = set(before) | {e.sensor for e in items if e.sensor != modality}
        return tuple(s for s, m in self.sensors.items() if m == modality and (s in named or not named))

    def _group(self, evidence: Sequence[Evidence]) -> dict[str, list[Evidence]]:
        """Incident key -> its evidence this frame. Per modality: the modality's key when its
        incident is open, or at least half of its sensors (two or more) show evidence at once (night
        over six cameras is one fault, not six), or only the modality itself does (its
        contribution); otherwise each sensor's own key, and the modality's own evidence goes with
        the sensors that show some (one blacked-out camera also collapses the camera contribution:
        the same fault). A sensor with its own incident open keeps it."""
        by_modality: dict[str, list[Evidence]] = {}
        for item in evidence:
            by_modality.setdefault(item.modality, []).append(item)
        groups: dict[str, list[Evidence]] = {}
        for modality, items in by_modality.items():
            members = [s for s, m in self.sensors.items() if m == modality]
            named = sorted({e.sensor for e in items if e.sensor != modality})
            own = [e for e in items if e.sensor == modality]
            whole = (
                modality in self._open
                or (len(named) >= 2 and 2 * len(named) >= len(members))
                or (own and not named)
            )
            for item in items:
                if item.sensor in self._open:
                    groups.setdefault(item.sensor, []).append(item)
                elif whole:
                    groups.setdefault(modality, []).append(item)
                elif item.sensor != modality:
                    groups.setdefault(item.sensor, []).append(item)
                else:
                    for sensor in named:
                        groups.setdefault(sensor, []).append(item)
        return groups


def evidence_from_frame(
    sensor_status: Mapping[str, str],
    sensor_modality: Mapping[str, str],
    modality_states: Mapping[str, str],
    modality_ratios: Mapping[str, float] | None = None,
) -> list[Evidence]:
    """The evidence every frame carries anyway: sensors the time sync left out (silent, late,
    no extrinsics: SensorFrame.sensor_status) and modalities whose contribution collapsed or
    degraded in the decomposition (AlertEngine states)."""
    evidence = []
    for sensor, reason in sensor_status.items():
        if reason:
            kind = "silent" if reason.startswith("silent") else "missing"
            modality = sensor_modality.get(sensor, "")
            evidence.append(Evidence(sensor, modality, kind, ERROR if kind == "silent" else WARN, reason))
    ratios = modality_ratios or {}
    for modality, state in modality_states.items():
        if state in ("failed", "degraded"):
            ratio = ratios.get(modality)
            detail = f"{modality} contribution {'collapsed' if state == 'failed' else 'degraded'}" + (
                f" ({ratio:.0%} of its baseline, relative to the other sensors)" if ratio is not None else ""
            )
            evidence.append(
                Evidence(modality, modality, "contribution", ERROR if state == "failed" else WARN, detail)
            )
    return evidence


def evidence_from_verdicts(
    verdicts: Mapping[str, SensorVerdict], held: dict[str, tuple[Finding, ...]]
) -> list[Evidence]:
    """Evidence from the per-sensor signal checks (monitor.sensor_checks.SensorVerdict per sensor):
    one item per failed check of every sensor not in state ok (its kind the check's feature: a rule
    for one fault such as `black_fraction`, or evidence with no fault model, `repeat` and
    `anomaly`, whose detail names the profile feature and, for the LiDAR-radar fit, the sensor the
    majority blames), at ERROR when the sensor's state is
    failed, WARN when suspect. While the hysteresis waits to confirm a recovery a frame may pass
    every check; the sensor's latest findings (kept in `held`, sensor -> findings, which this
    updates) stand for it until the state is ok again, so an incident stays open until then. A
    sensor without data in the frame gives none: why it is silent is the time sync's evidence."""
    evidence = []
    for name, verdict in verdicts.items():
        if verdict.state == "ok":
            held.pop(name, None)
            continue
        if verdict.evidence:
            held[name] = verdict.evidence
        if not verdict.observed:
            continue
        severity = ERROR if verdict.state == "failed" else WARN
        for finding in held.get(name, ()):
            evidence.append(Evidence(name, verdict.modality, finding.feature, severity, finding.text))
    return evidence
