"""Alert logic with its state (rolling baselines, hysteresis), so that a live run and an offline run
over the same frames raise the same alerts. Per-frame alerts (single-sensor support, disagreement)
are raised every frame they hold; sensor-state alerts (degraded, failed, stale, missing) are raised
on the transition into the state and answered by SENSOR_RECOVERED on the way out."""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import cv2
import numpy as np

from ros2_lmd.geometry.grid import BEVGrid
from ros2_lmd.monitor.declare import is_setting, setting
from ros2_lmd.monitor.detections import sigmoid
from ros2_lmd.monitor.report import (
    ERROR,
    INFO,
    MODALITY_DISAGREEMENT,
    SENSOR_DEGRADED,
    SENSOR_FAILED,
    SENSOR_MISSING,
    SENSOR_RECOVERED,
    SENSOR_STALE,
    SINGLE_SENSOR_SUPPORT,
    WARN,
    Alert,
    Detection,
)


@dataclass(frozen=True)
class AlertConfig:
    """Thresholds of the alert logic, each declared here once: MonitorParams offers the ones
    declared with `setting` as node parameters of the same name (default, description, range)."""

    # --- Detections ---
    detection_threshold: float = setting(
        0.5, "Fused occupancy probability above which a BEV cell is part of a detection.", min=0.0, max=1.0
    )
    min_detection_cells: int = setting(
        4, "Smallest detection, in connected BEV cells above detection_threshold.", min=1, max=10000
    )
    single_sensor_share: float = setting(
        0.8,
        "Share of a detection's evidence from one modality at or above which it is flagged "
        "single-sensor (SINGLE_SENSOR_SUPPORT alert).",
        min=0.0,
        max=1.0,
    )
    support_share: float = setting(
        0.15, "Share at or above which a modality counts as supporting a detection.", min=0.0, max=1.0
    )
    disagreement_logit: float = setting(
        2.0,
        "Modalities disagree on a detection when one pushes its fused logit up and another "
        "down, each by more than this (logit units) (MODALITY_DISAGREEMENT alert).",
        min=0.0,
        max=100.0,
    )

    # --- Sensor health ---
    degraded_ratio: float = setting(
        0.5,
        "A modality whose contribution falls below this fraction of its baseline is "
        "degraded (SENSOR_DEGRADED, diagnostics WARN).",
        min=0.0,
        max=1.0,
    )
    failed_ratio: float = setting(
        0.15,
        "Below this fraction of its baseline a modality has failed (SENSOR_FAILED, "
        "diagnostics ERROR); less than degraded_ratio.",
        min=0.0,
        max=1.0,
    )
    baseline_window: int = setting(
        50, "Frames in the running baseline of each modality's contribution.", min=1, max=100000
    )
    # Not a node parameter: a node with a shorter baseline_window learns from all of it.
    baseline_min_frames: int = 10
    hysteresis_k: int = setting(
        3,
        "A health state changes when it holds in hysteresis_k of the last hysteresis_n frames.",
        min=1,
        max=1000,
    )
    hysteresis_n: int = setting(
        5, "Window of the k-of-n hysteresis (frames); at least hysteresis_k.", min=1, max=1000
    )
    incident_clear_s: float = setting(
        0.5,
        "A sensor incident closes once no evidence of its fault has been seen for this long (s).",
        min=0.01,
        max=3600.0,
    )
    incident_open_frames: int = setting(
        3,
        "A sensor incident opens once the evidence of a fault held in this many consecutive "
        "frames (its start is the first of them); a single bad frame stays a diagnostic.",
        min=1,
        max=1000,
    )
    digest_window_s: float = setting(
        10.0,
        "Per-object alerts (SINGLE_SENSOR_SUPPORT, MODALITY_DISAGREEMENT) are summed per kind and "
        "modality and reported at most once per this window (s).",
        min=0.1,
        max=3600.0,
    )
    digest_min_frames: int = setting(
        5,
        "A per-object alert kind is reported once it held in this many frames of its window.",
        min=1,
        max=100000,
    )

    def __post_init__(self) -> None:
        problems = alert_config_problems({f.name: getattr(self, f.name) for f in fields(self)})
        if problems:
            raise ValueError("; ".join(problems))


# The thresholds the node offers as parameters (MonitorParams copies them).
ALERT_PARAMETERS = tuple(f.name for f in fields(AlertConfig) if is_setting(f))


def alert_config_problems(value: Mapping[str, Any]) -> list[str]:
    """Every problem between the alert thresholds in `value` (name -> value: an AlertConfig's, or
    the node parameters'; a pair is checked when both are present). The one owner of these checks:
    MonitorParams reports them with its other parameter problems."""
    problems = []
    if "detection_threshold" in value and not 0 < value["detection_threshold"] < 1:
        problems.append(f"detection_threshold: must be in (0, 1), got {value['detection_threshold']}")
    if {"failed_ratio", "degraded_ratio"} <= value.keys() and not (
        0 <= value["failed_ratio"] < value["degraded_ratio"] <= 1
    ):
        problems.append(
            f"failed_ratio: {value['failed_ratio']} must be in [0, degraded_ratio "
            f"{value['degraded_ratio']}) and degraded_ratio at most 1"
        )
    if {"hysteresis_k", "hysteresis_n"} <= value.keys() and not (
        1 <= value["hysteresis_k"] <= value["hysteresis_n"]
    ):
        problems.append(
            f"hysteresis_k: {value['hysteresis_k']} must be in [1, hysteresis_n {value['hysteresis_n']}]"
        )
    if {"baseline_min_frames", "baseline_window"} <= value.keys() and (
        value["baseline_min_frames"] > value["baseline_window"]
    ):
        problems.append(
            f"baseline_min_frames: {value['baseline_min_frames']} exceeds baseline_window "
            f"{value['baseline_window']}"
        )
    return problems


def _fmt_xy(xy) -> str:
    return f"({xy[0]:+.1f}, {xy[1]:+.1f}) m"


class ModalityHealth:
    """Sensor-failure detection for one modality. Its health signal (the activity of its
    contribution, see Pipeline) is compared with its own rolling baseline; the engine then divides
    that ratio by the median ratio of all modalities, so a change every sensor shares (the car
    stopping, an empty road) raises nothing while one sensor falling silent does. k-of-n hysteresis
    to raise and to clear keeps alerts from flapping."""

    OK, DEGRADED, FAILED = "ok", "degraded", "failed"

    def __init__(self, modality: str, config: AlertConfig) -> None:
        self.modality = modality
        self.config = config
        self.baseline: deque[float] = deque(maxlen=config.baseline_window)
        self.recent: deque[float] = deque(maxlen=config.hysteresis_n)
        self.state = self.OK
        self.last_ratio = 1.0

    def baseline_value(self) -> float | None:
        if len(self.baseline) < self.config.baseline_min_frames:
            return None
        return float(np.median(self.baseline))

    def ratio(self, value: float) -> float | None:
        """The signal over its baseline; None until the baseline exists."""
        base = self.baseline_value()
        if base is None or base <= 0:
            return None
        return value / base

    def update(self, value: float, relative: float | None = None, hold: bool = False) -> Alert | None:
        """One frame: `value` is the raw signal, `relative` its baseline ratio already divided by
        the modalities' median (defaults to the plain ratio). `hold`: some sensor of this modality
        is suspect by other evidence (its signal checks, the time sync), so this frame must not
        teach the baseline either: a baseline that learnt a fault the contribution does not show
        as a collapse (ghosts, a surge) would take the return to normal for one."""
        c = self.config
        if relative is None:
            relative = self.ratio(value)
        ratio = 1.0 if relative is None else relative
        self.last_ratio = ratio
        self.recent.append(ratio)
        below_failed = sum(r < c.failed_ratio for r in self.recent)
        below_degraded = sum(r < c.degraded_ratio for r in self.recent)
        # Clearing needs the last k frames all healthy: an intermittent fault (bad every other
        # frame) holds k-of-n healthy and k-of-n bad at once, and would flap every frame.
        tail = list(self.recent)[-c.hysteresis_k :]
        recovered = len(tail) == c.hysteresis_k and all(r >= c.degraded_ratio for r in tail)
        previous = self.state
        if self.state == self.OK:
            if below_failed >= c.hysteresis_k:
                self.state = self.FAILED
            elif below_degraded >= c.hysteresis_k:
                self.state = self.DEGRADED
        elif self.state == self.DEGRADED:
            if below_failed >= c.hysteresis_k:
                self.state = self.FAILED
            elif recovered:
                self.state = self.OK
        elif recovered:
            # FAILED clears only to OK: stepping down to DEGRADED while the fault lasts (a blinded
            # camera's noise hovering near the failed ratio) would flap between two alerts
            self.state = self.OK
        if self.state == self.OK and ratio >= c.degraded_ratio and not hold:
            # only healthy frames teach the baseline, so it does not follow a failure down
            self.baseline.append(value)
        if self.state == previous:
            return None
        detail = f"contribution activity at {ratio:.0%} of its baseline, relative to the other sensors"
        if self.state == self.FAILED:
            return Alert(
                SENSOR_FAILED,
                ERROR,
                self.modality,
                f"{self.modality} contribution collapsed ({detail}): {self.modality} failing",
            )
        if self.state == self.DEGRADED:
            return Alert(
                SENSOR_DEGRADED, WARN, self.modality, f"{self.modality} contribution degraded ({detail})"
            )
        return Alert(
            SENSOR_RECOVERED, INFO, self.modality, f"{self.modality} contribution recovered ({detail})"
        )


class AlertEngine:
    """All alert state of one monitor run. `update` is called once per frame, in stamp order."""

    def __init__(self, modalities: tuple[str, ...], grid: BEVGrid, config: AlertConfig) -> None:
        self.modalities = modalities
        self.grid = grid
        self.config = config
        self.health = {m: ModalityHealth(m, config) for m in modalities}
        self.missing: dict[str, bool] = {m: False for m in modalities}
        self.stale: set[str] = set()

    def states(self) -> dict[str, str]:
        """Current condition per modality: ok / degraded / failed / missing."""
        return {m: "missing" if self.missing[m] else self.health[m].state for m in self.modalities}

    def update(
        self,
        fused: np.ndarray,
        components: dict[str, np.ndarray],
        activity: dict[str, float | None],
        present: dict[str, bool],
        sensor_status: dict[str, str],
        detections: list[Detection],
        labels: np.ndarray,
        expected: Sequence[str] | None = None,
        sensor_modality: Mapping[str, str] | None = None,
        hold: Collection[str] = (),
    ) -> list[Alert]:
        """`activity[m]` is modality m's health signal this frame (None: no value, e.g. the first
        frame); modalities not present are reported as missing, not as failed. `expected`: the
        modalities that have sensors (default: all); one without is never waited for.
        `sensor_modality` names each sensor's modality (default: guessed from the name). `hold`:
        modalities whose baselines must not learn from this frame (ModalityHealth.update); a
        modality with a sensor left out by the time sync is always held."""
        alerts: list[Alert] = []
        alerts += self._availability(present, sensor_status, sensor_modality or {})
        # While a modality is missing its features are zero, which moves the network to another
        # operating point: every other modality's contribution changes with it and is no longer
        # comparable with baselines learnt with all sensors (a dead LiDAR made the radar look
        # "degraded"). The missing modality is reported as such; the others are judged again
        # once all are back.
        expected = self.modalities if expected is None else expected
        modality_of = sensor_modality or {}
        held = set(hold) | {
            modality_of.get(sensor) or _modality_of(sensor)
            for sensor, reason in sensor_status.items()
            if reason
        }
        all_present = all(present.get(m, True) for m in expected)
        live = {m: a for m in self.modalities if all_present and (a := activity.get(m)) is not None}
        ratios = {m: self.health[m].ratio(a) for m, a in live.items()}
        known = [r for r in ratios.values() if r is not None]
        # divide by the median over modalities (with one modality: by itself is no test; keep it)
        median = float(np.median(known)) if len(known) > 1 else 1.0
        for m, a in live.items():
            ratio = ratios[m]
            relative = None if ratio is None else ratio / max(median, 1e-12)
            alert = self.health[m].update(a, relative, hold=m in held)
            if alert:
                alerts.append(alert)
        if len(self.modalities) > 1:
            for det in detections:
                if det.single_sensor:
                    alerts.append(
                        Alert(
                            SINGLE_SENSOR_SUPPORT,
                            WARN,
                            det.dominant,
                            f"object at {_fmt_xy(det.centroid)} is seen by {det.dominant} alone "
                            f"({det.shares[det.dominant]:.0%} of its evidence)",
                            detection=det,
                        )
                    )
            alerts += self._disagreement(fused, components, detections, labels)
        return alerts

    def _availability(
        self, present: dict[str, bool], sensor_status: dict[str, str], sensor_modality: Mapping[str, str]
    ) -> list[Alert]:
        alerts = []
        for m in self.modalities:
            missing = not present.get(m, True)
            if missing and not self.missing[m]:
                alerts.append(
                    Alert(
                        SENSOR_MISSING,
                        ERROR,
                        m,
                        f"no {m} data within the sync tolerance: {m} features are zero for this frame",
                    )
                )
            elif not missing and self.missing[m]:
                alerts.append(Alert(SENSOR_RECOVERED, INFO, m, f"{m} data is back"))
            self.missing[m] = missing
        now_stale = {s for s, reason in sensor_status.items() if reason}
        modality_of = lambda sensor: sensor_modality.get(sensor) or _modality_of(sensor)  # noqa: E731
        for sensor in sorted(now_stale - self.stale):
            alerts.append(
                Alert(
                    SENSOR_STALE,
                    WARN,
                    modality_of(sensor),
                    f"{sensor}: {sensor_status[sensor]}",
                    sensor=sensor,
                )
            )
        for sensor in sorted(self.stale - now_stale):
            alerts.append(
                Alert(SENSOR_RECOVERED, INFO, modality_of(sensor), f"{sensor} is fresh again", sensor=sensor)
            )
        self.stale = now_stale
        return alerts

    def _disagreement(
        self,
        fused: np.ndarray,
        components: dict[str, np.ndarray],
        detections: list[Detection],
        labels: np.ndarray,
    ) -> list[Alert]:
        """A modality that, with the bias, clearly predicts an object (logit margin above the
        threshold's) where the fused output has none; or whose mean contribution inside a kept
        detection is strongly negative."""
        c = self.config
        alerts = []
        threshold_logit = float(np.log(c.detection_threshold / (1 - c.detection_threshold)))
        rejected = sigmoid(fused) < c.detection_threshold
        bias = components.get("bias", np.zeros_like(fused))
        xs, ys = self.grid.cell_centres()
        for m in self.modalities:
            alone = components[m] + bias
            mask = (rejected & (alone >= threshold_logit + c.disagreement_logit)).astype(np.uint8)
            count, regions, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
            for label in range(1, count):
                if stats[label, cv2.CC_STAT_AREA] < c.min_detection_cells:
                    continue
                region = regions == label
                where = (float(xs[region].mean()), float(ys[region].mean()))
                alerts.append(
                    Alert(
                        MODALITY_DISAGREEMENT,
                        WARN,
                        m,
                        f"{m} predicts an object at {_fmt_xy(where)} that the fused output rejects",
                    )
                )
        for det in detections:
            region = labels == det.label
            for m in self.modalities:
                mean = float(components[m][region].mean())
                if mean <= -c.disagreement_logit:
                    alerts.append(
                        Alert(
                            MODALITY_DISAGREEMENT,
                            INFO,
                            m,
                            f"{m} argues against the object at {_fmt_xy(det.centroid)} "
                            f"(mean {mean:+.1f} logits) that the fused output keeps",
                            detection=det,
                        )
                    )
        return alerts


def _modality_of(sensor: str) -> str:
    name = sensor.lower().lstrip("/")
    if name.startswith("cam"):
        return "camera"
    if name.startswith("radar"):
        return "radar"
    if name.startswith("lidar"):
        return "lidar"
    return ""


PER_OBJECT_ALERTS = (SINGLE_SENSOR_SUPPORT, MODALITY_DISAGREEMENT)


class ObjectAlertDigest:
    """Per-object alerts (an object seen by one sensor alone, a sensor contradicting the fused
    output) aggregated per (kind, modality): a model's persistent habit becomes one line every
    `window_s`, not one alert per object per frame, so it can never drown a sensor incident. A
    (kind, modality) is reported once it held in `min_frames` frames of the window; the line counts
    the objects and frames behind it. Other alerts pass through unchanged. Call in stamp order."""

    def __init__(self, window_s: float = 10.0, min_frames: int = 5) -> None:
        if not window_s > 0 or min_frames < 1:
            raise ValueError(
                f"ObjectAlertDigest: need window_s > 0, min_frames >= 1; got {window_s}, {min_frames}"
            )
        self.window_s = window_s
        self.min_frames = min_frames
        self._seen: dict[tuple[str, str], deque[tuple[float, int]]] = {}  # -> (stamp, objects) per frame
        self._last_report: dict[tuple[str, str], float] = {}

    def reset(self) -> None:
        self._seen.clear()
        self._last_report.clear()

    def update(self, stamp: float, alerts: Sequence[Alert]) -> list[Alert]:
        out = [a for a in alerts if a.kind not in PER_OBJECT_ALERTS]
        counts: dict[tuple[str, str], int] = {}
        for alert in alerts:
            if alert.kind in PER_OBJECT_ALERTS:
                counts[(alert.kind, alert.modality)] = counts.get((alert.kind, alert.modality), 0) + 1
        for key, objects in counts.items():
            self._seen.setdefault(key, deque()).append((stamp, objects))
        for key, frames in sorted(self._seen.items()):
            while frames and frames[0][0] <= stamp - self.window_s:
                frames.popleft()
            if key not in counts or len(frames) < self.min_frames:
                continue
            last = self._last_report.get(key)
            if last is not None and stamp - last < self.window_s:
                continue
            self._last_report[key] = stamp
            kind, modality = key
            total = sum(n for _, n in frames)
            span = stamp - frames[0][0]
            what = (
                f"objects seen by {modality} alone"
                if kind == SINGLE_SENSOR_SUPPORT
                else f"places where {modality} contradicts the fused output"
            )
            out.append(
                Alert(
                    kind,
                    WARN,
                    modality,
                    f"{total} {what} in {len(frames)} frames over {span:.1f} s (reported at most every "
                    f"{self.window_s:g} s)",
                )
            )
        return out
