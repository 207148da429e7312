"""`ros2-lmd robustness`: how a fusion model's BEV output holds up under each corruption of the
library (`ros2_lmd.corrupt`, the functions `ros2-lmd corrupt` applies to bags), on a fixed
evaluation set with ground truth (simulated validation scenes by seed, or nuScenes val samples).

For every (modality, kind, severity) the frames' payloads are corrupted on every sensor of the
modality (as `corrupt --fault camera:KIND` does) and the model is run on them:
- IoU of the fused prediction (sigmoid(bev_logits) >= 0.5) against the ground-truth vehicle
  occupancy, intersection and union summed over the frames (as `training.evaluate_iou`);
- RA (resistance ability) = IoU corrupted / IoU clean; a kind's RA is its mean over the severities
  run, and mRA the mean of the kinds' RAs (RoboBEV's definitions);
- each modality's LMD share of the evidence (`monitor.detections.evidence_shares` over the cells
  the fused output detects, as the monitor computes it per frame; the mean over the frames with
  positive evidence) and its shift from clean;
- each modality's IoU alone: the fused output with every other modality's features zeroed (LMD's
  reference input o_m, as `evaluate_iou(only=m)`). Only the corrupted modality's features change,
  so the other modalities' alone-IoUs are the clean ones and are not recomputed.
Then, for camera and radar kinds, each sensor of the modality is corrupted in turn at one severity
(`sensor_severity`): the RA per sensor says which sensor's corruption hurts most (IoU only: no
decomposition, no alone-IoU in this pass).

Payloads are corrupted as `corrupt` corrupts messages: a camera's image at its own resolution
before the model resizes it; a radar's or LiDAR's points in the sensor's own frame (moved there
from base_link with the sensor's extrinsics and back; a frame without per-sensor points, as
nuScenes frames, counts the whole modality as one sensor in base_link). Randomness is seeded by
(seed, sensor, kind, severity) and the frame's index, or without the index for the kinds whose
pattern is a place (`Corruption.fixed`: dirt stays where it is), so a run is deterministic.

Kinds that act on a message stream rather than a payload:
- arrival (frame_lost, intermittent, rate_drop): modelled as the sensor missing from the frames
  whose message would not arrive, with the evaluation frames standing for consecutive messages
  FRAME_PERIOD_S apart (the same timing functions decide); a camera missing is left out of the
  frame, a point sensor's points are removed, and a modality none of whose sensors remain is
  absent (its features zero), as the time sync leaves it;
- stamp (clock_offset, clock_drift) and payload_source (stuck, temporal): skipped, with the
  reason in the report (SKIPPED_REASONS).
Kinds of a modality the model does not take are skipped too (its output cannot change)."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import sys
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ros2_lmd.corrupt import KINDS, SEVERITIES, Corruption
from ros2_lmd.corrupt.timing import intermittent
from ros2_lmd.lmd import RuleVariants, decompose
from ros2_lmd.models.base import FusionModel
from ros2_lmd.monitor.detections import evidence_shares
from ros2_lmd.replay.numbers import finite_mean, finite_or_none, format_number
from ros2_lmd.sensors.frame import POINT_FIELDS, SensorFrame

OUTPUT_KEY = "bev_logits"
THRESHOLD = 0.5  # on sigmoid(bev_logits), as the monitor's detection threshold and evaluate_iou
FRAME_PERIOD_S = (
    0.1  # arrival kinds: the frames stand for consecutive messages at 10 Hz (the simulator's rate)
)
DEFAULT_SENSOR_SEVERITY = 3
PAYLOAD = ("image", "points")
MISSING = "arrival"
SKIPPED_REASONS = {
    "stamp": "changes only header stamps: a model given one frame never sees a stamp (whether the time "
    "sync still uses the reading is its tolerance's matter: corrupt a bag and analyze it)",
    "payload_source": "sends an earlier message's payload: the evaluation frames are independent scenes, "
    "with no earlier message of the same sensor",
}
NOT_IN_MODEL = "the model takes no {modality} input: its output cannot change"
# modelled: what the frames are given for a kind
MODELLED = {"image": "payload corrupted", "points": "payload corrupted", MISSING: "sensor missing"}


# --- corrupting a frame ----------------------------------------------------------------------------


def frame_sensors(frame: SensorFrame) -> dict[str, list[str]]:
    """Modality -> its sensors in the frame: cameras by name; point sensors from `sensor_points`,
    or the modality's name where the frame has points but no per-sensor record (nuScenes frames)."""
    sensors = {"camera": [c.name for c in frame.cameras]}
    for modality in POINT_FIELDS:
        own = [s for s in frame.sensor_points if frame.sensor_modality.get(s) == modality]
        sensors[modality] = own or ([modality] if len(getattr(frame, modality)) else [])
    return sensors


def corruption_rng(
    seed: int, sensor: str, kind: str, severity: int, index: int | None
) -> np.random.Generator:
    """The randomness of `kind` on `sensor` in frame `index` (None: drawn once for every frame)."""
    key = [seed, zlib.crc32(f"{sensor}:{kind}:{severity}".encode())]
    return np.random.default_rng(np.random.SeedSequence(key + ([] if index is None else [index])))


def _structured(rows: np.ndarray, modality: str, T_base_sensor: np.ndarray) -> np.ndarray:
    """base_link rows (POINT_FIELDS columns) -> a structured cloud in the sensor's frame."""
    names = POINT_FIELDS[modality]
    inverse = np.linalg.inv(T_base_sensor)
    values = rows.astype(np.float64).copy()
    values[:, :3] = values[:, :3] @ inverse[:3, :3].T + inverse[:3, 3]
    if modality == "radar":  # velocities turn with the sensor, as sim.drive.radar_to_base
        values[:, 4:6] = values[:, 4:6] @ inverse[:2, :2].T
    out = np.zeros(len(rows), [(n, np.float32) for n in names])
    for i, n in enumerate(names):
        out[n] = values[:, i]
    return out


def _rows(points: np.ndarray, modality: str, T_base_sensor: np.ndarray) -> np.ndarray:
    """A structured cloud in the sensor's frame -> base_link rows (POINT_FIELDS columns)."""
    names = POINT_FIELDS[modality]
    values = np.stack([points[n].astype(np.float64) for n in names], axis=1).reshape(-1, len(names))
    values[:, :3] = values[:, :3] @ T_base_sensor[:3, :3].T + T_base_sensor[:3, 3]
    if modality == "radar":
        values[:, 4:6] = values[:, 4:6] @ T_base_sensor[:2, :2].T
    return values.astype(np.float32)


def _sensor_rows(frame: SensorFrame, modality: str, sensor: str) -> tuple[np.ndarray, np.ndarray]:
    if sensor in frame.sensor_points:
        return frame.sensor_points[sensor], frame.sensor_extrinsics.get(sensor, np.eye(4))
    return getattr(frame, modality), np.eye(4)  # the whole modality as one sensor, in base_link


def arrives(corruption: Corruption, level: float, index: int, frames: int, rng: np.random.Generator) -> bool:
    """Whether sensor's message of frame `index` (of `frames` consecutive ones) arrives under an
    arrival kind: the function `corrupt` applies to a bag's messages; `rng` drawn once for the
    fixed kinds (intermittent's gaps), else per frame."""
    t = index * FRAME_PERIOD_S
    if corruption.fixed:
        return intermittent(t, corruption.function(frames * FRAME_PERIOD_S, level, rng))
    return bool(corruption.function(index, t, level, rng))


def corrupt_frame(
    frame: SensorFrame,
    modality: str,
    sensors: Iterable[str],
    corruption: Corruption,
    severity: int,
    seed: int,
    index: int,
    frames: int,
) -> SensorFrame:
    """A copy of `frame` with `corruption` at `severity` on each of `sensors` (of `modality`), frame
    `index` of `frames`. Payload kinds replace the payload; arrival kinds remove the sensor when its
    message would not arrive (module docstring)."""
    if corruption.acts_on not in (*PAYLOAD, MISSING):
        raise ValueError(f"corrupt_frame: {corruption.kind} acts on {corruption.acts_on}, not a frame")
    level = corruption.parameter(severity)
    kind = corruption.kind
    targets = [s for s in sensors if s in frame_sensors(frame)[modality]]

    def rng(sensor: str) -> np.random.Generator:
        return corruption_rng(seed, sensor, kind, severity, None if corruption.fixed else index)

    lost = set()
    if corruption.acts_on == MISSING:
        lost = {s for s in targets if not arrives(corruption, level, index, frames, rng(s))}
    out = dataclasses.replace(
        frame,
        present=dict(frame.present),
        sensor_status=dict(frame.sensor_status),
        sensor_points=dict(frame.sensor_points),
        sensor_modality=dict(frame.sensor_modality),
    )
    for sensor in lost:
        out.sensor_status[sensor] = f"no data ({kind} corruption)"
    if modality == "camera":
        cameras = []
        for cam in frame.cameras:
            if cam.name in lost:
                continue
            if cam.name in targets and corruption.acts_on == "image":
                image = np.ascontiguousarray(corruption.function(cam.image, level, rng(cam.name)), np.uint8)
                cam = dataclasses.replace(cam, image=image)
            cameras.append(cam)
        out.cameras = cameras
        if not cameras:
            out.present["camera"] = False
        return out
    rows = {}
    for sensor in frame_sensors(frame)[modality]:
        points, T = _sensor_rows(frame, modality, sensor)
        if sensor in lost:
            continue
        if sensor in targets and corruption.acts_on == "points":
            cloud = _structured(points, modality, T)
            changed = corruption.function(cloud, level, rng(sensor))
            if not (changed.dtype == cloud.dtype and np.array_equal(changed, cloud)):
                points = _rows(changed, modality, T)  # unchanged clouds keep their exact floats
        rows[sensor] = points
    for sensor in list(out.sensor_points):
        if out.sensor_modality.get(sensor) == modality:
            if sensor in rows:
                out.sensor_points[sensor] = rows[sensor]
            else:
                del out.sensor_points[sensor]
    width = len(POINT_FIELDS[modality])
    merged = np.concatenate(list(rows.values())) if rows else np.zeros((0, width), np.float32)
    setattr(out, modality, merged.reshape(-1, width))
    if not rows:
        out.present[modality] = False
    return out


# --- measuring -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    """The model on one version of the frames: fused IoU, mean shares (None when not decomposed),
    alone-IoU of the modalities asked for."""

    iou: float
    shares: dict[str, float] | None
    alone: dict[str, float]
    share_frames: int = 0  # frames with positive evidence, over which the shares are averaged


def _iou(counts: tuple[float, float]) -> float:
    return counts[0] / counts[1] if counts[1] else math.nan


@torch.no_grad()
def measure(
    model: FusionModel,
    frames: Sequence[SensorFrame],
    truths: Sequence[np.ndarray],
    batch: int = 4,
    alone: Iterable[str] = (),
    decomposed: bool = True,
    rules: RuleVariants | None = None,
) -> Measured:
    """IoU of the fused prediction over `frames` against `truths`, each modality's mean share of the
    evidence (LMD; `decomposed`), and the IoU of each modality in `alone` by itself."""
    model.eval()
    device = next(model.parameters()).device
    alone = tuple(alone)
    counts = {name: [0.0, 0.0] for name in ("fused", *alone)}
    per_frame: list[dict[str, float]] = []
    for start in range(0, len(frames), batch):
        features = model.encode(model.prepare(list(frames[start : start + batch]), device))
        truth = torch.from_numpy(np.stack([np.asarray(t) for t in truths[start : start + batch]]) >= 0.5)
        truth = truth.to(device)[:, None]
        outputs = {"fused": model.fuse(features)[OUTPUT_KEY]}
        for m in alone:
            only = {k: v if k == m else torch.zeros_like(v) for k, v in features.items()}
            outputs[m] = model.fuse(only)[OUTPUT_KEY]
        for name, logits in outputs.items():
            predicted = torch.sigmoid(logits) >= THRESHOLD
            counts[name][0] += float((predicted & truth).sum())
            counts[name][1] += float((predicted | truth).sum())
        if decomposed:
            dec = decompose(model.fuse, features, rules=rules)[OUTPUT_KEY]
            occupied = (torch.sigmoid(outputs["fused"]) >= THRESHOLD).cpu().numpy()
            components = {m: c.float().cpu().numpy() for m, c in dec.components.items()}
            for b in range(occupied.shape[0]):
                mask = occupied[b, 0]
                shares = evidence_shares(
                    {m: c[b, 0] for m, c in components.items()}, mask if mask.any() else None
                )
                if sum(shares.values()) > 0:
                    per_frame.append(shares)
    shares = None
    if decomposed:
        shares = {
            m: float(np.mean([s[m] for s in per_frame])) if per_frame else math.nan for m in model.modalities
        }
    return Measured(
        _iou(counts["fused"]),
        shares,
        {m: _iou(counts[m]) for m in alone},
        len(per_frame) if decomposed else 0,
    )


def ratio(corrupted: float, clean: float) -> float:
    """RA: corrupted / clean IoU (NaN when the clean IoU is 0 or not measured)."""
    if not (math.isfinite(clean) and clean > 0 and math.isfinite(corrupted)):
        return math.nan
    return corrupted / clean


# --- the sweep -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """What to run: (modality, kind) pairs, severities, and the severity of the per-sensor pass
    (None: no per-sensor pass)."""

    kinds: tuple[tuple[str, str], ...]
    severities: tuple[int, ...] = SEVERITIES
    sensor_severity: int | None = DEFAULT_SENSOR_SEVERITY


def all_kinds(table: Mapping[str, Mapping[str, Corruption]] = KINDS) -> tuple[tuple[str, str], ...]:
    return tuple((m, k) for m, kinds in table.items() for k in kinds)


def parse_kinds(
    text: str, table: Mapping[str, Mapping[str, Corruption]] = KINDS
) -> tuple[tuple[str, str], ...]:
    """--kinds: comma-separated KIND (every modality that has it), MODALITY (all its kinds) or
    MODALITY:KIND; "" or "all": every kind. ValueError naming what is not a kind."""
    if text.strip() in ("", "all"):
        return all_kinds(table)
    chosen: list[tuple[str, str]] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if ":" in item:
            modality, kind = item.split(":", 1)
            if modality not in table:
                raise ValueError(f"--kinds {item}: no modality {modality!r} (valid: {', '.join(table)})")
            if kind not in table[modality]:
                raise ValueError(
                    f"--kinds {item}: kind {kind!r} does not apply to {modality} "
                    f"(valid: {', '.join(table[modality])})"
                )
            found = [(modality, kind)]
        elif item in table:
            found = [(item, k) for k in table[item]]
        else:
            found = [(m, item) for m in table if item in table[m]]
            if not found:
                every = sorted({k for kinds in table.values() for k in kinds})
                raise ValueError(
                    f"--kinds: unknown kind {item!r} (valid: a modality ({', '.join(table)}), "
                    f"MODALITY:KIND, or one of {', '.join(every)})"
                )
        chosen += [pair for pair in found if pair not in chosen]
    if not chosen:
        raise ValueError("--kinds: names no kind")
    return tuple(chosen)


def parse_severities(text: str) -> tuple[int, ...]:
    """--severities: comma-separated integers of 1 to 5. ValueError naming a bad one."""
    values: list[int] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            value = int(item)
        except ValueError:
            value = 0
        if value not in SEVERITIES:
            raise ValueError(f"--severities: {item!r} is not a severity (valid: 1, 2, 3, 4, 5)")
        if value not in values:
            values.append(value)
    if not values:
        raise ValueError("--severities: names no severity (valid: 1, 2, 3, 4, 5)")
    return tuple(sorted(values))


def skip_reason(model: FusionModel, modality: str, corruption: Corruption) -> str:
    """Why (modality, kind) is not run on this model, or ""."""
    if modality not in model.modalities:
        return NOT_IN_MODEL.format(modality=modality)
    return SKIPPED_REASONS.get(corruption.acts_on, "")


def sensors_of(frames: Sequence[SensorFrame]) -> dict[str, list[str]]:
    """Modality -> every sensor any frame has, in first-seen order."""
    found: dict[str, list[str]] = {m: [] for m in ("camera", *POINT_FIELDS)}
    for frame in frames:
        for modality, names in frame_sensors(frame).items():
            found[modality] += [n for n in names if n not in found[modality]]
    return found


def planned_runs(
    model: FusionModel,
    selection: Selection,
    sensors: Mapping[str, Sequence[str]],
    table: Mapping[str, Mapping[str, Corruption]] = KINDS,
) -> tuple[list[tuple[str, str, int]], list[tuple[str, str, str]], list[dict[str, str]]]:
    """(modality runs (modality, kind, severity), sensor runs (modality, kind, sensor), skipped)."""
    runs, sensor_runs, skipped = [], [], []
    for modality, kind in selection.kinds:
        corruption = table[modality][kind]
        reason = skip_reason(model, modality, corruption)
        if reason:
            skipped.append({"modality": modality, "kind": kind, "reason": reason})
            continue
        runs += [(modality, kind, s) for s in selection.severities]
        per_sensor = selection.sensor_severity is not None and modality in ("camera", "radar")
        if per_sensor and corruption.acts_on in PAYLOAD and len(sensors[modality]) > 1:
            sensor_runs += [(modality, kind, sensor) for sensor in sensors[modality]]
    return runs, sensor_runs, skipped


def robustness(
    model: FusionModel,
    frames: Sequence[SensorFrame],
    truths: Sequence[np.ndarray],
    selection: Selection,
    seed: int = 0,
    batch: int = 4,
    rules: RuleVariants | None = None,
    table: Mapping[str, Mapping[str, Corruption]] = KINDS,
    progress: bool = True,
    describe: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The whole report (JSON-able, deterministic for the inputs): clean reference, one row per
    (modality, kind, severity), each kind's RA, mRA, the worst kind, the per-sensor pass and what
    was skipped and why. `table`: the corruption kinds (tests pass their own); `describe`: what the
    frames are, copied into the report."""
    from tqdm import tqdm

    if len(frames) != len(truths) or not frames:
        raise ValueError(
            f"robustness: need as many truths as frames, and frames (got {len(frames)}, {len(truths)})"
        )
    sensors = sensors_of(frames)
    runs, sensor_runs, skipped = planned_runs(model, selection, sensors, table)
    n = len(frames)

    def corrupted(modality: str, kind: str, severity: int, targets: Sequence[str]) -> list[SensorFrame]:
        corruption = table[modality][kind]
        return [
            corrupt_frame(f, modality, targets, corruption, severity, seed, i, n)
            for i, f in enumerate(frames)
        ]

    with tqdm(
        total=1 + len(runs) + len(sensor_runs),
        desc="robustness",
        unit="run",
        disable=not progress,
        file=sys.stderr,
    ) as bar:
        clean = measure(model, frames, truths, batch, model.modalities, True, rules)
        bar.update()
        rows = []
        for modality, kind, severity in runs:
            bar.set_postfix_str(f"{modality}:{kind}:{severity}")
            got = measure(
                model,
                corrupted(modality, kind, severity, sensors[modality]),
                truths,
                batch,
                (modality,),
                True,
                rules,
            )
            assert got.shares is not None and clean.shares is not None
            corruption = table[modality][kind]
            rows.append(
                {
                    "modality": modality,
                    "kind": kind,
                    "severity": severity,
                    "parameter": corruption.parameter(severity),
                    "unit": corruption.unit,
                    "modelled_as": MODELLED[corruption.acts_on],
                    "iou": finite_or_none(got.iou),
                    "ra": finite_or_none(ratio(got.iou, clean.iou)),
                    "shares": {m: finite_or_none(v) for m, v in got.shares.items()},
                    "share_shift": {
                        m: finite_or_none(got.shares[m] - clean.shares[m]) for m in model.modalities
                    },
                    "alone_iou": {
                        m: finite_or_none(got.alone[m] if m == modality else clean.alone[m])
                        for m in model.modalities
                    },
                    "share_frames": got.share_frames,
                }
            )
            bar.update()
        sensor_rows = []
        for modality, kind, sensor in sensor_runs:
            severity = selection.sensor_severity
            assert severity is not None
            bar.set_postfix_str(f"{sensor}:{kind}:{severity}")
            got = measure(
                model, corrupted(modality, kind, severity, [sensor]), truths, batch, (), False, rules
            )
            sensor_rows.append(
                {
                    "modality": modality,
                    "kind": kind,
                    "severity": severity,
                    "sensor": sensor,
                    "iou": finite_or_none(got.iou),
                    "ra": finite_or_none(ratio(got.iou, clean.iou)),
                }
            )
            bar.update()
    assert clean.shares is not None
    return {
        "model_modalities": list(model.modalities),
        "frames": n,
        "data": dict(describe or {}),
        "seed": seed,
        "severities": list(selection.severities),
        "sensor_severity": selection.sensor_severity,
        "threshold": THRESHOLD,
        "frame_period_s": FRAME_PERIOD_S,
        "clean": {
            "iou": finite_or_none(clean.iou),
            "shares": {m: finite_or_none(v) for m, v in clean.shares.items()},
            "alone_iou": {m: finite_or_none(v) for m, v in clean.alone.items()},
            "share_frames": clean.share_frames,
        },
        "runs": rows,
        **summarise(rows),
        "sensors": sensor_rows,
        **summarise_sensors(sensor_rows),
        "sensor_names": sensors,
        "skipped": skipped,
    }


def summarise(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Each kind's RA (mean over its severities) and mean share shifts, mRA overall and per
    modality, and the worst kind (lowest RA)."""
    kinds: list[dict[str, Any]] = []
    for modality, kind in dict.fromkeys((r["modality"], r["kind"]) for r in rows):
        own = [r for r in rows if r["modality"] == modality and r["kind"] == kind]
        modalities = list(own[0]["share_shift"])
        kinds.append(
            {
                "modality": modality,
                "kind": kind,
                "modelled_as": own[0]["modelled_as"],
                "ra": finite_mean(r["ra"] for r in own),
                "min_ra": min((r["ra"] for r in own if r["ra"] is not None), default=None),
                "share_shift": {m: finite_mean(r["share_shift"][m] for r in own) for m in modalities},
            }
        )
    by_modality = {
        m: finite_mean(k["ra"] for k in kinds if k["modality"] == m)
        for m in dict.fromkeys(k["modality"] for k in kinds)
    }
    measured = [k for k in kinds if k["ra"] is not None]
    worst = min(measured, key=lambda k: k["ra"]) if measured else None
    return {
        "kinds": kinds,
        "mra": finite_mean(k["ra"] for k in kinds),
        "mra_by_modality": by_modality,
        "worst_kind": {"modality": worst["modality"], "kind": worst["kind"], "ra": worst["ra"]}
        if worst
        else None,
    }


def summarise_sensors(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per (modality, kind) of the per-sensor pass, the sensor whose corruption hurts most (lowest
    RA), and each sensor's mean RA over the kinds."""
    hurts: list[dict[str, Any]] = []
    for modality, kind in dict.fromkeys((r["modality"], r["kind"]) for r in rows):
        own = [r for r in rows if r["modality"] == modality and r["kind"] == kind and r["ra"] is not None]
        if own:
            worst = min(own, key=lambda r: r["ra"])
            hurts.append({"modality": modality, "kind": kind, "sensor": worst["sensor"], "ra": worst["ra"]})
    mean = {
        s: finite_mean(r["ra"] for r in rows if r["sensor"] == s)
        for s in dict.fromkeys(r["sensor"] for r in rows)
    }
    return {"sensor_hurts_most": hurts, "sensor_mean_ra": mean}


# --- the evaluation set ----------------------------------------------------------------------------


def simulated_set(
    model: FusionModel, frames: int, seed: int = 0
) -> tuple[list[SensorFrame], list[np.ndarray], dict]:
    """`frames` simulated validation scenes (seeds VAL_SEED_BASE + seed + i), truth on the model's grid."""
    from functools import partial

    from ros2_lmd.training import VAL_SEED_BASE, simulated_sample

    sample = partial(simulated_sample, grid=model.grid)
    pairs = [sample(VAL_SEED_BASE + seed + i) for i in range(frames)]
    first = VAL_SEED_BASE + seed
    describe = {
        "dataset": "synthetic",
        "scenes": f"simulated validation scenes, seeds {first} to {first + frames - 1}",
    }
    return [p[0] for p in pairs], [p[1] for p in pairs], describe


def nuscenes_set(
    model: FusionModel, dataroot: str, version: str, frames: int
) -> tuple[list[SensorFrame], list[np.ndarray], dict]:
    """The first `frames` nuScenes val samples (Simple-BEV's order), truth on the model's grid."""
    from ros2_lmd.datasets.nuscenes import NuScenesTables
    from ros2_lmd.datasets.nuscenes_frames import NuScenesFrames

    val = NuScenesFrames(NuScenesTables(dataroot, version), "val", model.grid)
    if not len(val):
        raise ValueError(f"nuScenes {version} at {dataroot}: no val samples")
    count = min(frames, len(val))
    pairs = [val[i] for i in range(count)]
    describe = {
        "dataset": "nuscenes",
        "scenes": f"the first {count} {version} val samples (Simple-BEV order)",
    }
    return [p[0] for p in pairs], [p[1] for p in pairs], describe


# --- files -----------------------------------------------------------------------------------------


def write_json(path: Path, report: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")


def write_csv(path: Path, report: Mapping[str, Any]) -> None:
    """One row for the clean frames, one per (modality, kind, severity), one per sensor run."""
    modalities = report["model_modalities"]
    columns = [
        "scope", "modality", "kind", "severity", "parameter", "unit", "sensor", "modelled_as", "iou", "ra",
        *(f"share_{m}" for m in modalities),
        *(f"shift_{m}" for m in modalities),
        *(f"alone_iou_{m}" for m in modalities),
    ]  # fmt: skip

    def numbers(values: Mapping[str, Any] | None) -> list[str]:
        return [format_number((values or {}).get(m)) for m in modalities]

    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        clean = report["clean"]
        writer.writerow(
            ["clean", "", "", "", "", "", "", "", format_number(clean["iou"]), format_number(1.0)]
            + numbers(clean["shares"])
            + [""] * len(modalities)
            + numbers(clean["alone_iou"])
        )
        for r in report["runs"]:
            writer.writerow(
                ["modality", r["modality"], r["kind"], r["severity"], f"{r['parameter']:g}", r["unit"], "",
                 r["modelled_as"], format_number(r["iou"]), format_number(r["ra"])]
                + numbers(r["shares"]) + numbers(r["share_shift"]) + numbers(r["alone_iou"])
            )  # fmt: skip
        for r in report["sensors"]:
            writer.writerow(
                ["sensor", r["modality"], r["kind"], r["severity"], "", "", r["sensor"], MODELLED["image"],
                 format_number(r["iou"]), format_number(r["ra"])]
                + [""] * (3 * len(modalities))
            )  # fmt: skip


@dataclass
class RobustnessResult:
    report: dict[str, Any]
    files: list[Path] = field(default_factory=list)


def write_robustness(out: Path, report: Mapping[str, Any]) -> list[Path]:
    """robustness.json, robustness.csv and robustness.html in `out` (created)."""
    from ros2_lmd.replay.robustness_report import write_html

    out.mkdir(parents=True, exist_ok=True)
    files = [out / "robustness.json", out / "robustness.csv", out / "robustness.html"]
    write_json(files[0], report)
    write_csv(files[1], report)
    write_html(files[2], report)
    return files


def run_robustness(
    model: FusionModel,
    out: Path,
    selection: Selection,
    data: Callable[[], tuple[list[SensorFrame], list[np.ndarray], dict]],
    model_name: str,
    seed: int = 0,
    batch: int = 4,
    rules: RuleVariants | None = None,
    progress: bool = True,
) -> RobustnessResult:
    """Load the frames (`data`), run `robustness`, write its files."""
    frames, truths, describe = data()
    report = {"model": model_name}
    report.update(
        robustness(model, frames, truths, selection, seed, batch, rules, progress=progress, describe=describe)
    )
    return RobustnessResult(report, write_robustness(out, report))


__all__ = [
    "DEFAULT_SENSOR_SEVERITY",
    "FRAME_PERIOD_S",
    "SKIPPED_REASONS",
    "Measured",
    "RobustnessResult",
    "Selection",
    "all_kinds",
    "arrives",
    "corrupt_frame",
    "corruption_rng",
    "frame_sensors",
    "measure",
    "nuscenes_set",
    "parse_kinds",
    "parse_severities",
    "planned_runs",
    "ratio",
    "robustness",
    "run_robustness",
    "simulated_set",
    "summarise",
    "summarise_sensors",
    "write_robustness",
]
