"""Simulated drives and training frames: renders every sensor of the rig for a World at given
instants, applies faults, attaches ground truth and assembles `SensorFrame`s. Randomness: the world
from SeedSequence([seed, 0]), each sensor's noise from ([seed, 1, frame, sensor]), faults from
their own stream, so turning a sensor off or faulting it leaves every other sensor bit-identical."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from ros2_lmd.geometry.grid import BEVGrid
from ros2_lmd.sensors.frame import MODALITIES, CameraImage, SensorFrame
from ros2_lmd.sim.camera import CameraModel, CameraRenderer, ground_texture
from ros2_lmd.sim.faults import FaultEvent, FaultSpec, apply_fault, expand_faults
from ros2_lmd.sim.lidar import DEFAULT_AZIMUTH_STEPS, LidarScan, scan_lidar
from ros2_lmd.sim.radar import VELOCITY_MODES, RadarScan, scan_radar
from ros2_lmd.sim.rig import DEFAULT_CAMERA_HEIGHT, DEFAULT_CAMERA_WIDTH, SensorRig, SensorSpec, default_rig
from ros2_lmd.sim.truth import GroundTruth, ground_truth
from ros2_lmd.sim.world import World, WorldConfig

START_STAMP = 1_700_000_000.0
# Each sensor kind's rate on the nuScenes rig (Caesar et al., "nuScenes: A multimodal dataset for
# autonomous driving", CVPR 2020): cameras 12 Hz, the LiDAR 20 Hz, radars 13 Hz.
NUSCENES_RATES_HZ: Mapping[str, float] = {"camera": 12.0, "radar": 13.0, "lidar": 20.0}
SENSOR_STREAM = 1
RANDOMISE_STREAM = 2

SensorData = CameraImage | RadarScan | LidarScan


@dataclass(frozen=True)
class SimConfig:
    """What to simulate and how finely. `modalities` limits rendering (e.g. ("radar", "lidar") for
    cheap training frames); lower camera resolutions keep the same field of view."""

    world: WorldConfig = field(default_factory=WorldConfig)
    camera_width: int = DEFAULT_CAMERA_WIDTH
    camera_height: int = DEFAULT_CAMERA_HEIGHT
    modalities: tuple[str, ...] = MODALITIES
    lidar_azimuth_steps: int = DEFAULT_AZIMUTH_STEPS
    radar_velocity: str = "radial"  # "radial": Doppler part only (nuScenes); "full": 2D velocity
    start_stamp: float = START_STAMP
    grid: BEVGrid = field(default_factory=BEVGrid)

    def __post_init__(self) -> None:
        unknown = set(self.modalities) - set(MODALITIES)
        if unknown:
            raise ValueError(f"SimConfig.modalities: unknown {sorted(unknown)}, valid {MODALITIES}")
        if self.radar_velocity not in VELOCITY_MODES:
            raise ValueError(
                f"SimConfig.radar_velocity must be one of {VELOCITY_MODES}, got {self.radar_velocity!r}"
            )

    def rig(self) -> SensorRig:
        return default_rig(self.camera_width, self.camera_height)


@dataclass
class SensorReading:
    """One sensor's message for one frame. `stamp` is the header stamp (capture time; it lags under
    a `delay` fault), `arrival` when it is published/recorded. `data` is None when the sensor
    published nothing (dropout). `faults` is ground truth, invisible to a monitor."""

    name: str
    modality: str
    stamp: float
    data: SensorData | None
    arrival: float
    faults: tuple[str, ...] = ()


@dataclass
class SimFrame:
    index: int
    t: float  # seconds since the start of the drive
    stamp: float  # absolute (start_stamp + t)
    readings: dict[str, SensorReading]  # rig order
    ground_truth: GroundTruth
    active_faults: list[FaultEvent]
    T_world_base: np.ndarray  # ego pose at t
    rig: SensorRig = field(repr=False)

    def to_sensor_frame(self, sync_tolerance: float | None = 0.1) -> SensorFrame:
        """The monitor's view: everything in base_link, radars merged, LiDAR transformed. A reading
        whose stamp is more than `sync_tolerance` seconds off the frame stamp counts as missing
        (docs/architecture.md, time sync); None keeps every reading."""
        cameras, radar, lidar, status = [], [], [], {}
        points, extrinsics, modality = {}, {}, {}  # per point sensor, as the FrameAssembler gives
        latency, stamps = {}, {}
        present = {m: False for m in MODALITIES}
        for name, reading in self.readings.items():
            lag = self.stamp - reading.stamp
            if reading.data is None:
                status[name] = "no data"
                continue
            if sync_tolerance is not None and abs(lag) > sync_tolerance:
                status[name] = f"stale: stamp {lag:+.3f} s off"
                continue
            spec = self.rig[name]
            present[reading.modality] = True
            latency[name] = reading.arrival - reading.stamp
            stamps[name] = reading.stamp
            if reading.modality == "camera":
                cameras.append(reading.data)
            else:
                to_base = radar_to_base if reading.modality == "radar" else lidar_to_base
                points[name] = to_base(reading.data.points, spec)
                (radar if reading.modality == "radar" else lidar).append(points[name])
                extrinsics[name], modality[name] = spec.T_base_sensor, reading.modality
        return SensorFrame(
            stamp=self.stamp,
            cameras=cameras,
            radar=np.concatenate(radar) if radar else np.zeros((0, 6), np.float32),
            lidar=np.concatenate(lidar) if lidar else np.zeros((0, 4), np.float32),
            present=present,
            sensor_status=status,
            frame_index=self.index,
            sensor_points=points,
            sensor_extrinsics=extrinsics,
            sensor_modality=modality,
            sensor_latency=latency,
            sensor_stamps=stamps,
        )


def radar_to_base(points: np.ndarray, spec: SensorSpec) -> np.ndarray:
    """Radar points (RADAR_FIELDS, sensor frame) to base_link: positions moved, velocities rotated."""
    R, p = spec.T_base_sensor[:3, :3], spec.T_base_sensor[:3, 3]
    out = points.astype(np.float64).copy()
    out[:, :3] = points[:, :3] @ R.T + p
    out[:, 4:6] = points[:, 4:6] @ R[:2, :2].T
    return out.astype(np.float32)


def lidar_to_base(points: np.ndarray, spec: SensorSpec) -> np.ndarray:
    R, p = spec.T_base_sensor[:3, :3], spec.T_base_sensor[:3, 3]
    out = points.astype(np.float64).copy()
    out[:, :3] = points[:, :3] @ R.T + p
    return out.astype(np.float32)


_CAMERA_MODELS: dict[tuple, CameraModel] = {}


def _camera_model(spec: SensorSpec) -> CameraModel:
    key = (spec.name, spec.width, spec.height, spec.T_base_sensor.tobytes(), spec.K.tobytes())
    if key not in _CAMERA_MODELS:
        _CAMERA_MODELS[key] = CameraModel(spec)
    return _CAMERA_MODELS[key]


class Simulator:
    """Renders the rig's sensors for one World. Frame-independent work (camera ray geometry, the
    road texture, lighting terms) is done once here."""

    def __init__(self, world: World, config: SimConfig | None = None, rig: SensorRig | None = None) -> None:
        self.world = world
        self.config = config or SimConfig(world=world.config)
        self.rig = rig or self.config.rig()
        self.sensors = tuple(s for s in self.rig.sensors if s.modality in self.config.modalities)
        self._index = {s.name: i for i, s in enumerate(self.rig.sensors)}
        self.texture = ground_texture(world.config)
        self._cameras: dict[str, CameraRenderer] = {}

    def sensor_rng(self, name: str, frame_index: int) -> np.random.Generator:
        return np.random.default_rng(
            np.random.SeedSequence([self.world.seed, SENSOR_STREAM, frame_index, self._index[name]])
        )

    def render(self, spec: SensorSpec, t: float, frame_index: int) -> SensorData:
        """The clean measurement of one sensor at time t (seconds since the drive's start)."""
        rng = self.sensor_rng(spec.name, frame_index)
        stamp = self.config.start_stamp + t
        if spec.modality == "camera":
            if spec.name not in self._cameras:
                self._cameras[spec.name] = CameraRenderer(self.world, spec, _camera_model(spec))
            image = self._cameras[spec.name].render(t, rng)
            return CameraImage(spec.name, image, spec.K, spec.T_base_sensor, stamp)
        if spec.modality == "radar":
            return scan_radar(self.world, spec, t, rng, self.config.radar_velocity)
        return scan_lidar(self.world, spec, t, rng, self.texture, self.config.lidar_azimuth_steps)

    def frame(
        self,
        index: int,
        t: float,
        events: Sequence[FaultEvent] = (),
        last_good: dict[str, SensorData] | None = None,
        sensors: Sequence[SensorSpec] | None = None,
    ) -> SimFrame:
        """Every enabled sensor (or those of `sensors`) at time t with the active faults applied.
        `last_good` carries each sensor's last unfaulted data between frames (for `frozen`); it is
        updated in place."""
        last_good = {} if last_good is None else last_good
        stamp = self.config.start_stamp + t
        active = [e for e in events if e.active(t)]
        readings = {}
        for spec in self.sensors if sensors is None else sensors:
            mine = [e for e in active if e.sensor == spec.name]
            kinds = tuple(e.kind for e in mine)
            capture_t = t - sum(e.value for e in mine if e.kind == "delay")
            if "dropout" in kinds:
                readings[spec.name] = SensorReading(spec.name, spec.modality, stamp, None, stamp, kinds)
                continue
            capture_stamp = self.config.start_stamp + capture_t
            if "frozen" in kinds:
                if spec.name not in last_good:  # frozen from the first frame: it shows that frame
                    last_good[spec.name] = self.render(spec, capture_t, index)
                data = replace(last_good[spec.name], stamp=capture_stamp)
            else:
                data = self.render(spec, capture_t, index)
                if not mine:
                    last_good[spec.name] = data
            for e in mine:
                if e.kind not in ("delay", "frozen"):
                    data = apply_fault(e, data, spec, self.world.seed, index, self.config.radar_velocity)
            readings[spec.name] = SensorReading(spec.name, spec.modality, capture_stamp, data, stamp, kinds)
        return SimFrame(
            index,
            t,
            stamp,
            readings,
            ground_truth(self.world, t, stamp, self.config.grid),
            active,
            self.world.T_world_base(t),
            self.rig,
        )


def simulate_drive(
    seed: int,
    duration_s: float = 20.0,
    rate_hz: float = 10.0,
    faults: str | Sequence[FaultSpec] | None = None,
    config: SimConfig | None = None,
    rates: Mapping[str, float] | None = None,
) -> Iterator[SimFrame]:
    """A drive of `duration_s` seconds sampled at `rate_hz`, frames at t = i / rate_hz. `faults` is a
    spec string (see faults.parse_fault_spec) or parsed FaultSpecs. With `rates` (Hz per modality,
    e.g. NUSCENES_RATES_HZ) each sensor samples at its modality's rate with a phase of its own
    (`sensor_schedule`) and a frame holds the sensors sampled at its instant."""
    if duration_s <= 0 or rate_hz <= 0:
        raise ValueError(f"simulate_drive: duration_s and rate_hz must be > 0, got {duration_s}, {rate_hz}")
    config = config or SimConfig()
    world = World.generate(seed, config.world, duration_s)
    sim = Simulator(world, config)
    events = expand_faults(faults, sim.rig)
    last_good: dict[str, SensorData] = {}
    if rates is None:
        for i in range(int(round(duration_s * rate_hz))):
            yield sim.frame(i, i / rate_hz, events, last_good)
        return
    for i, (t, sensors) in enumerate(sensor_schedule(sim.sensors, rates, duration_s)):
        yield sim.frame(i, t, events, last_good, sensors)


def sensor_schedule(
    sensors: Sequence[SensorSpec], rates: Mapping[str, float], duration_s: float
) -> list[tuple[float, tuple[SensorSpec, ...]]]:
    """When each sensor samples in [0, duration_s), as (t, the sensors sampled at t) in time order.
    The k-th of n sensors of a modality at f Hz samples at k / (n f) + i / f: spread over one period,
    as a rig's cameras fire one after the other while the LiDAR sweeps past them and free-running
    radars drift apart. Instants within 1 microsecond are one."""
    missing = sorted({s.modality for s in sensors} - set(rates))
    if missing:
        raise ValueError(f"sensor rates: no rate for {', '.join(missing)} (got {dict(rates)})")
    bad = {m: f for m, f in rates.items() if not (np.isfinite(f) and f > 0)}
    if bad:
        raise ValueError(f"sensor rates must be > 0 Hz, got {bad}")
    instants: dict[int, list[SensorSpec]] = {}
    for modality in sorted({s.modality for s in sensors}):
        group = [s for s in sensors if s.modality == modality]
        rate = float(rates[modality])
        for k, spec in enumerate(group):
            phase = k / (len(group) * rate)
            for i in range(int(np.ceil((duration_s - phase) * rate))):
                t = phase + i / rate
                if t < duration_s:
                    instants.setdefault(int(round(t * 1e6)), []).append(spec)
    order = {spec.name: i for i, spec in enumerate(sensors)}
    return [
        (micros / 1e6, tuple(sorted(group, key=lambda s: order[s.name])))
        for micros, group in sorted(instants.items())
    ]


def random_frame(
    seed: int,
    config: SimConfig | None = None,
    randomise: bool = True,
    faults: str | Sequence[FaultSpec] | None = None,
) -> SimFrame:
    """One independent scene at t = 0 for training sets. With `randomise` the road layout, traffic
    and parking density, clutter, lighting and the ego's speed and heading jitter vary per seed.
    Faults apply if their window contains t = 0 (e.g. "camera:night@0-1")."""
    config = config or SimConfig()
    rng = np.random.default_rng(np.random.SeedSequence([seed, RANDOMISE_STREAM]))
    world_config = config.world.randomised(rng) if randomise else config.world
    yaw = float(rng.normal(0, 0.05)) if randomise else 0.0
    offset = float(rng.normal(0, 0.3)) if randomise else 0.0
    world = World.generate(seed, world_config, duration_s=0.0, ego_yaw=yaw, ego_lateral_offset=offset)
    sim = Simulator(world, replace(config, world=world_config))
    return sim.frame(0, 0.0, expand_faults(faults, sim.rig))
