"""FrameAssembler: the one time sync, used live and offline. A reading of the key sensor (the LiDAR by
default) starts a frame; every other sensor contributes its cached reading nearest in stamp within a
tolerance. Each key stamp comes out exactly once, as a SensorFrame (in base_link) or a DroppedFrame.

Determinism: the frames depend only on the set of readings, not on their arrival order, given that
(1) each sensor's readings arrive in stamp order (one ROS topic; a bag in receive order) and
(2) no reading arrives after one stamped more than `max_delay_s` later than it (any sensor).
A sensor whose clock runs ahead of the others' breaks (2); where arrivals are known, its stamps
count back by how far its lag fell below the others' (`_trusted_newest`), so the other sensors'
readings are still waited for (the frames then depend on the arrivals, as live).
A key frame at t is built once every other sensor has a reading stamped >= t (its nearest candidate
is then fixed), or a stamp > t + tolerance_s + max_delay_s has been seen (anything still to come is
late), or at `flush()`. Extrinsics and CameraInfo are looked up when the frame is built.

Fallback key: when the key sensor is silent (a LiDAR that died is exactly what the monitor must
report, not go blind on), a reading of the fallback sensor at t starts a frame if no key reading is
stamped within `key_gap_s` of t; the key sensor is then missing in that frame. Decided from stamps
only: once a key reading later than t + key_gap_s, or any stamp later than t + key_gap_s +
max_delay_s, has been seen (assumptions (1) and (2)), so live and offline runs agree."""

from __future__ import annotations

import bisect
import dataclasses
import math
import statistics
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ros2_lmd.sensors.camera_info import CameraCalibration, check_image_size, intrinsics_from_camera_info
from ros2_lmd.sensors.errors import SensorDataError
from ros2_lmd.sensors.frame import MODALITIES, POINT_FIELDS, RADAR_FIELDS, CameraImage, SensorFrame
from ros2_lmd.sensors.tf import transform_points

# Point columns per modality; radar velocities are vectors and rotate with the sensor.
_VECTOR_COLUMNS: dict[str, tuple[tuple[int, int], ...]] = {
    "radar": ((RADAR_FIELDS.index("vx_comp"), RADAR_FIELDS.index("vy_comp")),),
    "lidar": (),
}


class ExtrinsicsProvider(Protocol):
    """Anything with TransformTree's lookup; raises LookupError when a transform is unknown."""

    def lookup(self, target_frame: str, source_frame: str) -> np.ndarray: ...


class SensorLike(Protocol):
    """What FrameAssembler reads of a configured sensor (a `frame_id` too where it has one):
    SensorSource, monitor.ingest.InputSensor and sim.rig.SensorSpec all qualify."""

    @property
    def name(self) -> str: ...

    @property
    def modality(self) -> str: ...


@dataclass(frozen=True)
class SensorSource:
    """One input sensor: its name (as used in `add`), modality, and sensor frame for extrinsics
    (default: the name). sim.rig.SensorSpec has the same attributes and may be passed instead."""

    name: str
    modality: str
    frame_id: str = ""


@dataclass(frozen=True)
class DroppedFrame:
    """A key reading that produced no frame, and why."""

    stamp: float
    reason: str
    frame_index: int
    malformed: bool = False  # the key message itself could not be used (see refuse_key)


AssemblyResult = SensorFrame | DroppedFrame


@dataclass
class AssemblerCounters:
    """Running totals, for the node's diagnostics and the replay report."""

    frames: int = 0
    dropped_frames: int = 0
    stale_readings: int = 0  # non-key readings too old for any pending or future frame
    replaced_readings: int = 0  # a second reading with the same stamp replaced the first


@dataclass(frozen=True)
class _Reading:
    stamp: float
    payload: np.ndarray
    frame_id: str
    trigger: str = ""  # the sensor whose reading this is, when it starts a frame as the fallback key
    stamp_ns: int | None = None  # the header stamp exactly, when known
    arrival: float | None = None  # when it came in (ROS time live, log time in a bag), when known
    refused: str = ""  # a fallback message that could not be used: why (its frame is dropped)
    reduction: int = 1  # a camera image decoded at 1/reduction of its CameraInfo size
    # arrivals of the sensor's latest messages up to this one (oldest first), when known
    recent_arrivals: tuple[float, ...] = ()


ARRIVALS_KEPT = 32  # arrival times kept per sensor: the received-share check looks 10 periods back


@dataclass
class _SensorBuffer:
    source: SensorSource
    stamps: list[float] = field(default_factory=list)  # sorted, parallel to readings
    readings: list[_Reading] = field(default_factory=list)
    newest: float = -math.inf
    newest_discarded: float = -math.inf  # newest stamp evicted or refused as stale
    # arrivals of the sensor's latest messages (SensorFrame.sensor_arrivals)
    arrivals: deque[float] = field(default_factory=lambda: deque(maxlen=ARRIVALS_KEPT))
    last_lag: float | None = None  # arrival - stamp of the message that came in last, when known
    last_stamp: float = -math.inf  # ... and its stamp


class FrameAssembler:
    """Builds SensorFrames from converted readings (`add`) of the configured sensors."""

    def __init__(
        self,
        sensors: Sequence[SensorLike],
        tolerance_s: float,
        extrinsics: ExtrinsicsProvider,
        key_sensor: str | None = None,
        base_frame: str = "base_link",
        max_delay_s: float = 0.0,
        calibrations: Mapping[str, CameraCalibration] | None = None,
        key_fallback: str | None = None,
        key_gap_s: float = 0.25,
        time_epoch: int = 0,
    ) -> None:
        if not math.isfinite(tolerance_s) or tolerance_s < 0:
            raise ValueError(f"FrameAssembler: tolerance_s must be finite and >= 0, got {tolerance_s}")
        if not math.isfinite(max_delay_s) or max_delay_s < 0:
            raise ValueError(f"FrameAssembler: max_delay_s must be finite and >= 0, got {max_delay_s}")
        self._sensors: dict[str, _SensorBuffer] = {}
        for sensor in sensors:
            source = SensorSource(
                str(sensor.name), str(sensor.modality), str(getattr(sensor, "frame_id", "") or sensor.name)
            )
            if source.modality not in MODALITIES:
                raise ValueError(
                    f"FrameAssembler: sensor {source.name!r} has modality "
                    f"{source.modality!r}, expected one of {MODALITIES}"
                )
            if source.name in self._sensors:
                raise ValueError(f"FrameAssembler: sensor {source.name!r} listed twice")
            self._sensors[source.name] = _SensorBuffer(source)
        self.key_sensor = self._resolve_key(key_sensor)
        self.key_fallback = self._resolve_key(key_fallback) if key_fallback else None
        if self.key_fallback == self.key_sensor:
            raise ValueError(
                f"FrameAssembler: the fallback key {key_fallback!r} is the key sensor {self.key_sensor!r}"
            )
        if not math.isfinite(key_gap_s) or key_gap_s <= 0:
            raise ValueError(f"FrameAssembler: key_gap_s must be finite and > 0, got {key_gap_s}")
        self.key_gap_s = float(key_gap_s)
        self.tolerance_s = float(tolerance_s)
        self.max_delay_s = float(max_delay_s)
        self.base_frame = base_frame
        self.time_epoch = time_epoch
        self.extrinsics = extrinsics
        self.counters = AssemblerCounters()
        self._calibrations: dict[str, CameraCalibration] = dict(calibrations or {})
        self._pending: list[_Reading] = []  # key readings, sorted by stamp
        # key stamps refused (late, duplicate, malformed), not yet popped: (stamp, reason, malformed)
        self._dropped: list[tuple[float, str, bool]] = []
        self._key_stamps: list[float] = []  # recent key stamps (sorted), for the fallback decision
        self._candidates: list[_Reading] = []  # fallback readings not yet decided (sorted)
        self._newest_any = -math.inf
        self._last_built = -math.inf
        self._next_index = 0

    def _resolve_key(self, key_sensor: str | None) -> str:
        """A sensor name, or a modality (the node's key_sensor parameter) meaning its first sensor."""
        wanted = key_sensor or "lidar"
        if wanted in self._sensors:
            return wanted
        of_modality = [n for n, s in self._sensors.items() if s.source.modality == wanted]
        if of_modality:
            return of_modality[0]
        raise ValueError(
            f"FrameAssembler: key sensor {wanted!r} is neither a sensor nor the "
            f"modality of one; sensors: {list(self._sensors)}"
        )

    @property
    def sensor_names(self) -> tuple[str, ...]:
        return tuple(self._sensors)

    @property
    def pending_stamps(self) -> tuple[float, ...]:
        """Key stamps waiting for the other sensors."""
        return tuple(r.stamp for r in self._pending)

    @property
    def frames_pending(self) -> int:
        """Frames not yet out: key readings waiting, refusals not yet popped, fallback readings
        not yet decided (each may become a frame)."""
        return len(self._pending) + len(self._dropped) + len(self._candidates)

    @property
    def cache_sizes(self) -> dict[str, int]:
        """Readings held per non-key sensor (bounded by the eviction rule)."""
        return {name: len(state.readings) for name, state in self._sensors.items() if name != self.key_sensor}

    def add_camera_info(self, name: str, msg: Any, topic: str | None = None) -> CameraCalibration:
        """Store the intrinsics of camera `name` from its CameraInfo (raises SensorDataError)."""
        calib = intrinsics_from_camera_info(msg, topic or f"{name}/camera_info")
        self.add_calibration(name, calib)
        return calib

    def add_calibration(self, name: str, calib: CameraCalibration) -> None:
        state = self._state(name)
        if state.source.modality != "camera":
            raise ValueError(f"FrameAssembler: {name!r} is a {state.source.modality}, not a camera")
        self._calibrations[name] = calib

    def add(
        self,
        sensor_name: str,
        stamp: float,
        payload: np.ndarray,
        frame_id: str = "",
        stamp_ns: int | None = None,
        arrival: float | None = None,
        reduction: int = 1,
    ) -> None:
        """Add one converted reading: an RGB image (cameras) or points in the SENSOR frame with
        RADAR_FIELDS / LIDAR_FIELDS columns. `frame_id` is the message's header frame (for
        extrinsics); empty means the sensor's configured frame. `arrival`: when the message came in,
        in the stamps' clock (SensorFrame.sensor_latency); it never changes which frame a reading
        joins (with the sensor's previous arrivals it is SensorFrame.sensor_arrivals).
        `reduction`: a camera image decoded at 1/reduction of its CameraInfo's size
        (sensors.image.jpeg_reduction); its intrinsics are scaled to match."""
        state = self._state(sensor_name)
        stamp = float(stamp)
        if not math.isfinite(stamp):
            raise SensorDataError(sensor_name, f"stamp: not finite ({stamp})")
        if arrival is not None:
            if state.arrivals and arrival < state.arrivals[-1]:
                state.arrivals.clear()  # the arrival clock went back: a new history
            state.arrivals.append(arrival)
            state.last_lag, state.last_stamp = arrival - stamp, stamp
        reading = _Reading(
            stamp,
            _check_payload(state.source, payload),
            str(frame_id).lstrip("/"),
            stamp_ns=stamp_ns,
            arrival=arrival,
            reduction=reduction,
            recent_arrivals=tuple(state.arrivals) if arrival is not None else (),
        )
        self._newest_any = max(self._newest_any, stamp)
        state.newest = max(state.newest, stamp)
        if sensor_name == self.key_fallback and stamp > self._last_built:
            self._add_candidate(dataclasses.replace(reading, trigger=sensor_name))
        if sensor_name == self.key_sensor:
            if self.key_fallback:
                bisect.insort(self._key_stamps, stamp)
            self._add_key(reading)
        elif stamp < self._eviction_threshold():
            self.counters.stale_readings += 1
            state.newest_discarded = max(state.newest_discarded, stamp)
        else:
            i = bisect.bisect_left(state.stamps, stamp)
            if i < len(state.stamps) and state.stamps[i] == stamp:
                state.readings[i] = reading
                self.counters.replaced_readings += 1
            else:
                state.stamps.insert(i, stamp)
                state.readings.insert(i, reading)
        self._evict()

    def _add_candidate(self, reading: _Reading) -> None:
        stamps = [r.stamp for r in self._candidates]
        i = bisect.bisect_left(stamps, reading.stamp)
        if i < len(stamps) and stamps[i] == reading.stamp:
            self._candidates[i] = reading  # same stamp again: the newer message, as in the cache
        else:
            self._candidates.insert(i, reading)

    def _add_key(self, reading: _Reading) -> None:
        if reading.stamp <= self._last_built:
            self._dropped.append(
                (
                    reading.stamp,
                    (
                        f"key reading at {reading.stamp:.6f} arrived after the frame at "
                        f"{self._last_built:.6f} was built (late or out of order)"
                    ),
                    False,
                )
            )
            return
        stamps = [r.stamp for r in self._pending]
        i = bisect.bisect_left(stamps, reading.stamp)
        if i < len(stamps) and stamps[i] == reading.stamp:
            self._dropped.append((reading.stamp, f"duplicate key stamp {reading.stamp:.6f}", False))
            return
        self._pending.insert(i, reading)

    def refuse_key(self, stamp: float, reason: str, malformed: bool = True) -> None:
        """A key-sensor message that could not be converted: its frame is dropped, in order, with
        `reason` (the next pop_ready returns it as a DroppedFrame)."""
        self._dropped.append((float(stamp), reason, malformed))

    def refuse_fallback(self, stamp: float, reason: str) -> None:
        """A fallback-key message that could not be converted: where it would have started a frame
        (the key sensor silent around it), that frame is dropped with `reason`, so the instant
        is still accounted for; where the key sensor is alive, it is forgotten like any reading."""
        stamp = float(stamp)
        if not math.isfinite(stamp) or stamp <= self._last_built or self.key_fallback is None:
            return
        self._newest_any = max(self._newest_any, stamp)
        empty = np.zeros((0,), dtype=np.float32)
        self._add_candidate(_Reading(stamp, empty, "", trigger=self.key_fallback, refused=reason))

    def pop_ready(self, now_stamp: float | None = None) -> list[AssemblyResult]:
        """Every result that is ready, oldest first. `now_stamp` (e.g. the live clock) counts as a
        seen stamp, so frames come out even when the other sensors have gone silent."""
        newest = self._trusted_newest()
        horizon = newest if now_stamp is None else max(newest, float(now_stamp))
        return self._emit(horizon, force=False)

    def _trusted_newest(self) -> float:
        """The newest stamp seen, as far as the stamps can be trusted. Where at least three sensors'
        arrivals are known: each sensor's last stamp, less how far its last message's lag (arrival -
        stamp) fell below the median lag when that is more than the tolerance (its clock runs
        ahead). One sensor stamped 0.5 s ahead (a clock offset) breaks assumption (2): counted as
        stamped, it built every frame before the other sensors' readings came in, evicted theirs,
        and all of them were missing; and its last stamp, not its newest, counts once its clock is
        back. Otherwise the newest stamp as seen."""
        lags = {name: s.last_lag for name, s in self._sensors.items() if s.last_lag is not None}
        if len(lags) < 3:
            return self._newest_any
        # statistics.median: called for every message added, on a dozen values (np.median's call
        # costs 40 times as much there)
        median = statistics.median(lags.values())
        newest = -math.inf
        for state in self._sensors.values():
            if state.last_lag is None:
                newest = max(newest, state.newest)
                continue
            ahead = median - state.last_lag
            newest = max(newest, state.last_stamp - (ahead if ahead > self.tolerance_s else 0.0))
        return newest

    def flush(self) -> list[AssemblyResult]:
        """Build every pending frame now (end of a bag or shutdown)."""
        return self._emit(math.inf, force=True)

    def _emit(self, horizon: float, force: bool) -> list[AssemblyResult]:
        results: list[AssemblyResult] = []
        self._decide_fallbacks(horizon, force)  # first: a refused fallback reading is a drop
        for stamp, reason, malformed in sorted(self._dropped, key=lambda drop: drop[0]):
            results.append(DroppedFrame(stamp, reason, self._take_index(), malformed))
            self.counters.dropped_frames += 1
        self._dropped.clear()
        while self._pending and (force or self._is_ready(self._pending[0].stamp, horizon)):
            key = self._pending.pop(0)
            results.append(self._build(key))
            self._last_built = key.stamp
            self.counters.frames += 1
        self._evict()
        return results

    def _decide_fallbacks(self, horizon: float, force: bool) -> None:
        """Fallback readings become frames when no key reading is stamped within key_gap_s."""
        newest_key = self._key_stamps[-1] if self._key_stamps else -math.inf
        while self._candidates:
            candidate = self._candidates[0]
            t, gap = candidate.stamp, self.key_gap_s
            decided = force or newest_key > t + gap or horizon > t + gap + self.max_delay_s
            if not decided:
                break
            self._candidates.pop(0)
            i = bisect.bisect_left(self._key_stamps, t - gap)
            if i < len(self._key_stamps) and self._key_stamps[i] <= t + gap:
                continue  # the key sensor is alive around t
            if candidate.refused:
                self._dropped.append((t, candidate.refused, True))
            elif t > self._last_built:
                bisect.insort(self._pending, candidate, key=lambda r: r.stamp)
        # key stamps are needed within key_gap_s of a candidate, held or still to come
        floor = min([c.stamp for c in self._candidates[:1]] + [self._oldest_future_stamp()])
        del self._key_stamps[: bisect.bisect_left(self._key_stamps, floor - self.key_gap_s)]

    def _oldest_future_stamp(self) -> float:
        """No reading still to come is stamped earlier than this and can start or join a frame:
        by assumption (2) it is no earlier than max_delay_s before the newest stamp seen, and a
        frame before the last built one cannot be started any more."""
        return max(self._last_built, self._trusted_newest() - self.max_delay_s)

    def _is_ready(self, t: float, horizon: float) -> bool:
        if horizon > t + self.tolerance_s + self.max_delay_s:
            return True
        return all(state.newest >= t for name, state in self._sensors.items() if name != self.key_sensor)

    def _eviction_threshold(self) -> float:
        """Readings older than this can serve no pending or future frame."""
        held = [r.stamp for r in self._pending[:1] + self._candidates[:1]]
        # A key reading still to come is later than every held one (assumption (1)); a fallback
        # reading still to come may be earlier than a held key, down to _oldest_future_stamp.
        if self.key_fallback or not held:
            held.append(self._oldest_future_stamp())
        return min(held) - self.tolerance_s

    def _evict(self) -> None:
        threshold = self._eviction_threshold()
        for state in self._sensors.values():
            cut = bisect.bisect_left(state.stamps, threshold)
            if cut:
                state.newest_discarded = max(state.newest_discarded, state.stamps[cut - 1])
                del state.stamps[:cut]
                del state.readings[:cut]

    def _take_index(self) -> int:
        index = self._next_index
        self._next_index += 1
        return index

    def _nearest(self, state: _SensorBuffer, t: float) -> tuple[_Reading | None, str]:
        """The reading nearest t within tolerance (ties: the earlier), or None and why not.
        The reason cites the latest reading before t: unlike a later one (which may still be in
        flight), it is the same whatever the arrival order."""
        i = bisect.bisect_left(state.stamps, t)
        candidates = [state.readings[j] for j in (i - 1, i) if 0 <= j < len(state.readings)]
        if candidates:
            best = min(candidates, key=lambda r: (abs(r.stamp - t), r.stamp))
            if abs(best.stamp - t) <= self.tolerance_s:
                return best, ""
        previous = state.stamps[i - 1] if i > 0 else state.newest_discarded
        before = f"previous one {t - previous:.3g} s before" if -math.inf < previous < t else "none before it"
        return None, f"no message within {self.tolerance_s:g} s of key stamp ({before})"

    def _extrinsic(self, frame_id: str) -> tuple[np.ndarray | None, str]:
        try:
            T = np.asarray(self.extrinsics.lookup(self.base_frame, frame_id), dtype=np.float64)
        except LookupError:
            return None, f"no extrinsic {self.base_frame}<-{frame_id}"
        return T, ""

    def _build(self, key: _Reading) -> SensorFrame:
        t = key.stamp
        cameras: list[CameraImage] = []
        clouds: dict[str, list[np.ndarray]] = {"radar": [], "lidar": []}
        present = {m: False for m in MODALITIES}
        status: dict[str, str] = {}
        sensor_points: dict[str, np.ndarray] = {}
        sensor_extrinsics: dict[str, np.ndarray] = {}
        sensor_latency: dict[str, float] = {}
        sensor_stamps: dict[str, float] = {}
        arrivals: dict[str, tuple[float, ...]] = {}
        for name, state in self._sensors.items():
            source = state.source
            if name == (key.trigger or self.key_sensor):
                reading, reason = key, ""
            elif name == self.key_sensor:  # a fallback frame: the key sensor is silent
                reading, reason = (
                    None,
                    (
                        f"silent: no message within {self.key_gap_s:g} s of "
                        f"this frame (started by {key.trigger})"
                    ),
                )
            else:
                reading, reason = self._nearest(state, t)
            if reading is not None:
                reason = self._contribute(source, reading, cameras, clouds, sensor_points, sensor_extrinsics)
                if not reason:
                    present[source.modality] = True
                    sensor_stamps[name] = reading.stamp
                    if reading.arrival is not None:
                        sensor_latency[name] = reading.arrival - reading.stamp
                    if reading.recent_arrivals:
                        arrivals[name] = reading.recent_arrivals
            status[name] = reason
        points = {
            m: np.concatenate(clouds[m]) if clouds[m] else np.zeros((0, len(POINT_FIELDS[m])))
            for m in ("radar", "lidar")
        }
        sensed = {state.source.modality for state in self._sensors.values()}
        return SensorFrame(
            stamp=t,
            cameras=cameras,
            radar=points["radar"],
            lidar=points["lidar"],
            present=present,
            sensor_status=status,
            frame_index=self._take_index(),
            no_sensor=frozenset(MODALITIES) - sensed,
            sensor_modality={n: s.source.modality for n, s in self._sensors.items()},
            stamp_ns=key.stamp_ns,
            time_epoch=self.time_epoch,
            sensor_points=sensor_points,
            sensor_extrinsics=sensor_extrinsics,
            sensor_latency=sensor_latency,
            sensor_stamps=sensor_stamps,
            sensor_arrivals=arrivals,
        )

    def _contribute(
        self,
        source: SensorSource,
        reading: _Reading,
        cameras: list[CameraImage],
        clouds: dict[str, list[np.ndarray]],
        sensor_points: dict[str, np.ndarray],
        sensor_extrinsics: dict[str, np.ndarray],
    ) -> str:
        """Add one reading to the frame being built; returns why it could not be used, or "".
        A point sensor's points are also recorded under its own name (SensorFrame.sensor_points)."""
        if source.modality == "camera":
            calib = self._calibrations.get(source.name)
            if calib is None:
                return "no CameraInfo yet"
            calib = calib.at_reduction(reading.reduction)
            try:
                check_image_size(reading.payload.shape[:2], calib, source.name)
            except SensorDataError as err:
                return err.reason
            frame_id = reading.frame_id or calib.frame_id or source.frame_id
            T, reason = self._extrinsic(frame_id)
            if T is None:
                return reason
            cameras.append(CameraImage(source.name, reading.payload, calib.K.copy(), T, reading.stamp))
            return ""
        T, reason = self._extrinsic(reading.frame_id or source.frame_id)
        if T is None:
            return reason
        points = transform_points(reading.payload, T, _VECTOR_COLUMNS[source.modality])
        clouds[source.modality].append(points)
        sensor_points[source.name] = points
        sensor_extrinsics[source.name] = T
        return ""

    def _state(self, name: str) -> _SensorBuffer:
        try:
            return self._sensors[name]
        except KeyError:
            raise KeyError(
                f"FrameAssembler: unknown sensor {name!r}; configured: {list(self._sensors)}"
            ) from None


def _check_payload(source: SensorSource, payload: Any) -> np.ndarray:
    """Readings enter already converted; refuse a wrong shape here rather than mid-frame."""
    array = np.asarray(payload)
    if source.modality == "camera":
        if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8 or 0 in array.shape:
            raise SensorDataError(
                source.name, f"image: expected H x W x 3 uint8 RGB, got {array.shape} {array.dtype}"
            )
        return array
    columns = POINT_FIELDS[source.modality]
    if array.ndim != 2 or array.shape[1] != len(columns):
        raise SensorDataError(
            source.name, f"points: expected (N, {len(columns)}) for {list(columns)}, got {array.shape}"
        )
    return np.asarray(array, dtype=np.float32)
