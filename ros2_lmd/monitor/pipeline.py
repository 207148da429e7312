"""monitor.Pipeline: SensorFrame -> FrameReport, the one code path of the live node and the offline
tools. encode runs once; LMD decomposes fuse; detections, shares and alerts follow on the grid."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ros2_lmd.lmd import RuleVariants, decompose
from ros2_lmd.lmd.compiled import shared_compiled
from ros2_lmd.models.base import FusionModel
from ros2_lmd.models.rule_presets import rule_preset
from ros2_lmd.monitor.alerts import ALERT_PARAMETERS, AlertConfig, AlertEngine, ObjectAlertDigest
from ros2_lmd.monitor.detections import evidence_shares, extract_detections, sigmoid
from ros2_lmd.monitor.incidents import (
    Evidence,
    IncidentChange,
    IncidentTracker,
    evidence_from_frame,
    evidence_from_verdicts,
)
from ros2_lmd.monitor.params import MonitorParams
from ros2_lmd.monitor.report import FrameReport
from ros2_lmd.monitor.resources import keep_freed_memory
from ros2_lmd.monitor.sensor_checks import (
    Finding,
    FrameMeasurement,
    SensorCheckConfig,
    SensorChecks,
    verdict_alerts,
)
from ros2_lmd.sensors.frame import SensorFrame

OUTPUT_KEY = "bev_logits"
DEFAULT_SENSOR_CHECKS = SensorCheckConfig()


def contribution_activity(component: np.ndarray, previous: np.ndarray) -> float:
    """The sensor-health signal: how much a modality's contribution map changed since the last
    frame (mean |c_t - c_{t-1}|). A working sensor keeps reshaping its evidence as the scene moves;
    a blacked-out, frozen or blinded one stops doing so (its contribution may stay large: a black
    camera still 'contributes' the same ghost every frame). Compared per modality with its own
    baseline and with the other modalities (AlertEngine), so a scene that stops moving is not a
    failure."""
    return float(np.abs(component - previous).mean())


ACTIVITY_MAX_GAP_S = 0.5  # frames further apart than this do not form a change


def contribution_energy(component: np.ndarray) -> float:
    """How much a modality shapes the output map: the mean absolute deviation of its component
    from its own spatial mean. A constant offset carries no information about where objects are,
    so a sensor that still 'contributes' a flat map (a black camera, an empty sweep) scores low."""
    return float(np.abs(component - component.mean()).mean())


def resolve_device(device: str) -> torch.device:
    """`auto` picks CUDA when available; asking for `cuda` without one is an error, not a fallback."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available (use 'auto' or 'cpu')")
    return torch.device(device)


def alert_config_from(params: MonitorParams) -> AlertConfig:
    """The AlertConfig of the node parameters: every threshold it offers as a parameter
    (ALERT_PARAMETERS), and a baseline that learns from at most its whole window."""
    values = {name: getattr(params, name) for name in ALERT_PARAMETERS}
    values["baseline_min_frames"] = min(AlertConfig.baseline_min_frames, params.baseline_window)
    return AlertConfig(**values)


@dataclass
class ComputedFrame:
    """What `Pipeline.compute` found for one frame, before the stateful alert step."""

    frame: SensorFrame
    fused: np.ndarray
    components: dict[str, np.ndarray]
    detections: list
    labels: np.ndarray
    shares: dict[str, float]
    conservation_error: float
    timings_ms: dict[str, float]
    decomposition_error: float = float("nan")
    # the signal checks' history-free part, done here in parallel (SensorChecks.measure)
    measured: FrameMeasurement | None = None


class Pipeline:
    """Runs the model and LMD on frames and keeps the alert state between them."""

    def __init__(
        self,
        model: FusionModel,
        alert_config: AlertConfig | None = None,
        device: str | torch.device = "cpu",
        rules: RuleVariants | None = None,
        self_check_every: int = 0,
        sensor_checks: SensorCheckConfig | None = DEFAULT_SENSOR_CHECKS,
        decomposition: str = "eager",
    ) -> None:
        """`decomposition`: `eager` or `compiled` (lmd/compiled.py: built per batch size by
        `warm_up`, or at the first `compute`; batch sizes not built run eager).
        `self_check_every`: every how many frames (by frame index) the decomposition is checked
        (`_due_for_check`); 0: never. `sensor_checks`: the per-sensor signal checks' thresholds
        (monitor/sensor_checks.py); None: no signal checks (incidents then rest on the time sync
        and the decomposition alone)."""
        if self_check_every < 0:
            raise ValueError(f"Pipeline: self_check_every must be >= 0, got {self_check_every}")
        if decomposition not in ("eager", "compiled"):
            raise ValueError(f"Pipeline: decomposition must be eager or compiled, got {decomposition!r}")
        self.self_check_every = self_check_every
        self.device = resolve_device(device) if isinstance(device, str) else device
        self.model = model.eval().to(self.device)
        self.rules = rules or RuleVariants()
        # The self-check's variant: the same rules with the bias carried as its own stream.
        self.checking_rules = dataclasses.replace(self.rules, bias="explicit")
        self.compiled = self.compiled_checking = None
        if decomposition == "compiled":
            self.compiled = shared_compiled(self.model, "fuse", (OUTPUT_KEY,), self.rules)
            self.compiled_checking = shared_compiled(self.model, "fuse", (OUTPUT_KEY,), self.checking_rules)
        self.config = alert_config or AlertConfig()
        self.alerts = AlertEngine(model.modalities, model.grid, self.config)
        self.frames_processed = 0
        self.time_epoch = 0
        self.digest = ObjectAlertDigest(self.config.digest_window_s, self.config.digest_min_frames)
        self.incidents: IncidentTracker | None = None  # made at the first frame (it names the sensors)
        self.sensor_checks = SensorChecks(sensor_checks) if sensor_checks is not None else None
        self._findings: dict[str, tuple[Finding, ...]] = {}  # sensor -> its latest findings while not ok
        # sensor -> its signal-check state as of the last concluded frame; replaced whole, so other
        # threads (the node's diagnostics) may read it at any time
        self.sensor_states: dict[str, str] = {}
        self._previous: tuple[float, dict[str, np.ndarray], dict[str, bool]] | None = None

    @property
    def modalities(self) -> tuple[str, ...]:
        return self.model.modalities

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def process(self, frame: SensorFrame) -> FrameReport:
        return self.process_batch([frame])[0]

    def process_batch(self, frames: Sequence[SensorFrame]) -> list[FrameReport]:
        """Model and LMD run batched; detections and alerts run frame by frame in order, so the
        alerts do not depend on the batch size."""
        return [self.conclude(computed) for computed in self.compute(frames)]

    def compute(self, frames: Sequence[SensorFrame]) -> list[ComputedFrame]:
        """The stateless part of `process_batch` (model, LMD, detections, shares): safe to call
        from several threads at once. Pass each result to `conclude`, in stamp order."""
        if not frames:
            return []
        t0 = time.perf_counter()
        inputs = self.model.prepare(list(frames), self.device)
        self._sync()
        t1 = time.perf_counter()
        with torch.inference_mode():
            features = self.model.encode(inputs)
            self._sync()
            t2 = time.perf_counter()
            due = self._due_for_check(frames)
            # A batch with a frame due for the self-check is decomposed once, with the bias carried
            # as its own stream (`_due_for_check`), not twice.
            dec = self._decompose(features, checking=bool(due))
            stacked = torch.stack([dec.total, *dec.components.values(), dec.bias]).float().cpu().numpy()
            errors = dec.conservation_errors(batch_dim=0)
            t3 = time.perf_counter()
            checked = {b: errors[b] for b in due}
        t5 = time.perf_counter()
        batch = len(frames)
        names = [*self.modalities, "bias"]
        computed = []
        for b, frame in enumerate(frames):
            t4 = time.perf_counter()
            fused = stacked[0, b, 0]
            components = {name: stacked[1 + i, b, 0] for i, name in enumerate(names)}
            modality_components = {m: components[m] for m in self.modalities}
            detections, labels = extract_detections(
                fused,
                modality_components,
                self.model.grid,
                self.config.detection_threshold,
                self.config.min_detection_cells,
                self.config.support_share,
                self.config.single_sensor_share,
            )
            occupied = sigmoid(fused) >= self.config.detection_threshold
            shares = evidence_shares(modality_components, occupied if occupied.any() else None)
            t6 = time.perf_counter()
            measured = self.sensor_checks.measure(frame) if self.sensor_checks is not None else None
            measure_ms = (time.perf_counter() - t6) * 1e3
            computed.append(
                ComputedFrame(
                    frame=frame,
                    fused=fused,
                    components=components,
                    detections=detections,
                    labels=labels,
                    shares=shares,
                    conservation_error=errors[b],
                    decomposition_error=checked.get(b, float("nan")),
                    timings_ms={
                        "prepare": (t1 - t0) * 1e3 / batch,
                        "encode": (t2 - t1) * 1e3 / batch,
                        "decompose": (t3 - t2) * 1e3 / batch,
                        "self_check": (t5 - t3) * 1e3 / batch,
                        "sensor_features": measure_ms,
                        "postprocess": (time.perf_counter() - t4) * 1e3 - measure_ms,
                    },
                    measured=measured,
                )
            )
        return computed

    def _decompose(self, features: dict[str, torch.Tensor], checking: bool = False):
        rules = self.checking_rules if checking else self.rules
        compiled = self.compiled_checking if checking else self.compiled
        if compiled is None:
            return decompose(self.model.fuse, features, rules=rules)[OUTPUT_KEY]
        if not compiled.graphs:  # nothing warmed up: build for the first batch size seen
            compiled.prepare(features)
        return compiled(features)[OUTPUT_KEY]

    def warm_up(self, batch_size: int = 1) -> float:
        """Run the model once on `batch_size` blank frames (no sensor data) and, with the compiled
        decomposition, build it for that batch size, so that the first real frame is not late.
        Stateless (no alert state changes). Returns the seconds it took."""
        start = time.perf_counter()
        blank = [SensorFrame(stamp=0.0, frame_index=-1) for _ in range(batch_size)]
        if self.compiled is not None:
            with torch.inference_mode():
                features = self.model.encode(self.model.prepare(blank, self.device))
            graphs = [self.compiled.prepare(features)]
            if self.self_check_every and self.compiled_checking is not None:
                graphs.append(self.compiled_checking.prepare(features))
            # The model has now run on the blank frames and each compiled graph on its check inputs:
            # running the whole frame again would only repeat them (0.3 s at batch 4 on 2 cores).
            # A graph left eager has not run: then the frame is run once as below.
            if all(graph.call is not None for graph in graphs):
                return time.perf_counter() - start
        self.compute(blank)
        return time.perf_counter() - start

    @property
    def decomposition_status(self) -> str:
        """How the decomposition runs, for logs and diagnostics: eager, or compiled for which batch
        sizes (and why a signature fell back to eager)."""
        if self.compiled is None:
            return "eager"
        parts = []
        for (inputs, _threads), graph in self.compiled.graphs.items():
            batch = inputs[0][1][0]  # inputs: (modality, shape, dtype, device) per modality
            parts.append(
                f"batch {batch}: " + ("compiled" if graph.call is not None else f"eager ({graph.reason})")
            )
        return "compiled, " + "; ".join(parts) if parts else "compiled (not built yet)"

    def _due_for_check(self, frames: Sequence[SensorFrame]) -> list[int]:
        """Batch indices of the frames due for the self-check (by frame index, so live and offline
        check the same frames). With the default derived bias (bias = total - components),
        conservation holds by construction and shows nothing; a batch holding a due frame is
        therefore decomposed with the bias carried as its own stream through every rule, and the
        conservation error of that is the check: a rule that mis-scales or loses part of a stream
        breaks it. (A rule that moves evidence from one modality to another while conserving the
        sum is not caught: test/lmd/test_lmd_rules.py checks each rule against its formula for that.)
        The check costs one more stream on those frames, not a second decomposition."""
        if not self.self_check_every:
            return []
        return [b for b, frame in enumerate(frames) if frame.frame_index % self.self_check_every == 0]

    def conclude(self, computed: ComputedFrame) -> FrameReport:
        """The stateful part: contribution activity and alerts. Call in stamp order."""
        t0 = time.perf_counter()
        frame, components = computed.frame, computed.components
        stamp_ns = frame.stamp_ns
        assert stamp_ns is not None  # SensorFrame.__post_init__ fills it from `stamp`
        closed_by_jump = []
        if frame.time_epoch != self.time_epoch:  # time jumped: history from before does not apply
            closed_by_jump = self.reset_history(frame.stamp, stamp_ns)
            self.time_epoch = frame.time_epoch
        energy = {m: contribution_energy(components[m]) for m in self.modalities}
        present = {m: bool(frame.present.get(m, True)) for m in self.modalities}
        activity = self._activity(frame.stamp, components, present)
        t_checks = time.perf_counter()
        verdicts = (
            self.sensor_checks.update(frame, computed.measured) if self.sensor_checks is not None else {}
        )
        checks_ms = (time.perf_counter() - t_checks) * 1e3
        self.sensor_states = {name: v.state for name, v in verdicts.items()}
        suspect = {v.modality for v in verdicts.values() if v.state != "ok"}
        alerts = self.alerts.update(
            computed.fused,
            components,
            activity,
            present,
            frame.sensor_status,
            computed.detections,
            computed.labels,
            expected=[m for m in self.modalities if m not in frame.no_sensor],
            sensor_modality=frame.sensor_modality,
            hold=suspect,
        )
        alerts += verdict_alerts(verdicts)
        alerts = self.digest.update(frame.stamp, alerts)
        if self.incidents is None:
            self.incidents = IncidentTracker(
                dict(frame.sensor_modality), self.config.incident_clear_s, self.config.incident_open_frames
            )
        evidence: list[Evidence] = evidence_from_frame(
            frame.sensor_status, frame.sensor_modality, self.alerts.states(), health_ratios(self)
        )
        evidence += evidence_from_verdicts(verdicts, self._findings)
        incident_changes = closed_by_jump + self.incidents.update(frame.stamp, stamp_ns, evidence)
        self.frames_processed += 1
        timings = dict(computed.timings_ms)
        timings["postprocess"] += (time.perf_counter() - t0) * 1e3 - checks_ms
        timings["sensor_checks"] = checks_ms
        return FrameReport(
            stamp=frame.stamp,
            frame_index=frame.frame_index,
            grid=self.model.grid,
            fused=computed.fused,
            components=components,
            shares=computed.shares,
            energy=energy,
            activity=activity,
            present=present,
            detections=computed.detections,
            alerts=alerts,
            timings_ms=timings,
            conservation_error=computed.conservation_error,
            decomposition_error=computed.decomposition_error,
            stamp_ns=frame.stamp_ns,
            incidents=incident_changes,
        )

    def reset_history(self, stamp: float = 0.0, stamp_ns: int = 0) -> list[IncidentChange]:
        """Forget the alert state (baselines, hysteresis, per-object digests) and the previous
        frame, as after a time jump: a bag played in a loop must not compare its start with its
        end. Open incidents close at `stamp`; returns those changes."""
        self.alerts = AlertEngine(self.model.modalities, self.model.grid, self.config)
        self.digest.reset()
        self._previous = None
        self._findings.clear()
        if self.sensor_checks is not None:
            self.sensor_checks.reset()
        return self.incidents.close_all(stamp, stamp_ns) if self.incidents is not None else []

    def _activity(
        self, stamp: float, components: dict[str, np.ndarray], present: dict[str, bool]
    ) -> dict[str, float | None]:
        previous = self._previous
        self._previous = (stamp, {m: components[m] for m in self.modalities}, dict(present))
        if previous is None or not 0 < stamp - previous[0] <= ACTIVITY_MAX_GAP_S:
            return {m: None for m in self.modalities}
        return {
            m: contribution_activity(components[m], previous[1][m])
            if present[m] and previous[2].get(m, True)
            else None
            for m in self.modalities
        }


def pipeline_for(model: FusionModel, params: Any, device: str | torch.device = "cpu") -> Pipeline:
    """The Pipeline the node and `analyze` run, from the monitor parameters (MonitorParams). Also
    sets the process's allocator to keep freed memory (resources.keep_freed_memory): the decomposition
    then reuses its plane tensors' memory instead of faulting it in again every frame."""
    keep_freed_memory()
    return Pipeline(
        model,
        alert_config_from(params),
        device,
        rules=rule_preset(params.lmd_rules),
        self_check_every=params.self_check_every,
        sensor_checks=SensorCheckConfig() if params.sensor_checks else None,
        decomposition=params.decomposition,
    )


def health_ratios(pipeline: Pipeline) -> dict[str, float]:
    """Latest contribution ratio to baseline per modality (for diagnostics)."""
    return {m: h.last_ratio for m, h in pipeline.alerts.health.items()}


__all__ = [
    "Pipeline",
    "ComputedFrame",
    "contribution_energy",
    "contribution_activity",
    "alert_config_from",
    "pipeline_for",
    "resolve_device",
    "health_ratios",
    "OUTPUT_KEY",
]
