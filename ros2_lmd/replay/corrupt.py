"""`ros2-lmd corrupt`: rewrite any rosbag2 with sensor corruptions (`ros2_lmd.corrupt`) inside time
windows, and write the fault timeline inside the new bag (faults.csv, what `analyze` and the scorer
read). Every message outside a fault (another topic, or before or after the window) is copied byte
for byte with its connection's QoS; inside a window a camera's image is decoded, corrupted and
encoded again in its own message type (CompressedImage keeps its format, Image becomes rgb8) and a
cloud keeps its own field layout (`sensors.pointcloud2.structured_points`).

Sensors are found as `analyze` finds them: the monitor's topics (`--params-file`, else the
defaults), so a fault names the sensor an incident would name. Windows count in seconds from the
bag's first message, as faults.csv does. Randomness comes from the seed and the fault alone, so a
rewrite is reproducible and one fault's pattern does not depend on the others."""

from __future__ import annotations

import csv
import dataclasses
import shutil
import tempfile
import zlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ros2_lmd.corrupt import DEFAULT_SEVERITY, KINDS, Corruption, kind_for
from ros2_lmd.corrupt.timing import intermittent
from ros2_lmd.replay.bag import (
    RECORDING_CHUNK_BYTES,
    BagError,
    BagWriter,
    bag_dir,
    check_replaceable,
    resolve_bag,
)
from ros2_lmd.sim.faults import CSV_COLUMNS

MAX_LAG = 16  # messages of history kept per sensor for temporal misalignment
FAULT_FORMAT = "TARGET:KIND[:SEVERITY]@T0-T1"


@dataclass(frozen=True)
class Fault:
    """One `--fault`: `target` a sensor name or a modality (all its sensors in the bag)."""

    target: str
    kind: str
    severity: int
    start: float
    end: float

    def __str__(self) -> str:
        return f"{self.target}:{self.kind}:{self.severity}@{self.start:g}-{self.end:g}"


def parse_fault(text: str) -> Fault:
    """`TARGET:KIND[:SEVERITY]@T0-T1` (severity 1-5, default 3; seconds from the bag's start).
    ValueError naming the part that is wrong and what is valid; the target and kind are checked
    against the bag by `corrupt_bag`."""
    head, at, window = text.partition("@")
    fields = head.split(":")
    if not at or len(fields) not in (2, 3) or not all(f.strip() for f in fields):
        raise ValueError(f"--fault {text!r}: expected {FAULT_FORMAT}, e.g. cam_front:fog:3@5-9")
    target, kind = fields[0].strip(), fields[1].strip()
    known = sorted({k for kinds in KINDS.values() for k in kinds})
    if kind not in known:
        raise ValueError(f"--fault {text!r}: unknown kind {kind!r} (valid: {', '.join(known)})")
    severity = DEFAULT_SEVERITY
    if len(fields) == 3:
        if fields[2].strip() not in ("1", "2", "3", "4", "5"):
            raise ValueError(f"--fault {text!r}: severity {fields[2].strip()!r} must be one of 1, 2, 3, 4, 5")
        severity = int(fields[2])
    start_text, dash, end_text = window.partition("-")
    try:
        start, end = float(start_text), float(end_text)
    except ValueError:
        start = end = float("nan")
    if not dash or not (np.isfinite(start) and np.isfinite(end)) or start < 0 or end <= start:
        raise ValueError(f"--fault {text!r}: window {window!r} must be T0-T1 in seconds with 0 <= T0 < T1")
    return Fault(target, kind, severity, start, end)


@dataclass(frozen=True)
class BagSensor:
    name: str
    modality: str
    topic: str


@dataclass
class FaultEvent:
    """A fault on one sensor, with what applying it over its window needs to remember."""

    sensor: BagSensor
    fault: Fault
    corruption: Corruption
    seed: int
    index: int = 0  # messages of the window seen so far
    first: Any = None  # the window's first message (stuck)
    gaps: list[tuple[float, float]] = dataclasses.field(default_factory=list)

    def key(self) -> list[int]:
        fault = self.fault
        text = f"{self.sensor.name}:{fault.kind}:{fault.severity}:{fault.start!r}:{fault.end!r}"
        return [self.seed, zlib.crc32(text.encode())]

    def rng(self, per_message: bool) -> np.random.Generator:
        key = self.key() + ([self.index] if per_message else [])
        return np.random.default_rng(np.random.SeedSequence(key))


@dataclass(frozen=True)
class CorruptResult:
    bag: Path
    faults_csv: Path
    messages: int  # written
    corrupted: int  # written with a changed payload or stamp
    dropped: int  # inside a window and not written (frame lost, intermittent, rate drop)


def bag_sensors(topics: dict[str, str], params: Any = None) -> list[BagSensor]:
    """The monitor's sensors (`params`, else the defaults) whose data topic the bag holds."""
    from ros2_lmd.monitor.ingest import input_sensors
    from ros2_lmd.monitor.params import MonitorParams
    from ros2_lmd.sensors.frame import MODALITIES

    sensors = input_sensors(params or MonitorParams(), MODALITIES)
    return [BagSensor(s.name, s.modality, s.topic) for s in sensors if s.topic in topics]


def plan_events(faults: Sequence[Fault], sensors: Sequence[BagSensor], seed: int) -> list[FaultEvent]:
    """One event per sensor a fault targets; ValueError naming the fault and what is valid."""
    events = []
    names = {s.name: s for s in sensors}
    modalities = sorted({s.modality for s in sensors})
    for fault in faults:
        if fault.target in names:
            targets = [names[fault.target]]
        elif fault.target in ("camera", "radar", "lidar"):
            targets = [s for s in sensors if s.modality == fault.target]
        else:
            targets = []
        if not targets:
            raise ValueError(
                f"--fault {fault}: no sensor or modality {fault.target!r} in the bag (valid: "
                f"{', '.join(modalities + [s.name for s in sensors])})"
            )
        for sensor in targets:
            try:
                corruption = kind_for(sensor.modality, fault.kind, fault.severity)
            except ValueError as error:
                raise ValueError(f"--fault {fault}: {error}") from None
            events.append(FaultEvent(sensor, fault, corruption, seed))
    return events


def corrupt_bag(
    bag: str | Path,
    out: str | Path,
    faults: Sequence[Fault],
    seed: int = 0,
    params: Any = None,
    storage: str = "mcap",
    force: bool = False,
) -> CorruptResult:
    """Write `bag` with `faults` applied to `out` (a new rosbag2 folder, its faults.csv inside)."""
    from rosbags.rosbag2 import Reader

    from ros2_lmd.messages.types import project_typestore
    from ros2_lmd.replay.simulate import FAULTS_CSV

    source, out = resolve_bag(bag), bag_dir(out)
    if not source.exists():
        raise BagError(f"{source}: no such bag")
    if out.resolve() == source.resolve():
        raise ValueError(f"--out {out}: is the input bag; write the corrupted bag somewhere else")
    try:
        reader = Reader(source)
        reader.open()
    except Exception as error:
        raise BagError(f"{source}: not a readable rosbag2 ({type(error).__name__}: {error})") from None
    try:
        topics = {c.topic: c.msgtype for c in reader.connections}
        events = plan_events(faults, bag_sensors(topics, params), seed)
        check_replaceable(out, force)
        typestore = project_typestore()
        _register_bag_types(typestore, reader.connections)
        start_ns = int(reader.start_time)
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
        try:
            counts = _rewrite(reader, staging / out.name, storage, typestore, events, start_ns)
            _write_faults(staging / out.name / FAULTS_CSV, events)
            if out.exists():
                shutil.rmtree(out)
            (staging / out.name).rename(out)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    finally:
        reader.close()
    return CorruptResult(out, out / FAULTS_CSV, *counts)


def _register_bag_types(typestore: Any, connections: Sequence[Any]) -> None:
    """Teach the typestore the message types of a user's bag it does not know (from the bag's own
    definitions), so their connections can be written; copied messages are never re-encoded."""
    from rosbags.typesys import get_types_from_idl, get_types_from_msg

    for connection in connections:
        if connection.msgtype in typestore.fielddefs:
            continue
        msgdef = getattr(connection, "msgdef", None)
        try:
            data, fmt = msgdef.data, str(msgdef.format)
            parse = get_types_from_idl if "idl" in fmt.lower() else get_types_from_msg
            typestore.register(
                parse(data, connection.msgtype) if parse is get_types_from_msg else parse(data)
            )
        except Exception:  # an unparseable definition: add_connection will say which type
            continue


def _rewrite(
    reader: Any, path: Path, storage: str, typestore: Any, events: list[FaultEvent], start_ns: int
) -> tuple[int, int, int]:
    by_topic: dict[str, list[FaultEvent]] = {}
    for event in events:
        by_topic.setdefault(event.sensor.topic, []).append(event)
        if event.corruption.acts_on == "arrival" and event.corruption.fixed:
            event.gaps = event.corruption.function(
                event.fault.end - event.fault.start,
                event.corruption.parameter(event.fault.severity),
                event.rng(False),
            )
    # earlier messages are kept (decoded) only for the topics whose faults send earlier payloads
    history: dict[str, deque[Any]] = {
        e.sensor.topic: deque(maxlen=MAX_LAG) for e in events if e.corruption.acts_on == "payload_source"
    }
    written = corrupted = dropped = 0
    with BagWriter(path, typestore, storage, RECORDING_CHUNK_BYTES) as writer:
        for connection, timestamp, raw in reader.messages():
            qos = tuple(getattr(connection.ext, "offered_qos_profiles", ()) or ())
            t = (timestamp - start_ns) * 1e-9
            active = [e for e in by_topic.get(connection.topic, []) if e.fault.start <= t < e.fault.end]
            kept = history.get(connection.topic, deque(maxlen=0))
            original = typestore.deserialize_cdr(raw, connection.msgtype) if active or kept.maxlen else None
            if not active:
                kept.append(original)
                writer.write_raw(connection.topic, connection.msgtype, timestamp, raw, qos)
                written += 1
                continue
            message: Any = original
            for event in active:
                message = _apply(event, message, original, kept, t - event.fault.start)
                event.index += 1
                if message is None:
                    break
            kept.append(original)
            if message is None:
                dropped += 1
                continue
            writer.write_raw(
                connection.topic,
                connection.msgtype,
                timestamp,
                typestore.serialize_cdr(message, connection.msgtype),
                qos,
            )
            written += 1
            corrupted += 1
    return written, corrupted, dropped


def _apply(event: FaultEvent, message: Any, original: Any, history: deque[Any], t: float) -> Any:
    """`message` (the sensor's message inside the event's window, `t` s into it) under the event;
    None when it does not arrive."""
    corruption, level = event.corruption, event.corruption.parameter(event.fault.severity)
    acts_on = corruption.acts_on
    if acts_on == "arrival":
        if corruption.fixed:
            return message if intermittent(t, event.gaps) else None
        return message if corruption.function(event.index, t, level, event.rng(True)) else None
    if acts_on == "stamp":
        shift_ns = int(round(corruption.function(t, level) * 1e9))
        return _with_stamp(message, _stamp_ns(message) + shift_ns)
    if acts_on == "payload_source":
        if event.first is None:
            event.first = original
        source_index = int(corruption.function(event.index, level))  # from the window's first message
        back = event.index - source_index  # messages before this one
        if back == 0:
            source = original
        elif back <= len(history):
            source = history[-back]
        elif source_index >= 0:
            source = event.first
        else:  # before the bag's first message of this sensor: its oldest
            source = history[0] if history else original
        return dataclasses.replace(source, header=message.header)
    rng = event.rng(not corruption.fixed)
    if acts_on == "image":
        return _corrupt_image(message, event.sensor.topic, lambda rgb: corruption.function(rgb, level, rng))
    from ros2_lmd.sensors.pointcloud2 import structured_points, with_structured_points

    points = structured_points(message, event.sensor.topic)
    return with_structured_points(message, corruption.function(points, level, rng))


def _corrupt_image(message: Any, topic: str, corrupt: Any) -> Any:
    from ros2_lmd.sensors.image import compressed_to_rgb, image_to_rgb, rgb_to_compressed, rgb_to_image_fields

    if hasattr(message, "encoding"):  # sensor_msgs/Image
        rgb = np.ascontiguousarray(corrupt(image_to_rgb(message, topic)), dtype=np.uint8)
        fields = rgb_to_image_fields(rgb)
        fields["data"] = np.frombuffer(fields["data"], np.uint8)
        return dataclasses.replace(message, **fields)
    fmt = "png" if "png" in str(message.format).lower() else "jpeg"
    rgb = np.ascontiguousarray(corrupt(compressed_to_rgb(message, topic)), dtype=np.uint8)
    return dataclasses.replace(message, data=np.frombuffer(rgb_to_compressed(rgb, fmt, quality=95), np.uint8))


def _stamp_ns(message: Any) -> int:
    return int(message.header.stamp.sec) * 10**9 + int(message.header.stamp.nanosec)


def _with_stamp(message: Any, stamp_ns: int) -> Any:
    stamp = message.header.stamp
    sec, nanosec = divmod(max(0, stamp_ns), 10**9)
    header = dataclasses.replace(message.header, stamp=dataclasses.replace(stamp, sec=sec, nanosec=nanosec))
    return dataclasses.replace(message, header=header)


def _write_faults(path: Path, events: Sequence[FaultEvent]) -> None:
    """The timeline as `sim.faults.write_faults_csv` writes it; `param` holds the severity."""
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for event in events:
            writer.writerow(
                {
                    "sensor": event.sensor.name,
                    "kind": event.fault.kind,
                    "start": f"{event.fault.start:g}",
                    "end": f"{event.fault.end:g}",
                    "param": str(event.fault.severity),
                }
            )
