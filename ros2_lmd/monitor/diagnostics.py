"""The monitor's status model, live and offline: the counters of what became of every message and
frame, the per-sensor health tracker, and the /diagnostics records built from them (one per
sensor, one per modality, one for the monitor). The live node and `analyze` feed the same
`MonitorStatus` with the same events, so the /diagnostics a bag gets offline are the ones the node
would have published (test_end_to_end.py checks it on a drive)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ros2_lmd.monitor import status
from ros2_lmd.monitor.report import FrameReport
from ros2_lmd.monitor.sensor_health import SensorHealthTracker, SensorInfo
from ros2_lmd.monitor.status import StatusRecord

MONITOR_NAME = "lmd_monitor"  # the node's default name; the monitor's status has it as hardware id
DIAGNOSTICS_PERIOD_S = 1.0  # /diagnostics once per second: of wall time live, of bag time offline

# Why a key-sensor instant became no frame: frames.csv and /diagnostics ("dropped: <reason>").
DROP_SUPERSEDED = "superseded in the queue by a newer frame"
DROP_ASSEMBLY = "could not be assembled (late, duplicate or out-of-order key reading)"
DROP_KEY_MALFORMED = "key sensor message malformed"
DROP_INFERENCE = "inference failed"
DROP_SHUTDOWN = "still queued at deactivate"

# Values that measure this run (the machine, the transport, who subscribed), not the drive: the
# only ones in which a live node and `analyze` of the same drive may differ.
RUN_DEPENDENT_VALUES = frozenset({"rate_hz", "latency_ms", "views_not_built_no_subscriber"})


def drop_kind(dropped: Any) -> str:
    """The drop reason of a DroppedFrame left by the time sync."""
    return DROP_KEY_MALFORMED if dropped.malformed else DROP_ASSEMBLY


@dataclass
class Intake:
    """The reading side's state at one moment (messages in, time sync), taken together so that
    offline the records do not depend on how far ahead of the model the reading thread is."""

    sensor_records: list[StatusRecord]
    lost: dict[str, int]
    malformed: int
    stamps_rejected: int
    time_jumps: list[str]
    extrinsic_frames: int
    extrinsics_error: str


@dataclass
class _Concluded:
    """What the latest processed frame left for the statuses."""

    report: FrameReport
    alert_states: dict[str, str]
    ratios: dict[str, float]
    sensor_states: dict[str, str]
    open_incidents: list[Any]


class MonitorStatus:
    """Counters and latest results behind the monitor's /diagnostics. Not thread-safe: the node
    calls it under its lock (the tracker has its own); `analyze` from its reading thread
    (`on_message`, `on_frame`, `intake`) and its concluding thread (`on_drop`, `on_report`,
    `records`), which never touch the same fields."""

    def __init__(
        self,
        tracker: SensorHealthTracker,
        modalities: Sequence[str],
        params: Any,
        name: str = MONITOR_NAME,
    ) -> None:
        self.tracker = tracker
        self.modalities = tuple(modalities)
        # the thresholds (MonitorParams): self-check limits, the blind timeout (named in the message)
        self.self_check_warn = float(params.self_check_warn)
        self.self_check_error = float(params.self_check_error)
        self.blind_timeout_s = float(params.blind_timeout_s)
        self.name = name
        self.frames_processed = 0
        self.drops: Counter[str] = Counter()
        self.last_drop = ""
        self.views_skipped = 0  # view messages not built because nobody subscribed (live only)
        self._malformed: Counter[str] = Counter()  # topic -> malformed messages
        self._time_jumps: list[str] = []
        self._extrinsics_error = ""
        self._decomposition_checked: tuple[float, float] | None = None  # (frame stamp, error)
        self._concluded: _Concluded | None = None

    @classmethod
    def for_run(
        cls, params: Any, ingest: Any, modalities: Sequence[str], name: str = MONITOR_NAME
    ) -> MonitorStatus:
        """The status of a run over `ingest`'s sensors with the thresholds of `params`
        (MonitorParams)."""
        tracker = SensorHealthTracker(
            [SensorInfo(s.name, s.topic, s.modality) for s in ingest.sensors],
            params.stale_timeout_s,
            params.diagnostics_persistence,
        )
        return cls(tracker, modalities, params, name)

    # --- the reading side ------------------------------------------------------------------------

    def on_message(self, outcome: Any, now: float) -> None:
        """A message went through the Ingest (`MessageOutcome`) at `now` (monotonic seconds live,
        log time offline)."""
        if outcome.time_jump:
            self._time_jumps.append(outcome.time_jump)
        if outcome.kind == "tf":
            self._extrinsics_error = f"{outcome.topic}: {outcome.error}" if outcome.error else ""
        if outcome.bad:
            self._malformed[outcome.topic] += 1
            if outcome.sensor is not None:
                self.tracker.error(outcome.sensor.name, outcome.topic, outcome.bad, now)
        if outcome.kind == "reading" and not outcome.error:
            self.tracker.message(outcome.sensor.name, outcome.stamp, now, ok=not outcome.problem)

    def on_frame(self, frame: Any) -> None:
        """A SensorFrame is processed: each sensor left out of it is a bad check."""
        included = {name: not reason for name, reason in frame.sensor_status.items()}
        self.tracker.frame(included, frame.sensor_status)

    def intake(self, ingest: Any, now: float) -> Intake:
        return Intake(
            self.tracker.statuses(now),
            dict(ingest.losses.lost),
            sum(self._malformed.values()),
            ingest.stamps.rejected,
            list(self._time_jumps),
            len(ingest.extrinsics.frames),
            self._extrinsics_error,
        )

    # --- the concluding side ---------------------------------------------------------------------

    def on_drop(self, kind: str, reason: str) -> None:
        self.drops[kind] += 1
        self.last_drop = f"{kind}: {reason}"

    @property
    def frames_dropped(self) -> int:
        return sum(self.drops.values())

    def on_report(self, report: FrameReport, pipeline: Any) -> None:
        """A frame was concluded by `pipeline` (its alert, sensor-check and incident state are
        taken now, as they stood after this frame)."""
        from ros2_lmd.monitor.pipeline import health_ratios

        self.frames_processed += 1
        if report.decomposition_error == report.decomposition_error:  # not NaN: a checked frame
            self._decomposition_checked = (report.stamp, report.decomposition_error)
        incidents = list(pipeline.incidents.open_incidents()) if pipeline.incidents is not None else []
        self._concluded = _Concluded(
            report,
            pipeline.alerts.states(),
            health_ratios(pipeline),
            dict(pipeline.sensor_states),
            incidents,
        )

    # --- the records -----------------------------------------------------------------------------

    def records(self, intake: Intake, decomposition: str, blind_s: float | None = None) -> list[StatusRecord]:
        """The /diagnostics statuses: every sensor, every modality, then the monitor. `decomposition`
        says how LMD runs (Pipeline.decomposition_status); `blind_s` (live only) is how long sensors
        have published without a processed frame, once over blind_timeout_s."""
        concluded = self._concluded
        report = concluded.report if concluded else None
        sensor_records = [
            StatusRecord(r.name, r.hardware_id, r.level, r.message, dict(r.values))
            for r in intake.sensor_records
        ]
        records = status.sensor_and_modality_statuses(
            sensor_records,
            intake.lost,
            concluded.sensor_states if concluded else {},
            self.modalities,
            report,
            concluded.alert_states if concluded else {},
            concluded.ratios if concluded else {},
            concluded.open_incidents if concluded else [],
        )
        records.append(self._monitor_record(intake, report, decomposition, blind_s))
        return records

    def _monitor_record(
        self,
        intake: Intake,
        report: FrameReport | None,
        decomposition: str,
        blind_s: float | None,
    ) -> StatusRecord:
        processed, dropped = self.frames_processed, self.frames_dropped
        values = {
            "frames_processed": str(processed),
            "frames_dropped": str(dropped),
            "malformed_messages": str(intake.malformed),
            "extrinsic_frames": str(intake.extrinsic_frames),
            "extrinsics_error": intake.extrinsics_error,
            "messages_lost": str(sum(intake.lost.values())),
            "stamps_rejected": str(intake.stamps_rejected),
            "time_jumps": str(len(intake.time_jumps)),
            "last_time_jump": intake.time_jumps[-1] if intake.time_jumps else "",
            "decomposition": decomposition,
            "views_not_built_no_subscriber": str(self.views_skipped),
        }
        values.update({f"dropped: {reason}": str(count) for reason, count in self.drops.items()})
        if report is not None:
            values["latency_ms"] = f"{report.latency_ms:.1f}"
            values["conservation_error"] = f"{report.conservation_error:.3g}"
        level = status.DIAG_OK if processed else status.DIAG_STALE
        message = (
            f"{processed} frames processed, {dropped} dropped" if processed else "no frame processed yet"
        )
        if intake.extrinsics_error:
            level, message = status.DIAG_WARN, f"extrinsics: {intake.extrinsics_error}"
        if self._decomposition_checked is not None:
            stamp, error = self._decomposition_checked
            values["decomposition_error"] = f"{error:.3g}"
            values["decomposition_checked_stamp"] = f"{stamp:.6f}"
            limits = ((self.self_check_error, status.DIAG_ERROR), (self.self_check_warn, status.DIAG_WARN))
            for limit, limit_level in limits:
                if error > limit and limit_level > level:
                    level = limit_level
                    message = (
                        f"decomposition self-check failed: error {error:.3g} > {limit:g} at frame "
                        f"{stamp:.3f} (a decomposition rule does not conserve the output)"
                    )
                    break
        if blind_s is not None:  # the monitor must never stay blind quietly
            level = status.DIAG_ERROR
            message = (
                f"blind: sensors publish but no frame was processed for {blind_s:.1f} s "
                f"(blind_timeout_s {self.blind_timeout_s:g}); last drop: {self.last_drop or 'none'}"
            )
        return StatusRecord(f"{status.STATUS_PREFIX}{self.name}", self.name, level, message, values)


def comparable(records: Sequence[StatusRecord]) -> list[tuple[str, str, int, str, Mapping[str, str]]]:
    """`records` without the RUN_DEPENDENT_VALUES: what a live node and `analyze` of one drive
    must agree on."""
    return [
        (
            r.name,
            r.hardware_id,
            r.level,
            r.message,
            {k: v for k, v in r.values.items() if k not in RUN_DEPENDENT_VALUES},
        )
        for r in records
    ]
