"""Sensor fault injection with a ground-truth timeline. A spec string such as
`"camera:blackout@5-9,lidar_top:delay:0.3@12-16"` names a target (a sensor or a whole modality),
a kind (optionally with a parameter) and a window [start, end) in seconds from the drive's start.
Fault randomness comes from its own RNG stream so the clean world is never perturbed."""

from __future__ import annotations

import csv
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ros2_lmd.sensors.frame import MODALITIES, CameraImage
from ros2_lmd.sim.lidar import CLUTTER_ID, ELEVATION_RANGE_DEG, N_BEAMS, LidarScan
from ros2_lmd.sim.radar import RadarScan, random_ghosts
from ros2_lmd.sim.rig import SensorRig, SensorSpec, default_rig

FAULT_KINDS: dict[str, tuple[str, ...]] = {
    "camera": ("blackout", "glare", "frozen", "night", "occlusion", "dropout", "delay"),
    "lidar": ("dropout", "sector_dropout", "fog", "delay"),
    "radar": ("dropout", "ghosts", "delay"),
}
# Parameter meaning and default per kind (kinds absent here take no parameter).
DEFAULT_PARAM: dict[str, float] = {
    "delay": 0.3,  # seconds the stamp (and the data) lag behind
    "sector_dropout": 90.0,  # width of the missing azimuth sector, degrees
    "fog": 30.0,  # visibility, metres
    "ghosts": 30.0,  # number of extra phantom targets per sweep
    "glare": 1.0,  # strength
    "night": 0.15,  # remaining light level
    "occlusion": 0.3,  # fraction of the image covered
}
FAULT_STREAM = 7919  # SeedSequence key separating fault randomness from the world's


@dataclass(frozen=True)
class FaultSpec:
    """One parsed fault: `target` is a sensor name or a modality name (all its sensors)."""

    target: str
    kind: str
    start: float
    end: float
    param: float | None = None

    def __str__(self) -> str:
        param = "" if self.param is None else f":{self.param:g}"
        return f"{self.target}:{self.kind}{param}@{self.start:g}-{self.end:g}"


@dataclass(frozen=True)
class FaultEvent:
    """A fault on one sensor: one row of the ground-truth timeline. Active for start <= t < end."""

    sensor: str
    kind: str
    start: float
    end: float
    param: float | None = None

    def active(self, t: float) -> bool:
        return self.start <= t < self.end

    @property
    def value(self) -> float:
        """The parameter, or the kind's default."""
        return self.param if self.param is not None else DEFAULT_PARAM.get(self.kind, 0.0)

    def key(self) -> int:
        """Stable id for this event's random stream: independent of which other faults exist."""
        return zlib.crc32(f"{self.sensor}:{self.kind}:{self.start!r}:{self.end!r}".encode())


def parse_fault_spec(
    spec: str, rig: SensorRig | None = None, duration_s: float | None = None
) -> list[FaultSpec]:
    """Parse `target:kind[:param]@start-end[,...]`. Raises ValueError naming the bad part. With
    `duration_s` (the drive's length), a window that starts at or after the drive's end is an error:
    it would inject nothing and yet be written to the ground-truth timeline. A window that starts
    inside the drive may run past its end (`@15-99`: until the end)."""
    rig = rig or default_rig(64, 64)
    faults = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        head, at, window = part.partition("@")
        if not at:
            raise ValueError(f"fault {part!r}: missing '@start-end' (expected target:kind[:param]@start-end)")
        fields = head.split(":")
        if len(fields) not in (2, 3) or not all(f.strip() for f in fields):
            raise ValueError(f"fault {part!r}: expected target:kind[:param] before '@', got {head!r}")
        target, kind = fields[0].strip(), fields[1].strip()
        modality = _target_modality(target, rig, part)
        if kind not in FAULT_KINDS[modality]:
            raise ValueError(
                f"fault {part!r}: kind {kind!r} does not apply to {modality} "
                f"(valid: {', '.join(FAULT_KINDS[modality])})"
            )
        param = None
        if len(fields) == 3:
            if kind not in DEFAULT_PARAM:
                raise ValueError(f"fault {part!r}: kind {kind!r} takes no parameter")
            param = _number(fields[2], part, "parameter")
            if param <= 0:
                raise ValueError(f"fault {part!r}: parameter must be > 0, got {param:g}")
        start_s, dash, end_s = window.partition("-")
        if not dash:
            raise ValueError(f"fault {part!r}: window {window!r} must be start-end in seconds")
        start, end = _number(start_s, part, "start"), _number(end_s, part, "end")
        if start < 0:
            raise ValueError(f"fault {part!r}: start must be >= 0, got {start:g}")
        if end <= start:
            raise ValueError(f"fault {part!r}: end ({end:g}) must be greater than start ({start:g})")
        if duration_s is not None and start >= duration_s:
            raise ValueError(
                f"fault {part!r}: starts at {start:g} s, outside the drive (0 to {duration_s:g} s)"
            )
        faults.append(FaultSpec(target, kind, start, end, param))
    return faults


def format_fault_spec(faults: Iterable[FaultSpec]) -> str:
    """The spec string that parse_fault_spec turns back into `faults`."""
    return ",".join(str(f) for f in faults)


def _target_modality(target: str, rig: SensorRig, part: str) -> str:
    if target in MODALITIES:
        return target
    if target in rig:
        return rig[target].modality
    raise ValueError(
        f"fault {part!r}: unknown sensor or modality {target!r} "
        f"(valid: {', '.join(MODALITIES)}, {', '.join(rig.names)})"
    )


def _number(text: str, part: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"fault {part!r}: {what} {text.strip()!r} is not a number") from None
    if not np.isfinite(value):
        raise ValueError(f"fault {part!r}: {what} must be finite, got {text.strip()!r}")
    return value


def as_faults(faults: str | Sequence[FaultSpec] | None, rig: SensorRig | None = None) -> list[FaultSpec]:
    if faults is None:
        return []
    if isinstance(faults, str):
        return parse_fault_spec(faults, rig)
    return list(faults)


def expand_faults(faults: str | Sequence[FaultSpec] | None, rig: SensorRig) -> list[FaultEvent]:
    """One event per affected sensor, in spec order then rig order."""
    events = []
    for f in as_faults(faults, rig):
        sensors = rig.of_modality(f.target) if f.target in MODALITIES else (rig[f.target],)
        events += [FaultEvent(s.name, f.kind, f.start, f.end, f.param) for s in sensors]
    return events


def timeline_rows(faults: str | Sequence[FaultSpec] | None, rig: SensorRig) -> list[dict[str, str]]:
    """CSV rows `sensor, kind, start, end, param` (param empty when the kind's default applies)."""
    return [
        {
            "sensor": e.sensor,
            "kind": e.kind,
            "start": f"{e.start:g}",
            "end": f"{e.end:g}",
            "param": "" if e.param is None else f"{e.param:g}",
        }
        for e in expand_faults(faults, rig)
    ]


CSV_COLUMNS = ("sensor", "kind", "start", "end", "param")


def write_faults_csv(path: str | Path, faults: str | Sequence[FaultSpec] | None, rig: SensorRig) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(timeline_rows(faults, rig))


def read_faults_csv(path: str | Path) -> list[FaultEvent]:
    """The timeline `write_faults_csv` wrote. Raises ValueError naming the file (and the line) for
    content that is not such a timeline, OSError (e.g. FileNotFoundError) for a file that cannot
    be opened."""
    with open(path, newline="") as fh:
        try:
            return _fault_events(csv.DictReader(fh), path)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ValueError(f"faults CSV {path}: not a CSV text file ({exc})") from None


def _fault_events(reader: csv.DictReader, path: str | Path) -> list[FaultEvent]:
    missing = set(CSV_COLUMNS[:4]) - set(reader.fieldnames or ())
    if missing:
        raise ValueError(f"faults CSV {path}: missing columns {sorted(missing)}")
    events = []
    for line, row in enumerate(reader, start=2):
        try:
            param = row.get("param") or None
            events.append(
                FaultEvent(
                    row["sensor"],
                    row["kind"],
                    float(row["start"]),
                    float(row["end"]),
                    None if param is None else float(param),
                )
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"faults CSV {path} line {line}: {exc}") from None
    return events


def fault_rngs(
    seed: int, event: FaultEvent, frame_index: int
) -> tuple[np.random.Generator, np.random.Generator]:
    """(per-event RNG, fixed over the window: blob positions, sectors; per-frame RNG: noise)."""
    base = [seed, FAULT_STREAM, event.key()]
    return (
        np.random.default_rng(np.random.SeedSequence(base)),
        np.random.default_rng(np.random.SeedSequence(base + [frame_index])),
    )


# Kinds that transform a rendered reading; dropout, delay and frozen act on what is rendered
# and published, so the drive loop handles them.
def apply_fault(
    event: FaultEvent,
    data: CameraImage | LidarScan | RadarScan,
    spec: SensorSpec,
    seed: int,
    frame_index: int,
    radar_velocity: str = "radial",
) -> CameraImage | LidarScan | RadarScan:
    ev_rng, frame_rng = fault_rngs(seed, event, frame_index)
    if spec.modality == "camera":
        image = _CAMERA_FAULTS[event.kind](data.image, event.value, ev_rng, frame_rng)
        return CameraImage(data.name, image, data.K, data.T_base_cam, data.stamp)
    if event.kind == "sector_dropout":
        start = ev_rng.uniform(-np.pi, np.pi)
        az = np.arctan2(data.points[:, 1], data.points[:, 0])
        return data.subset(np.mod(az - start, 2 * np.pi) >= np.radians(event.value))
    if event.kind == "fog":
        return _fog(data, event.value, frame_rng)
    if event.kind == "ghosts":
        real = data.subset(~data.is_ghost & (data.object_id >= 0))
        doubled = RadarScan(real.points.copy(), real.object_id.copy(), np.ones(len(real.object_id), bool))
        doubled.points[:, [0, 1, 4, 5]] *= 2.0  # double bounce: twice the range and Doppler
        return data.concat(doubled).concat(random_ghosts(int(event.value), spec, frame_rng, radar_velocity))
    raise ValueError(f"fault kind {event.kind!r} is not a data transform for {spec.modality}")


def _blackout(
    img: np.ndarray, value: float, ev_rng: np.random.Generator, rng: np.random.Generator
) -> np.ndarray:
    return rng.integers(0, 4, img.shape, dtype=np.uint8)  # read noise of a covered/dead sensor


def _glare(
    img: np.ndarray, value: float, ev_rng: np.random.Generator, rng: np.random.Generator
) -> np.ndarray:
    H, W = img.shape[:2]
    cu, cv = ev_rng.uniform(0.2, 0.8) * W, ev_rng.uniform(0.0, 0.4) * H  # sun position, fixed per event
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    bloom = np.exp(-((xx - cu) ** 2 + (yy - cv) ** 2) / (2 * (0.35 * W) ** 2))[..., None]
    out = img.astype(np.float32) * (1 + 0.5 * value) + value * (40 + 230 * bloom)
    return np.clip(out, 0, 255).astype(np.uint8)


def _night(
    img: np.ndarray, value: float, ev_rng: np.random.Generator, rng: np.random.Generator
) -> np.ndarray:
    out = img.astype(np.float32) * value + rng.normal(0, 6.0, img.shape).astype(np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)


def _occlusion(
    img: np.ndarray, value: float, ev_rng: np.random.Generator, rng: np.random.Generator
) -> np.ndarray:
    H, W = img.shape[:2]
    frac = min(value, 0.95)
    # An ellipse of area frac * H * W (mud/leaf on the lens), blurred edges, fixed per event.
    aspect = ev_rng.uniform(0.6, 1.6)
    a = np.sqrt(frac * H * W / np.pi * aspect)
    b = frac * H * W / (np.pi * a)
    centre = (int(ev_rng.uniform(0.2, 0.8) * W), int(ev_rng.uniform(0.3, 0.9) * H))
    mask = np.zeros((H, W), np.float32)
    cv2.ellipse(
        mask, centre, (max(int(a), 1), max(int(b), 1)), float(ev_rng.uniform(0, 180)), 0, 360, 1.0, -1
    )
    k = max(3, (min(H, W) // 16) | 1)
    mask = cv2.GaussianBlur(mask, (k, k), 0)[..., None]
    dirt = np.array([52.0, 42.0, 30.0], np.float32)
    return np.clip(img * (1 - mask) + dirt * mask, 0, 255).astype(np.uint8)


_CAMERA_FAULTS = {"blackout": _blackout, "glare": _glare, "night": _night, "occlusion": _occlusion}


def _fog(scan: LidarScan, visibility: float, rng: np.random.Generator) -> LidarScan:
    r = np.linalg.norm(scan.points[:, :3], axis=1)
    keep = rng.random(len(r)) < np.exp(-((r / visibility) ** 2))
    out = scan.subset(keep)
    out.points[:, 3] *= np.exp(-2 * r[keep] / visibility)
    # Droplet returns close to the sensor, spread over the beams' elevations.
    n = int(rng.integers(800, 2000))
    rr = rng.uniform(1.0, min(8.0, visibility / 2), n)
    az = rng.uniform(-np.pi, np.pi, n)
    ring = rng.integers(0, N_BEAMS, n)
    el = np.radians(np.linspace(*ELEVATION_RANGE_DEG, N_BEAMS))[ring]
    xyz = np.stack([rr * np.cos(el) * np.cos(az), rr * np.cos(el) * np.sin(az), rr * np.sin(el)], 1)
    clutter = np.concatenate([xyz, rng.uniform(0, 8, (n, 1))], 1).astype(np.float32)
    return LidarScan(
        np.concatenate([out.points, clutter]),
        np.concatenate([out.object_id, np.full(n, CLUTTER_ID)]),
        np.concatenate([out.ring, ring.astype(np.int16)]),
    )
