"""Health statuses without ROS, as /diagnostics will carry them: the DiagnosticStatus levels, one
record per status, and the per-modality statuses from the alert engine's state (per sensor:
monitor.sensor_health; the monitor's own: the node). ros2_lmd.messages.outputs.diagnostic_array
turns records into a DiagnosticArray."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from ros2_lmd.monitor.report import FrameReport

# diagnostic_msgs/DiagnosticStatus levels.
DIAG_OK, DIAG_WARN, DIAG_ERROR, DIAG_STALE = 0, 1, 2, 3


@dataclass
class StatusRecord:
    """One diagnostic_msgs/DiagnosticStatus, without ROS."""

    name: str
    hardware_id: str
    level: int
    message: str
    values: dict[str, str] = field(default_factory=dict)


STATUS_PREFIX = "ros2_lmd: "  # every status name starts so: "ros2_lmd: cam_front"


def in_namespace(records: Sequence[StatusRecord], namespace: str) -> list[StatusRecord]:
    """The records named for a monitor in ROS namespace `namespace` ("/" or "/car1"):
    "car1/ros2_lmd: cam_front". /diagnostics is one topic for the whole domain, so two monitors in
    different namespaces must not publish the same status name; in the root namespace the names
    stay as they are."""
    prefix = namespace.strip("/")
    if not prefix:
        return list(records)
    return [
        replace(record, name=f"{prefix}/{record.name}") if record.name.startswith(STATUS_PREFIX) else record
        for record in records
    ]


MODALITY_STATE_LEVELS = {"ok": DIAG_OK, "degraded": DIAG_WARN, "failed": DIAG_ERROR, "missing": DIAG_WARN}


def mark_incidents(records: Sequence[StatusRecord], incidents: Sequence) -> None:
    """Raise each sensor's (or, for a modality incident, the modality's) status to its open
    incident's severity (WARN 1 / ERROR 2 map to the same DiagnosticStatus levels), naming it."""
    for incident in incidents:
        for record in records:
            if record.hardware_id not in (incident.sensor, *incident.sensors):
                continue
            level = DIAG_ERROR if incident.peak_severity >= 2 else DIAG_WARN
            if level >= record.level or record.level == DIAG_STALE:
                record.level = level
                evidence = f"incident #{incident.id} since {incident.start:.3f}: {incident.evidence}"
                record.message = f"{evidence}; {record.message}"
            record.values["incident"] = str(incident.id)


def sensor_and_modality_statuses(
    sensor_records: list[StatusRecord],
    lost: Mapping[str, int],
    signal_states: Mapping[str, str],
    modalities: Sequence[str],
    report: FrameReport | None,
    states: Mapping[str, str],
    ratios: Mapping[str, float],
    open_incidents: Sequence,
) -> list[StatusRecord]:
    """The /diagnostics statuses of every sensor (`SensorHealthTracker.statuses`, completed with
    the messages lost before the monitor and the sensor's signal-check state) and modality, marked
    with the open incidents: what the live node publishes and `analyze` records, alike. The
    monitor's own status is the caller's."""
    for record in sensor_records:
        record.values["messages_lost"] = str(lost.get(record.hardware_id, 0))
        record.values["signal_checks"] = signal_states.get(record.hardware_id, "not seen yet")
    records = sensor_records + modality_statuses(modalities, report, states, ratios)
    mark_incidents(records, open_incidents)
    return records


def modality_statuses(
    modalities: Sequence[str],
    report: FrameReport | None,
    states: Mapping[str, str],
    ratios: Mapping[str, float],
) -> list[StatusRecord]:
    """One status per modality from the latest report and the alert engine's state
    (`pipeline.alerts.states()`, `health_ratios(pipeline)`). STALE before the first frame."""
    records = []
    for modality in modalities:
        name = f"{STATUS_PREFIX}{modality} contribution"
        if report is None:
            records.append(
                StatusRecord(name, modality, DIAG_STALE, "no frame processed yet", {"state": "unknown"})
            )
            continue
        state = states.get(modality, "ok")
        share = float(report.shares.get(modality, 0.0))
        ratio = float(ratios.get(modality, 1.0))
        message = {
            "ok": "contributing normally",
            "degraded": f"contribution degraded ({ratio:.0%} of baseline)",
            "failed": f"contribution collapsed ({ratio:.0%} of baseline)",
            "missing": "no data within sync tolerance",
        }.get(state, state)
        records.append(
            StatusRecord(
                name,
                modality,
                MODALITY_STATE_LEVELS.get(state, DIAG_WARN),
                message,
                {
                    "state": state,
                    "share": f"{share:.3f}",
                    "contribution_ratio": f"{ratio:.3f}",
                    "present": str(bool(report.present.get(modality, True))).lower(),
                    "energy": f"{float(report.energy.get(modality, 0.0)):.4g}",
                },
            )
        )
    return records
