"""Per-sensor signal-level health checks, as Autoware's image_diagnostics and blockage_diag do: cheap
scalar features of each sensor's own data, so that an alert names the failing sensor (cam_front_left,
radar_back_right, lidar_top) rather than a modality, and says what in its data is wrong.

Why features of the raw signal and not the fusion network's contribution: a blinded camera still
contributes (noise makes activations), six cameras share one camera contribution, and the network's
output cannot say which of five radars sees ghosts. Signal features are per sensor by construction.

Why each sensor against its OWN rolling baseline: a side radar sees parked cars, the front one open
road; a camera facing the sun is brighter than one facing away. A feature is judged by how far it is
from that sensor's recent healthy history (median and MAD over `baseline_window` frames), so no
threshold is tied to one scene. Checks that need no history are absolute (an image of pure black
level, an image bit-identical to the previous one) and hold from the first frame.

Why the baseline is HELD while a sensor is suspect and until its recovery is confirmed: a baseline
that kept learning would learn the fault (the alarm would clear while the fault lasts) and then take
the return to normal for a new anomaly. Only frames of a sensor in state ok whose every check passed
teach its baseline. k-of-n hysteresis raises and clears, so one odd frame neither raises nor clears.

Besides one rule per known fault, evidence that needs no fault model: a payload identical to the
previous one (`repeat`, every sensor), and one profile anomaly per sensor (PROFILE: features a
healthy sensor keeps whatever the scene, each as a robust z against its own history, the largest
judged), including LiDAR against radar where both see (`SensorChecks._agreement`: the majority
decides which sensor disagrees); and each camera's view of the road, where the LiDAR says the road
is, against the other cameras' (`SensorChecks._road_agreement`: its change from its own history
less theirs). The LiDAR also explains a camera's reading away: an object close in front covers
blocked tiles (`near_cover`), and saturated pixels lying on an object it sees are a bright object,
not glare (`saturated_on_objects`).

Which feature catches which fault, the measured separations behind the defaults, and what these checks
cannot see: docs/sensor_checks.md. A silent sensor (dropout) and a late one (delay) are reported by the
time sync (SensorFrame.sensor_status) and sensors/stamps.py, not here: a sensor without data in a
frame keeps its state. State is updated in stamp order (as the AlertEngine's), so live and offline
runs give the same verdicts; a new time epoch (bag loop, clock reset) starts every sensor afresh.
ROS-free: numpy and OpenCV only."""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from ros2_lmd.monitor.report import (
    ERROR,
    INFO,
    SENSOR_DEGRADED,
    SENSOR_FAILED,
    SENSOR_RECOVERED,
    WARN,
    Alert,
)
from ros2_lmd.monitor.signal_features import (
    AGREEMENT_SCALES,
    AGREEMENT_SHIFTS_M,
    AGREEMENT_YAWS_DEG,
    ROAD_FEATURES,
    CameraFeatures,
    CameraMeasurement,
    Digest,
    Observation,
    PointFeatures,
    lidar_occupancy,
    measure_camera,
    object_returns,
    payload_digest,
    radar_agreement,
    road_returns,
    road_view,
    saturated_on_objects,
)
from ros2_lmd.sensors.frame import LIDAR_FIELDS, RADAR_FIELDS, SensorFrame

OK, SUSPECT, FAILED = "ok", "suspect", "failed"
STATES: tuple[str, ...] = (OK, SUSPECT, FAILED)
# (h, w) the camera checks were validated at (the simulator's 448x256 cameras; docs/sensor_checks.md):
# the smallest a camera image is decoded to for them (monitor.ingest.camera_decode_size).
CAMERA_CHECK_MIN_SIZE = (256, 448)
_MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its standard deviation


@dataclass(frozen=True)
class SensorCheckConfig:
    """Thresholds of the per-sensor checks. Frame counts assume about 10 Hz: `raise_k` of `raise_n`
    = 3 of 5 raises 0.2-0.4 s after an onset, `clear_k` of `clear_n` = 8 of 10 clears after 0.8 s
    of clean frames. A relative check compares a feature with the sensor's own healthy median (a
    ratio or a difference) and also needs the value `min_z` robust standard deviations (1.4826 MAD)
    from that median, so a feature that swings widely in that sensor's normal life does not alarm
    on a normal swing. Each limit lies between the most alarming value measured in fault-free drives
    and the least alarming one under the fault it is for, with margin both ways where the two are
    far apart; the measurements are in docs/sensor_checks.md."""

    # Baselines and hysteresis
    baseline_window: int = 100  # healthy frames a feature's median/MAD is taken over (10 s at 10 Hz)
    baseline_min_frames: int = 20  # relative checks start once this many healthy frames are known
    min_z: float = 4.0  # robust z-score a relative deviation also needs
    raise_k: int = 3  # anomalous frames among the last raise_n that raise suspect (failed: at that level)
    raise_n: int = 5
    clear_k: int = 8  # clean frames among the last clear_n that confirm a recovery
    clear_n: int = 10
    max_gap_s: float = 0.35  # temporal features (change, tiles) only against a reading this recent

    # Camera (images are judged in grey, at their own resolution)
    tile_grid: int = 16  # tiles per side of the blocked-tile map
    black_level: int = 6  # grey level at or below which a pixel is black (sensor black level + noise)
    black_fraction_failed: float = 0.95  # black pixel share at or above: blackout (absolute)
    frozen_change: float = 0.2  # mean |grey change| vs the previous image at or below: frozen (absolute)
    saturated_level: int = 250  # grey level at or above which a pixel is saturated
    saturated_rise_suspect: float = 0.15  # saturated share above its baseline by: suspect (glare)
    saturated_rise_failed: float = 0.3
    saturated_object_explains: float = 0.8  # share of the saturated pixels on LiDAR objects at which
    # they are a bright object (a white truck alongside), not glare: the share is then not judged
    dim_suspect: float = 0.5  # brightness ratio at or below, with noise up (low light): suspect
    dim_failed: float = 0.3
    noise_rise: float = 1.3  # image noise ratio a dimmed image also needs (gain up: low light)
    tile_dead_ratio: float = 0.25  # a tile is blocked when its texture AND change fall below this share
    blocked_suspect: float = 0.12  # share of blocked tiles at or above: suspect (occlusion, dirt)
    blocked_failed: float = 0.25
    sharpness_low_suspect: float = 0.45  # image sharpness ratio at or below: suspect (blur) ...
    sharpness_low_failed: float = 0.3  # (fault-free >= 0.51 in randomised worlds; motion blur 0.34-0.42)
    blur_contrast: float = 0.6  # ... while the image keeps this share of its contrast (grey sd): a flat
    # surface filling the view (a truck alongside) loses sharpness AND contrast (0.04-0.3); blur keeps it

    # LiDAR
    sectors: int = 36  # azimuth sectors around the sensor's own position (10 degrees each)
    sector_min_points: float = 8.0  # a sector counts for coverage when its baseline median has this many
    sector_lost_ratio: float = 0.1  # a counted sector is lost below this share of its baseline
    lost_sectors_suspect: int = 3  # lost sectors at or above: suspect (30 degrees dark)
    lost_sectors_failed: int = 6
    count_low_suspect: float = 0.8  # point count ratio at or below: suspect (beams lost, window dirt)
    count_low_failed: float = 0.2
    near_range_m: float = 10.0  # near-field clutter: returns within this horizontal range ...
    clutter_voxel_m: float = 0.5  # ... that are alone in their voxel of this size (fog, spray, rain)
    clutter_rise_suspect: float = 2.5  # near-field clutter ratio at or above: suspect
    clutter_rise_failed: float = 8.0
    clutter_min_points: int = 40  # and at least this many more returns than the baseline

    # Every sensor: latency (arrival - stamp) over the least latency of the frame's sensors whose
    # stamps are not ahead, so a machine that is late for every sensor at once (a loaded executor)
    # is no sensor fault; stamps moved forward (`ahead`) and lost messages (`received`) likewise
    # against the sensor's own history and the frame's other sensors (SensorChecks._timing)
    latency_rise_suspect: float = 0.15  # seconds later than its own baseline: suspect (late data)
    latency_rise_failed: float = 0.25
    ahead_suspect: float = 0.05  # stamp moved forward (s) beyond the other sensors' move: suspect
    ahead_failed: float = 0.15
    received_periods: int = 10  # the received share looks back this many of the sensor's own periods
    received_suspect: float = 0.7  # share of the expected messages received at or below: suspect
    received_failed: float = 0.35

    # Radar
    isolation_radius_m: float = 1.5  # a radar return with no other return of its sweep this close
    isolated_rise_suspect: float = 15.0  # isolated returns above the baseline by: suspect (ghosts)
    isolated_rise_failed: float = 30.0
    isolated_sweeps: int = 5  # the same, summed over this many sweeps (fewer phantoms, sustained):
    isolated_pooled_rise_suspect: float = 45.0  # (fault-free <= +32 in 4 randomised minutes, 12 a
    isolated_pooled_rise_failed: float = 90.0  # sweep added +64: docs/sensor_checks.md, third round)

    # General evidence, no fault model (docs/sensor_checks.md, "Evidence that needs no fault model")
    repeat_min_returns: int = 2  # a sweep with this many returns bit-identical to the previous: stuck
    repeat_failed: float = 1.0  # payload identical to the previous reading (1) at or above: stuck
    anomaly_suspect: float = 8.0  # profile anomaly (largest robust z of the profile): suspect
    anomaly_failed: float = 12.0
    static_tile_ratio: float = 0.25  # a tile is static when its change falls below this share ...
    static_scene_ratio: float = 0.5  # ... while the whole image changes at least this share of its own
    ground_min_m: float = 8.0  # LiDAR ground returns between these horizontal ranges ...
    ground_max_m: float = 25.0
    ground_percentile: float = 10.0  # ... and their height at this percentile per 10-degree sector
    agreement_cell_m: float = 0.5  # LiDAR occupancy cell a radar return must fall in (or next to)
    agreement_frames: int = 5  # sweeps pooled for the agreement (a sweep has a few returns) ...
    agreement_min_returns: int = 50  # ... and more, up to agreement_max_frames, until the pool holds
    agreement_max_frames: int = 15  # this many radar returns (3-60 m): a handful of returns that a
    # correction happens to put on objects is no evidence (docs/sensor_checks.md, fifth round)
    near_object_m: float = 3.0  # LiDAR returns this close to a camera (0.3-3 m above the ground) ...
    near_cover_explains: float = 0.8  # ... over this share of its horizontal view: an object in front
    # of the lens (a truck alongside), which explains tiles that lost texture and change (not dirt)
    # The road as each camera sees it (LiDAR road returns projected in), each camera's change from its
    # own history against the other cameras' (docs/sensor_checks.md, fourth round)
    road_height_m: float = 0.2  # LiDAR returns this close to base_link's ground plane ...
    road_corridor_m: float = 3.0  # ... and to the ego's path (|y|): the road, not the verge
    road_min_m: float = 3.0  # road returns this far from the camera ...
    road_max_m: float = 20.0  # ... and closer than this
    road_min_samples: int = 50  # road pixels in view a camera needs for a value
    road_columns: int = 56  # image columns an object's occlusion is judged in
    road_object_margin_m: float = 1.0  # road counts this much nearer than an object in its columns
    road_percentile: float = 50.0  # grey level of the road: this percentile (lane paint is thin)
    road_min_cameras: int = 4  # cameras with a value needed (a camera against at least 3 others)
    road_gap_suspect: float = 0.3  # |log| of its change over the others' median change: suspect
    road_gap_failed: float = 0.45  # (1.35 x, 1.57 x; fault-free <= 0.05, brightness 0.74, fog 0.51)

    def __post_init__(self) -> None:
        problems = sensor_check_config_problems(self)
        if problems:
            raise ValueError("SensorCheckConfig: " + "; ".join(problems))


def sensor_check_config_problems(config: SensorCheckConfig) -> list[str]:
    """Every inconsistent threshold, in words (empty when the configuration is usable)."""
    c = config
    problems = []
    if not 1 <= c.baseline_min_frames <= c.baseline_window:
        problems.append(f"baseline_min_frames {c.baseline_min_frames} not in [1, {c.baseline_window}]")
    if not 1 <= c.raise_k <= c.raise_n:
        problems.append(f"raise_k {c.raise_k} not in [1, raise_n {c.raise_n}]")
    if not 1 <= c.clear_k <= c.clear_n:
        problems.append(f"clear_k {c.clear_k} not in [1, clear_n {c.clear_n}]")
    if not 1 <= c.agreement_frames <= c.agreement_max_frames:
        problems.append(
            f"need 1 <= agreement_frames {c.agreement_frames} "
            f"<= agreement_max_frames {c.agreement_max_frames}"
        )
    if c.isolated_sweeps < 2:
        problems.append(f"isolated_sweeps must be >= 2, got {c.isolated_sweeps}")
    if c.received_periods < 2:
        problems.append(f"received_periods must be >= 2, got {c.received_periods}")
    if c.tile_grid < 2 or c.sectors < 4:
        problems.append(f"need tile_grid >= 2 and sectors >= 4, got {c.tile_grid}, {c.sectors}")
    for name in ("dim", "count_low", "sharpness_low", "received"):
        failed, suspect = getattr(c, f"{name}_failed"), getattr(c, f"{name}_suspect")
        if not 0 <= failed <= suspect < 1:
            problems.append(f"{name}: need 0 <= {name}_failed {failed} <= {name}_suspect {suspect} < 1")
    ordered = (
        "saturated_rise",
        "blocked",
        "lost_sectors",
        "clutter_rise",
        "isolated_rise",
        "isolated_pooled_rise",
        "anomaly",
        "road_gap",
    )
    for name in (*ordered, "ahead"):
        suspect, failed = getattr(c, f"{name}_suspect"), getattr(c, f"{name}_failed")
        if not 0 < suspect <= failed:
            problems.append(f"{name}: need 0 < {name}_suspect {suspect} <= {name}_failed {failed}")
    positive = (
        "min_z",
        "frozen_change",
        "max_gap_s",
        "near_range_m",
        "clutter_voxel_m",
        "isolation_radius_m",
        "agreement_cell_m",
        "near_object_m",
        "road_height_m",
        "road_corridor_m",
        "road_object_margin_m",
    )
    for name in positive:
        if not getattr(c, name) >= 0:
            problems.append(f"{name} must be >= 0, got {getattr(c, name)}")
    shares = ("black_fraction_failed", "tile_dead_ratio", "sector_lost_ratio", "static_tile_ratio")
    for name in (*shares, "blur_contrast", "near_cover_explains", "saturated_object_explains"):
        if not 0 < getattr(c, name) <= 1:
            problems.append(f"{name} must be in (0, 1], got {getattr(c, name)}")
    if not 0 <= c.ground_min_m < c.ground_max_m:
        problems.append(f"need 0 <= ground_min_m {c.ground_min_m} < ground_max_m {c.ground_max_m}")
    if not 0 <= c.road_min_m < c.road_max_m:
        problems.append(f"need 0 <= road_min_m {c.road_min_m} < road_max_m {c.road_max_m}")
    if c.road_min_samples < 1 or c.road_columns < 1:
        problems.append(
            f"need road_min_samples and road_columns >= 1, got {c.road_min_samples}, {c.road_columns}"
        )
    if not 0 <= c.road_percentile <= 100:
        problems.append(f"road_percentile must be in [0, 100], got {c.road_percentile}")
    if c.road_min_cameras < 4:
        # the median of fewer than 3 others is moved by one faulty camera: it would blame the others
        problems.append(f"road_min_cameras must be >= 4, got {c.road_min_cameras}")
    return problems


@dataclass(frozen=True)
class Finding:
    """One check that failed in one frame: which feature, its value against what, and in words.
    `baseline` is the sensor's own healthy median (None for an absolute check), `spread` its robust
    standard deviation, `limit` the threshold crossed, in the unit of `value` for absolute and
    difference checks, as a ratio to the baseline for ratio checks."""

    feature: str
    level: str  # suspect / failed
    value: float
    limit: float
    text: str
    baseline: float | None = None
    spread: float | None = None


@dataclass(frozen=True)
class SensorVerdict:
    """One sensor after one frame. `state` is the hysteresis state (ok / suspect / failed), `previous`
    the state before this frame. `evidence` lists the checks this frame failed; while a fault lasts
    the latest frame's (a frame may pass every check while the state waits for its recovery to be
    confirmed). `observed` is False when the sensor had no data in this frame: its state is carried
    over, and why it is silent is the time sync's to say (SensorFrame.sensor_status). `features` holds
    the frame's feature values; `measures` what each check compared with its limits (feature name ->
    the value for absolute checks, value / baseline median for ratio checks, value - median for rise
    checks; absent until the baseline exists); `baseline_frames` the healthy frames in its baseline."""

    sensor: str
    modality: str
    stamp: float
    state: str
    previous: str
    observed: bool = True
    evidence: tuple[Finding, ...] = ()
    features: Mapping[str, float] = field(default_factory=dict)
    measures: Mapping[str, float] = field(default_factory=dict)
    baseline_frames: int = 0

    @property
    def changed(self) -> bool:
        return self.state != self.previous

    @property
    def raised(self) -> bool:
        """This frame moved the sensor to a worse state (ok -> suspect/failed, suspect -> failed)."""
        return STATES.index(self.state) > STATES.index(self.previous)

    @property
    def cleared(self) -> bool:
        """This frame confirmed the sensor's recovery (suspect/failed -> ok)."""
        return self.state == OK and self.previous != OK

    def summary(self) -> str:
        """One line for an incident: the sensor, its state, and the evidence (failed checks first)."""
        if not self.observed:
            return f"{self.sensor}: {self.state} (no data in this frame)"
        head = f"{self.sensor}: {self.state}"
        if self.cleared:
            return f"{head} (recovered: its checks pass again)"
        if not self.evidence:
            return head
        ordered = sorted(self.evidence, key=lambda e: e.level != FAILED)
        return f"{head}: " + "; ".join(e.text for e in ordered)


# ---------------------------------------------------------------------------------------------------
# Rules: how a feature is judged


@dataclass(frozen=True)
class _Rule:
    """One check. `compare`: "abs_high" / "abs_low" (the value itself, no baseline), "ratio_low" /
    "ratio_high" (value / baseline median), "rise" (value - baseline median). `suspect` and `failed`
    name config fields (None: no such level). `also` names (feature, config field): the feature's
    own ratio to its baseline must be at least that field too."""

    feature: str
    compare: str
    suspect: str | None
    failed: str | None
    words: str  # what the feature is, for the evidence text
    unit: str = ""  # "%": fractions printed as percentages
    also: tuple[str, str] | None = None
    min_rise: str | None = None  # config field: the least value - median a ratio check also needs
    meaning: str = ""  # what it suggests, appended to the evidence text


RULES: dict[str, tuple[_Rule, ...]] = {
    "camera": (
        _Rule("black_fraction", "abs_high", None, "black_fraction_failed", "pixels black", "%",
              meaning="no image (blackout, covered or dead sensor)"),
        _Rule("change", "abs_low", None, "frozen_change", "mean grey change vs the previous image",
              meaning="image frozen (the same frame again)"),
        _Rule("saturated_fraction", "rise", "saturated_rise_suspect", "saturated_rise_failed",
              "pixels saturated", "%", meaning="glare or overexposure"),
        _Rule("brightness", "ratio_low", "dim_suspect", "dim_failed", "mean brightness",
              also=("noise", "noise_rise"), meaning="dimmed with the noise up: low light"),
        _Rule("sharpness", "ratio_low", "sharpness_low_suspect", "sharpness_low_failed",
              "image sharpness (mean |Laplacian|)", also=("contrast", "blur_contrast"),
              meaning="blurred: motion blur, defocus, a wet or fogged lens"),
        _Rule("blocked_fraction", "abs_high", "blocked_suspect", "blocked_failed",
              "tiles blocked (texture and change gone against their own history)", "%",
              meaning="part of the view blocked (dirt, occlusion)"),
        _Rule("road_gap", "abs_high", "road_gap_suspect", "road_gap_failed",
              "road seen unlike the other cameras see it (|log ratio| of changes)",
              meaning="the image itself changed: exposure, haze or fog on the lens, a colour cast, dirt"),
    ),
    "lidar": (
        _Rule("count", "ratio_low", "count_low_suspect", "count_low_failed", "points",
              meaning="returns lost"),
        _Rule("lost_sectors", "abs_high", "lost_sectors_suspect", "lost_sectors_failed",
              "azimuth sectors without returns", meaning="part of the field of view dark"),
        _Rule("near_clutter", "ratio_high", "clutter_rise_suspect", "clutter_rise_failed",
              "isolated returns near the sensor", min_rise="clutter_min_points",
              meaning="near-field clutter: fog, spray or rain"),
    ),
    "radar": (
        _Rule("isolated", "rise", "isolated_rise_suspect", "isolated_rise_failed",
              "isolated returns (no other return of the sweep nearby)",
              meaning="phantom targets: ghosts or interference"),
        _Rule("isolated_pooled", "rise", "isolated_pooled_rise_suspect", "isolated_pooled_rise_failed",
              "isolated returns over its last sweeps",
              meaning="phantom targets: ghosts or interference"),
    ),
}  # fmt: skip
# Every sensor: the same payload again (a driver or transport repeating a buffer), and its profile
# against its own history (PROFILE)
GENERAL_RULES = (
    _Rule(
        "repeat",
        "abs_high",
        None,
        "repeat_failed",
        "payload identical to the previous reading",
        meaning="stuck: the same data again with a new stamp",
    ),
    _Rule(
        "anomaly",
        "abs_high",
        "anomaly_suspect",
        "anomaly_failed",
        "profile anomaly (largest robust z against its own history)",
        meaning="the sensor's data unlike its own healthy history",
    ),
)
TIMING_RULES = (
    _Rule(
        "ahead",
        "abs_high",
        "ahead_suspect",
        "ahead_failed",
        "stamp moved forward against its own arrival and the other sensors'",
        "s",
        meaning="clock offset or drift: the stamps say the data is fresher than it is",
    ),
    _Rule(
        "received",
        "abs_low",
        "received_suspect",
        "received_failed",
        "share of its usual messages received in its last periods",
        "%",
        meaning="messages lost: a flaky link or a dropped rate",
    ),
)
LATENCY_RULE = _Rule("latency", "rise", "latency_rise_suspect", "latency_rise_failed",
                     "data age on arrival beyond the freshest sensor's", "s",
                     meaning="late data: a delay in the sensor, its driver or its transport")  # fmt: skip
RULES = {modality: (*rules, *GENERAL_RULES, *TIMING_RULES, LATENCY_RULE) for modality, rules in RULES.items()}


@dataclass(frozen=True)
class ProfileFeature:
    """One feature of a sensor's profile: what a healthy sensor keeps whatever the scene, so that its
    robust z-score against the sensor's own history says something about the sensor. `direction`: +1
    only a rise is anomalous, -1 only a fall, 0 both. The z-score's spread is at least `floor`
    (feature units) and `relative_floor` x |median|: a feature that barely moved in 10 s of history
    must still move by a meaningful amount."""

    feature: str
    direction: int
    floor: float
    relative_floor: float = 0.0
    words: str = ""


PROFILE: dict[str, tuple[ProfileFeature, ...]] = {
    "camera": (
        ProfileFeature("noise", 0, 0.2, 0.15, "image noise"),
        ProfileFeature("static_tiles", 1, 0.03, 0.0, "share of tiles static while the image moves"),
    ),
    "lidar": (
        ProfileFeature("ground_pitch", 0, 0.05, 0.0, "ground pitch (m, ahead - behind)"),
        # ground_roll is measured (features) but not in the profile: sidewalks, parked cars and walls
        # beside the road moved it by 0.5 m in a fault-free randomised world (docs/sensor_checks.md)
        ProfileFeature("yaw_fit", 1, 0.02, 0.0, "radar returns a yaw correction puts on LiDAR objects"),
        # floor 0.01: fault-free at most 0.041 in one frame, 0.028 held 3 of 5 (randomised worlds,
        # docs/sensor_checks.md, seventh round)
        ProfileFeature(
            "shift_fit", 1, 0.01, 0.0, "radar returns a shift along the car puts on LiDAR objects"
        ),
        ProfileFeature(
            "range_fit",
            1,
            0.02,
            0.0,
            "radar returns a range correction puts on LiDAR objects (radars' median)",
        ),
    ),
    "radar": (
        ProfileFeature(
            "range_fit",
            1,
            0.02,
            0.0,
            "returns a range correction puts on LiDAR objects beyond the radars' median",
        ),
    ),
}


def _fmt(value: float, unit: str) -> str:
    if unit == "%":
        return f"{100 * value:.0f} %"
    return f"{value:.3g} {unit}" if unit else f"{value:.3g}"


class _Baseline:
    """Rolling healthy history of one sensor's features (scalars and element-wise vectors)."""

    def __init__(self, window: int) -> None:
        self.scalars: dict[str, deque[float]] = {}
        self.vectors: dict[str, deque[np.ndarray]] = {}
        self.window = window
        self.frames = 0

    def learn(self, obs: Observation) -> None:
        self.frames = min(self.frames + 1, self.window)
        for name, value in obs.scalars.items():
            self.scalars.setdefault(name, deque(maxlen=self.window)).append(value)
        for name, vector in obs.vectors.items():
            self.vectors.setdefault(name, deque(maxlen=self.window)).append(vector)

    def stats(self, name: str, min_frames: int) -> tuple[float, float] | None:
        """(median, robust standard deviation) of a scalar, or None before min_frames values."""
        values = self.scalars.get(name)
        if values is None or len(values) < min_frames:
            return None
        arr = np.fromiter(values, np.float64, len(values))
        median = float(np.median(arr))
        return median, _MAD_TO_SIGMA * float(np.median(np.abs(arr - median)))

    def vector_median(self, name: str, min_frames: int) -> np.ndarray | None:
        values = self.vectors.get(name)
        if values is None or len(values) < min_frames:
            return None
        return np.median(np.stack(values), axis=0)


class _SensorState:
    """Hysteresis state, baseline and feature extractor of one sensor."""

    def __init__(self, name: str, modality: str, config: SensorCheckConfig) -> None:
        self.name = name
        self.modality = modality
        self.config = config
        self.state = OK
        self.baseline = _Baseline(config.baseline_window)
        self.levels: deque[int] = deque(maxlen=max(config.raise_n, config.clear_n))
        self.camera = CameraFeatures(config) if modality == "camera" else None
        self.points = None if modality == "camera" else PointFeatures(config, modality)
        self.last: SensorVerdict | None = None
        self.digest: tuple[Digest, float] | None = None  # the previous payload's fingerprint and stamp
        self.reading: tuple[float, Digest] | None = None  # (stamp, fingerprint)
        self.isolated: deque[float] = deque(maxlen=config.isolated_sweeps)  # radar: last sweeps' counts

    def seen_before(self, reading_stamp: float | None, digest: Digest) -> bool:
        """Whether this reading (its header stamp and payload fingerprint) is the one judged last:
        the time sync gives a slower sensor's reading to several frames of a faster key sensor (a
        12 Hz camera beside a 20 Hz LiDAR), and judging it again would call it frozen. A new
        payload under the same stamp (a stuck clock) or the same payload under a new stamp (a stuck
        sensor) is a new reading. Unknown stamps (None): always new."""
        if reading_stamp is None:
            return False
        reading = (reading_stamp, digest)
        if reading == self.reading:
            return True
        self.reading = reading
        return False

    def repeated(self, payload: np.ndarray, stamp: float, digest: Digest | None = None) -> float | None:
        """1 when `payload` is bit-identical to the previous reading (no older than max_gap_s),
        0 when not, None without a recent previous reading. `digest`: payload_digest(payload),
        when it was computed already."""
        if digest is None:
            digest = payload_digest(payload)
        previous, self.digest = self.digest, (digest, stamp)
        if previous is None or stamp - previous[1] > self.config.max_gap_s:
            return None
        return float(digest == previous[0])

    def _derive(self, obs: Observation) -> None:
        """Features judged element-wise against per-tile / per-sector baselines (into obs.scalars)."""
        c = self.config
        m = c.baseline_min_frames
        if self.modality == "camera":
            if obs.scalars.get("saturated_on_objects", 0.0) >= c.saturated_object_explains:
                # a bright object the LiDAR sees fills the saturated pixels: not glare. The share is
                # kept under another name, so that it is neither judged nor learnt as healthy
                if "saturated_fraction" in obs.scalars:
                    obs.scalars["saturated_fraction_explained"] = obs.scalars.pop("saturated_fraction")
            if obs.scalars.get("near_cover", 0.0) >= c.near_cover_explains:
                # an object in front of the lens, seen by the LiDAR (SensorChecks._near_objects):
                # tiles without texture or change, or static while the scene moves, are that object
                return
            texture = self.baseline.vector_median("tile_texture", m)
            change = self.baseline.vector_median("tile_change", m)
            if texture is not None and change is not None and "tile_change" in obs.vectors:
                blocked = (obs.vectors["tile_texture"] < c.tile_dead_ratio * texture) & (
                    obs.vectors["tile_change"] < c.tile_dead_ratio * change
                )
                obs.scalars["blocked_fraction"] = float(blocked.mean())
            scene = self.baseline.stats("change", m)
            moving = scene is not None and obs.scalars.get("change", 0.0) >= c.static_scene_ratio * scene[0]
            if change is not None and "tile_change" in obs.vectors and moving:
                static = obs.vectors["tile_change"] < c.static_tile_ratio * change
                obs.scalars["static_tiles"] = float(static.mean())
        elif self.modality == "lidar":
            counts = self.baseline.vector_median("sector_counts", m)
            if counts is not None:
                counted = counts >= c.sector_min_points
                lost = counted & (obs.vectors["sector_counts"] < c.sector_lost_ratio * counts)
                obs.scalars["lost_sectors"] = float(np.count_nonzero(lost))
        elif "isolated" in obs.scalars:
            # A radar sweep holds a few dozen returns, so a dozen phantoms per sweep is within one
            # sweep's normal swing; summed over several sweeps the phantoms add up faster than the
            # swing (its spread grows as the square root)
            self.isolated.append(obs.scalars["isolated"])
            if len(self.isolated) == self.isolated.maxlen:
                obs.scalars["isolated_pooled"] = float(sum(self.isolated))

    def _profile(self, obs: Observation) -> None:
        """The profile anomaly (into obs.scalars["anomaly"]): the largest robust z-score of the
        sensor's profile features against its own healthy history, the feature named in its note."""
        worst: tuple[float, ProfileFeature, float, float] | None = None
        for item in PROFILE[self.modality]:
            value = obs.scalars.get(item.feature)
            stats = self.baseline.stats(item.feature, self.config.baseline_min_frames)
            if value is None or stats is None:
                continue
            median, spread = stats
            scale = max(spread, item.floor, item.relative_floor * abs(median))
            z = (value - median) / scale
            z = abs(z) if item.direction == 0 else item.direction * z
            obs.z[item.feature] = z
            if worst is None or z > worst[0]:
                worst = (z, item, value, median)
        if worst is None:
            return
        z, item, value, median = worst
        obs.scalars["anomaly"] = z
        obs.notes["anomaly"] = f" ({item.words} {value:.3g} vs its baseline {median:.3g})"

    def _measure(self, feature: str, compare: str, obs: Observation) -> tuple[float, float, float] | None:
        """(what the check compares with its limit, baseline median, robust sd): the value itself for
        absolute checks (median and sd 0), value / median for ratios, value - median for rises.
        None when the feature or, for a relative check, its baseline is not there yet."""
        value = obs.scalars.get(feature)
        if value is None:
            return None
        if compare.startswith("abs"):
            return value, 0.0, 0.0
        stats = self.baseline.stats(feature, self.config.baseline_min_frames)
        if stats is None:
            return None
        median, spread = stats
        if compare == "rise":
            return value - median, median, spread
        if median <= 0:
            return None
        return value / median, median, spread

    def _check(self, rule: _Rule, obs: Observation, measures: dict[str, float]) -> Finding | None:
        """The rule's evidence this frame, or None; records what it measured in `measures`."""
        c = self.config
        measured = self._measure(rule.feature, rule.compare, obs)
        if measured is None:
            return None
        measure, median, spread = measured
        measures[rule.feature] = measure
        other_measured = None
        if rule.also is not None:
            other_measured = self._measure(rule.also[0], "ratio", obs)
            if other_measured is not None:
                measures[rule.also[0]] = other_measured[0]
        value = obs.scalars[rule.feature]
        low = rule.compare.endswith("low")
        meaning = f": {rule.meaning}" if rule.meaning else ""
        context = ""
        if not rule.compare.startswith("abs"):
            deviation = value - median
            if (-deviation if low else deviation) < c.min_z * spread:
                return None  # within this sensor's normal swing
            if rule.min_rise is not None and deviation < float(getattr(c, rule.min_rise)):
                return None
        if rule.also is not None:
            other, other_limit = rule.also
            if other_measured is None or other_measured[0] < float(getattr(c, other_limit)):
                return None
            context = (
                f", {other} {obs.scalars[other]:.3g} vs {other_measured[1]:.3g} ({other_measured[0]:.2f} x)"
            )
        for level, limit_name in ((FAILED, rule.failed), (SUSPECT, rule.suspect)):
            if limit_name is None:
                continue
            limit = float(getattr(c, limit_name))
            if not (measure <= limit if low else measure >= limit):
                continue
            if rule.compare.startswith("abs"):
                relation = "at or below" if low else "at or above"
                note = obs.notes.get(rule.feature, "")
                shown = f"{_fmt(value, rule.unit)}, {relation} {_fmt(limit, rule.unit)}"
                text = f"{rule.words} {shown}{note}{meaning}"
                return Finding(rule.feature, level, value, limit, text)
            if rule.compare == "rise":
                shown = f"+{_fmt(measure, rule.unit)} (limit +{_fmt(limit, rule.unit)})"
            else:
                shown = f"{measure:.2f} x (limit {limit:g} x)"
            text = (
                f"{rule.words} {_fmt(value, rule.unit)} vs baseline {_fmt(median, rule.unit)} "
                f"(robust sd {_fmt(spread, rule.unit)}, {self.baseline.frames} healthy frames): "
                f"{shown}{context}{meaning}"
            )
            return Finding(rule.feature, level, value, limit, text, median, spread)
        return None

    def step(self, obs: Observation, stamp: float) -> SensorVerdict:
        c = self.config
        self._derive(obs)
        self._profile(obs)
        measures: dict[str, float] = {f"z_{feature}": z for feature, z in obs.z.items()}
        evidence = [e for rule in RULES[self.modality] if (e := self._check(rule, obs, measures)) is not None]
        level = max((2 if e.level == FAILED else 1 for e in evidence), default=0)
        self.levels.append(level)
        recent = list(self.levels)
        raise_window, clear_window = recent[-c.raise_n :], recent[-c.clear_n :]
        previous = self.state
        if sum(v >= 2 for v in raise_window) >= c.raise_k:
            self.state = FAILED
        elif self.state == OK and sum(v >= 1 for v in raise_window) >= c.raise_k:
            self.state = SUSPECT
        elif self.state != OK and sum(v == 0 for v in clear_window) >= c.clear_k:
            # suspect and failed clear only to ok: stepping down failed -> suspect while the fault
            # lasts would flap between two alerts
            self.state = OK
        if self.state == OK and previous == OK and level == 0:
            self.baseline.learn(obs)  # only healthy frames of a healthy sensor teach its baseline
        self.last = SensorVerdict(
            self.name,
            self.modality,
            stamp,
            self.state,
            previous,
            True,
            tuple(evidence),
            dict(obs.scalars),
            measures,
            self.baseline.frames,
        )
        return self.last

    def unobserved(self, stamp: float) -> SensorVerdict:
        return SensorVerdict(
            self.name, self.modality, stamp, self.state, self.state, False, (), {}, {}, self.baseline.frames
        )

    def judged_already(self, stamp: float) -> SensorVerdict:
        """The verdict of a frame holding the reading judged last (`seen_before`): that reading's
        verdict stands, as news of nothing (no state change, so no alert is raised again)."""
        if self.last is None:
            return self.unobserved(stamp)
        return replace(self.last, stamp=stamp, previous=self.state)


def _origin(frame: SensorFrame, name: str) -> np.ndarray:
    """Where point sensor `name` sits in the frame's base frame (from its extrinsic; 0 unknown)."""
    T = frame.sensor_extrinsics.get(name)
    return np.zeros(3) if T is None else np.asarray(T, dtype=np.float64)[:3, 3]


def _point_modality(points: np.ndarray) -> str:
    return "radar" if points.shape[1] == len(RADAR_FIELDS) else "lidar"


def verdict_alerts(verdicts: Mapping[str, SensorVerdict]) -> list[Alert]:
    """The sensor-state alerts of one frame's verdicts: SENSOR_DEGRADED (suspect) or SENSOR_FAILED
    when a sensor's state gets worse, SENSOR_RECOVERED when its recovery is confirmed; naming the
    sensor. Nothing while a state holds: the incident carries the fault from there."""
    alerts = []
    for name, verdict in verdicts.items():
        if verdict.raised:
            failed = verdict.state == FAILED
            alerts.append(
                Alert(
                    SENSOR_FAILED if failed else SENSOR_DEGRADED,
                    ERROR if failed else WARN,
                    verdict.modality,
                    verdict.summary(),
                    sensor=name,
                )
            )
        elif verdict.cleared:
            alerts.append(Alert(SENSOR_RECOVERED, INFO, verdict.modality, verdict.summary(), sensor=name))
    return alerts


@dataclass
class FrameMeasurement:
    """What each sensor's reading of one frame shows by itself, with no history (`SensorChecks.
    measure`): pure, so the pipeline computes it in its parallel step and `update`, which must run
    in stamp order, only compares it with the past."""

    cameras: dict[str, tuple[CameraMeasurement, Digest]] = field(default_factory=dict)
    points: dict[str, tuple[Observation, Digest]] = field(default_factory=dict)
    road: dict[str, np.ndarray] = field(default_factory=dict)  # camera -> road_view (ROAD_FEATURES)
    # camera -> saturated_on_objects, for an image with at least saturated_rise_suspect saturated
    saturated_on_objects: dict[str, float] = field(default_factory=dict)


class SensorChecks:
    """Every sensor's check state for one monitor run. Call `update` once per frame, in stamp order:
    the same frames give the same verdicts, live or offline. `measure` (thread-safe) may do the
    history-free part of the work beforehand."""

    def __init__(self, config: SensorCheckConfig | None = None) -> None:
        self.config = config or SensorCheckConfig()
        self._sensors: dict[str, _SensorState] = {}
        self._epoch: int | None = None
        self._last_stamp = -math.inf
        # radar -> its last agreement_max_frames sweeps' agreement counts (radar_agreement)
        self._agreement_history: dict[str, deque[np.ndarray]] = {}
        # The latest measurement of each camera, with the image it was measured on: the time sync
        # gives a slower camera's image to several frames of a faster key sensor (12 Hz cameras
        # beside a 20 Hz LiDAR), and that very image is measured once (`measure` runs in several
        # threads at once, hence the lock).
        self._camera_measured: dict[str, tuple[np.ndarray, tuple[CameraMeasurement, Digest]]] = {}
        self._camera_lock = threading.Lock()
        # camera -> (stamp, its road features' change from its own healthy median): the latest of
        # each camera, which the others' are compared with (`_road_agreement`)
        self._road_change: dict[str, tuple[float, np.ndarray]] = {}

    @property
    def states(self) -> dict[str, str]:
        """Current state of every sensor seen so far."""
        return {name: s.state for name, s in self._sensors.items()}

    def reset(self) -> None:
        """Forget every sensor: baselines, hysteresis, previous readings."""
        self._sensors.clear()
        with self._camera_lock:
            self._camera_measured.clear()
        self._agreement_history.clear()
        self._road_change.clear()
        self._last_stamp = -math.inf

    def _sensor(self, name: str, modality: str) -> _SensorState:
        state = self._sensors.get(name)
        if state is None or state.modality != modality:
            state = self._sensors[name] = _SensorState(name, modality, self.config)
        return state

    def _agreement(
        self, sweeps: Mapping[str, tuple[_SensorState, Observation, np.ndarray, np.ndarray]]
    ) -> None:
        """LiDAR against radar where both see: the share of each radar's returns (pooled over its
        last sweeps) on LiDAR-occupied cells, uncorrected and under trial yaws and range scales.
        Who is wrong is decided by the majority, with no fault model:
        - the LiDAR's `yaw_fit`: the gain of the best yaw over the radars in state ok pooled (a
          LiDAR knocked on its mount moves every radar's returns off its objects alike);
        - the LiDAR's `shift_fit`: the gain of the best shift along the car over those radars
          pooled (the LiDAR's objects are where they were: an old sweep with a new stamp);
        - the LiDAR's `range_fit`: the median over those radars of each one's gain under its best
          range scale (the LiDAR's objects moved: every radar needs a correction);
        - each radar's `range_fit`: its own gain minus that median (a radar with wrong ranges needs
          a correction the others do not; one or two bad radars of five do not move the median).
        A reference that is itself not ok judges nothing: no radar is judged against a suspect
        LiDAR, nor the LiDAR against radars half of which are suspect, and fewer than three
        radars in state ok make no majority."""
        lidars = [(s, p) for s, _, p, _ in sweeps.values() if s.modality == "lidar"]
        radars = {n: v for n, v in sweeps.items() if v[0].modality == "radar"}
        if not lidars or len(radars) < 3:
            return
        c = self.config
        extent = 64.0
        lidar_state, cloud = lidars[0]
        lidar_origin = next(o for st, _, _, o in sweeps.values() if st is lidar_state)
        occupancy = lidar_occupancy(cloud[:, :3], c.agreement_cell_m, extent)
        pooled: dict[str, np.ndarray] = {}
        for name, (_, _, points, origin) in radars.items():
            history = self._agreement_history.setdefault(name, deque(maxlen=c.agreement_max_frames))
            history.append(
                radar_agreement(occupancy, points, origin, lidar_origin, extent, c.agreement_cell_m)
            )
            # the newest agreement_frames sweeps, and older ones while the pool is short of returns
            counts = np.zeros_like(history[-1])
            for age, sweep in enumerate(reversed(history), start=1):
                counts = counts + sweep
                if age >= c.agreement_frames and counts[0] >= c.agreement_min_returns:
                    pooled[name] = counts
                    break
        if len(pooled) < 3:
            return
        yaws = slice(1, 1 + len(AGREEMENT_YAWS_DEG))
        scales = slice(yaws.stop, yaws.stop + len(AGREEMENT_SCALES))
        shifts = slice(scales.stop, scales.stop + len(AGREEMENT_SHIFTS_M))
        # each correction's zero (equal but for rounding)
        no_yaw = yaws.start + AGREEMENT_YAWS_DEG.index(0.0)
        no_scale = scales.start + AGREEMENT_SCALES.index(1.0)
        no_shift = shifts.start + AGREEMENT_SHIFTS_M.index(0.0)
        # each radar's range gain: the share of its returns the best range scale puts on LiDAR
        # objects beyond the share they are on uncorrected
        gain = {
            name: float((counts[scales] / counts[0]).max() - counts[no_scale] / counts[0])
            for name, counts in pooled.items()
        }
        healthy = [gain[name] for name in pooled if radars[name][0].state == OK]
        radar_states = [s.state for s, _, _, _ in radars.values()]
        if len(healthy) < 3 or 2 * sum(state != OK for state in radar_states) >= len(radar_states):
            return
        # a gain the radars share is the LiDAR's (its objects moved: an old sweep re-stamped, a
        # shifted mount); a radar's own is what it has beyond that median
        common = float(np.median(healthy))
        lidar_obs = next(obs for s, obs, _, _ in sweeps.values() if s is lidar_state)
        lidar_obs.scalars["range_fit"] = common
        if lidar_state.state == OK:
            for name in pooled:
                radars[name][1].scalars["range_fit"] = gain[name] - common
        fleet = np.sum([v for n, v in pooled.items() if radars[n][0].state == OK], axis=0)
        shares = fleet / fleet[0]
        lidar_obs.scalars["yaw_fit"] = float(shares[yaws].max() - shares[no_yaw])
        lidar_obs.scalars["shift_fit"] = float(shares[shifts].max() - shares[no_shift])
        lidar_obs.scalars["radar_agreement"] = float(shares[no_yaw])

    def _near_objects(
        self,
        frame: SensorFrame,
        judged: Mapping[str, tuple[_SensorState, Observation]],
        sweeps: Mapping[str, tuple[_SensorState, Observation, np.ndarray, np.ndarray]],
    ) -> None:
        """Each judged camera's `near_cover`: the share of its horizontal view (2-degree bins) in
        which the LiDAR has a return within `near_object_m` of the camera, 0.3-3 m above the ground.
        A truck alongside fills a side camera with a flat, unchanging surface, which the camera
        alone cannot tell from dirt on its lens; the LiDAR sees the truck and not the dirt."""
        c = self.config
        clouds = [p for s, _, p, _ in sweeps.values() if s.modality == "lidar"]
        cameras = [cam for cam in frame.cameras if cam.name in judged]
        if not clouds or not cameras:
            return
        xyz = object_returns(np.concatenate([cloud[:, :3] for cloud in clouds]).astype(np.float64))
        # once for every camera: the returns that can be near any of them (a sweep holds tens of
        # thousands, a few hundred are this close)
        reach = c.near_object_m + max(float(np.hypot(*np.asarray(cam.T_base_cam)[:2, 3])) for cam in cameras)
        xy = xyz[np.einsum("ij,ij->i", xyz[:, :2], xyz[:, :2]) <= reach**2, :2]
        bin_rad = np.radians(2.0)
        for cam in cameras:
            T = np.asarray(cam.T_base_cam, dtype=np.float64)
            rel = xy - T[:2, 3]
            near = rel[np.einsum("ij,ij->i", rel, rel) <= c.near_object_m**2]
            axis = T[:3, 2]  # the optical axis in base_link
            if np.hypot(axis[0], axis[1]) < 1e-6:
                continue  # looking straight up or down: no horizontal view
            half_fov = float(np.arctan(cam.image.shape[1] / (2.0 * float(cam.K[0, 0]))))
            offset = np.arctan2(near[:, 1], near[:, 0]) - np.arctan2(axis[1], axis[0])
            offset = (offset + np.pi) % (2 * np.pi) - np.pi
            inside = offset[np.abs(offset) < half_fov] + half_fov
            bins = max(1, int(np.ceil(2 * half_fov / bin_rad)))
            occupied = np.unique(np.minimum((inside / bin_rad).astype(np.int64), bins - 1))
            judged[cam.name][1].scalars["near_cover"] = len(occupied) / bins

    def _road_agreement(self, judged: Mapping[str, tuple[_SensorState, Observation]], stamp: float) -> None:
        """Each judged camera's `road_gap`: how far its view of the road (ROAD_FEATURES) moved from
        its own healthy median, beyond the median of the same move of the other cameras (those in
        state ok with a value no older than `max_gap_s`), the largest of the features in |log|.
        Its own history takes out what is the camera's own (its mounting, the verge it sees, its
        exposure); the others' move takes out what all see (a cloud over the sun, a tunnel, a new
        road surface), so no fault model and no scene is assumed. Needs `road_min_cameras`: the
        median of three others is not moved by one faulty camera."""
        c = self.config
        for name, (sensor, obs) in judged.items():
            if sensor.modality != "camera" or not all(k in obs.scalars for k in ROAD_FEATURES):
                continue
            stats = [sensor.baseline.stats(k, c.baseline_min_frames) for k in ROAD_FEATURES]
            if all(s is not None for s in stats):
                change = [obs.scalars[k] - s[0] for k, s in zip(ROAD_FEATURES, stats) if s is not None]
                self._road_change[name] = (stamp, np.array(change))
        for name, (_, obs) in judged.items():
            own = self._road_change.get(name)
            if own is None or own[0] != stamp:
                continue
            others = [
                change
                for other, (seen, change) in self._road_change.items()
                if other != name and stamp - seen <= c.max_gap_s and self._sensors[other].state == OK
            ]
            if len(others) + 1 < c.road_min_cameras:
                continue
            gap = own[1] - np.median(others, axis=0)
            worst = int(np.argmax(np.abs(gap)))
            obs.scalars["road_gap"] = float(abs(gap[worst]))
            what = ("grey level", "red against green", "blue against green")[worst]
            obs.notes["road_gap"] = (
                f" (road {what} {np.exp(gap[worst]):.2f} x the change the other {len(others)} cameras saw)"
            )

    def _timing(self, frame: SensorFrame, judged: Mapping[str, tuple[_SensorState, Observation]]) -> None:
        """Arrival features of the new readings (into their observations), each sensor against its
        own history and the frame's other sensors, so that a machine late or stalled for every
        sensor at once is no sensor's fault:
        - `lag` (arrival - stamp) and `ahead`: how far the stamp moved forward against its own
          history beyond the other sensors' median move (a clock offset or drift; the stamps'
          epoch is arbitrary, a bag replayed without sim time has old stamps, so only changes mean
          anything), counted when it is also `min_z` robust sd of its own lag;
        - `latency`: arrival - stamp beyond the freshest sensor's that is not ahead (a delay);
        - `received`: the share of the messages its own median gap (`arrival_gap`) expects in its
          last `received_periods` periods that came (every message counted by the time sync, used
          in a frame or not), over the frame's median share when that is below 1 (lost messages: a
          flaky link, a dropped rate, whichever sensor starts the frames)."""
        c = self.config
        m = c.baseline_min_frames
        moved: dict[str, float] = {}  # sensor -> its lag minus its own median lag
        spread: dict[str, float] = {}
        for name, lag in frame.sensor_latency.items():
            state = self._sensors.get(name)
            stats = None if state is None else state.baseline.stats("lag", m)
            if stats is not None:
                moved[name], spread[name] = lag - stats[0], stats[1]
        ahead: dict[str, float] = {}
        for name, (_, obs) in judged.items():
            if name not in frame.sensor_latency:
                continue
            obs.scalars["lag"] = frame.sensor_latency[name]
            others = [v for n, v in moved.items() if n != name]
            if name in moved and len(others) >= 2:
                lead = min(float(np.median(others)) - moved[name], -moved[name])
                ahead[name] = lead if lead >= c.min_z * spread[name] else 0.0
                obs.scalars["ahead"] = ahead[name]
        trusted = [v for n, v in frame.sensor_latency.items() if ahead.get(n, 0.0) < c.ahead_suspect]
        freshest = min(trusted or frame.sensor_latency.values(), default=0.0)
        for name, (_, obs) in judged.items():
            if name in frame.sensor_latency:
                obs.scalars["latency"] = frame.sensor_latency[name] - freshest
        shares: dict[str, float] = {}  # sensor -> share of its usual messages received lately
        for name, arrivals in frame.sensor_arrivals.items():
            state = self._sensors.get(name)
            stats = None if state is None else state.baseline.stats("arrival_gap", m)
            if stats is None or not stats[0] > 0:
                continue
            window = c.received_periods * stats[0]
            # a gap longer than the window was a silence, the time sync's to report (silent): the
            # share counts from the sensor's return, once it has been back for a window
            back = next(
                (i for i in range(len(arrivals) - 1, 0, -1) if arrivals[i] - arrivals[i - 1] > window), 0
            )
            recent = arrivals[back:]
            if recent[-1] - recent[0] < (c.received_periods - 1) * stats[0]:
                continue  # not that much history yet
            received = sum(1 for a in recent if a > recent[-1] - window)
            shares[name] = min(1.0, received / c.received_periods)
        common = min(1.0, float(np.median(list(shares.values())))) if shares else 1.0
        for name, (_, obs) in judged.items():
            arrivals = frame.sensor_arrivals.get(name, ())
            if len(arrivals) >= 2:
                obs.scalars["arrival_gap"] = arrivals[-1] - arrivals[-2]
            if name in shares:
                obs.scalars["received"] = min(1.0, shares[name] / common) if common > 0 else 1.0

    def measure(self, frame: SensorFrame) -> FrameMeasurement:
        """The history-free features of every reading of `frame` and its payload fingerprint. Reads
        only the configuration: safe to call from several threads at once, in any order."""
        measured = FrameMeasurement()
        for camera in frame.cameras:
            with self._camera_lock:
                latest = self._camera_measured.get(camera.name)
            if latest is not None and latest[0] is camera.image:
                measured.cameras[camera.name] = latest[1]
                continue
            result = (measure_camera(camera.image, self.config), payload_digest(camera.image))
            with self._camera_lock:
                self._camera_measured[camera.name] = (camera.image, result)
            measured.cameras[camera.name] = result
        for name, points in frame.sensor_points.items():
            points = np.asarray(points, dtype=np.float32)
            if points.ndim != 2 or points.shape[1] not in (len(RADAR_FIELDS), len(LIDAR_FIELDS)):
                continue
            modality = frame.sensor_modality.get(name) or _point_modality(points)
            if modality == "camera":
                continue
            observation = PointFeatures(self.config, modality).observe(
                points, _origin(frame, name), frame.stamp
            )
            measured.points[name] = (observation, payload_digest(points))
        clouds = [
            np.asarray(p, dtype=np.float32)[:, :3]
            for n, p in frame.sensor_points.items()
            if frame.sensor_modality.get(n) == "lidar" and n in measured.points
        ]
        if clouds and frame.cameras:
            returns = road_returns(np.concatenate(clouds).astype(np.float64), self.config)
            for camera in frame.cameras:
                view = road_view(camera.image, camera.K, camera.T_base_cam, returns, self.config)
                if view is not None:
                    measured.road[camera.name] = view
                camera_measured = measured.cameras[camera.name][0]
                # only where the glare check could raise: a rise of the share needs the share
                if (
                    camera_measured.observation.scalars["saturated_fraction"]
                    >= self.config.saturated_rise_suspect
                ):
                    share = saturated_on_objects(
                        camera_measured.grey, camera.K, camera.T_base_cam, returns.objects, self.config
                    )
                    if share is not None:
                        measured.saturated_on_objects[camera.name] = share
        return measured

    def update(
        self, frame: SensorFrame, measured: FrameMeasurement | None = None
    ) -> dict[str, SensorVerdict]:
        """Verdicts for the sensors with data in `frame` (cameras, and point sensors in
        frame.sensor_points) and, carried over with observed=False, every other sensor seen before.
        A frame stamped at or before the previous one of its time epoch changes nothing and gets the
        current states back; a frame of a new time epoch starts every sensor afresh. `measured`:
        `measure(frame)`, when it was done already (the verdicts are the same either way)."""
        if self._epoch is not None and frame.time_epoch != self._epoch:
            self.reset()
        self._epoch = frame.time_epoch
        stamp = float(frame.stamp)
        if stamp <= self._last_stamp:
            return {name: s.unobserved(stamp) for name, s in self._sensors.items()}
        self._last_stamp = stamp
        verdicts: dict[str, SensorVerdict] = {}
        if measured is None:
            measured = self.measure(frame)
        judged: dict[str, tuple[_SensorState, Observation]] = {}  # new readings, in frame order
        for camera in frame.cameras:
            sensor = self._sensor(camera.name, "camera")
            assert sensor.camera is not None
            camera_measured, digest = measured.cameras[camera.name]
            if sensor.seen_before(frame.sensor_stamps.get(camera.name), digest):
                verdicts[camera.name] = sensor.judged_already(stamp)
                continue
            obs = sensor.camera.observe(camera.image, stamp, camera_measured)
            if camera.name in measured.road:
                obs.scalars.update(zip(ROAD_FEATURES, map(float, measured.road[camera.name])))
            if camera.name in measured.saturated_on_objects:
                obs.scalars["saturated_on_objects"] = measured.saturated_on_objects[camera.name]
            repeat = sensor.repeated(camera.image, stamp, digest)
            if repeat is not None:
                obs.scalars["repeat"] = repeat
            judged[camera.name] = (sensor, obs)
        sweeps: dict[str, tuple[_SensorState, Observation, np.ndarray, np.ndarray]] = {}
        for name, points in frame.sensor_points.items():
            points = np.asarray(points, dtype=np.float32)
            if points.ndim != 2 or points.shape[1] not in (len(RADAR_FIELDS), len(LIDAR_FIELDS)):
                continue  # not a point cloud of a known layout: nothing to judge
            sensor = self._sensor(name, frame.sensor_modality.get(name) or _point_modality(points))
            if sensor.points is None or name not in measured.points:
                continue  # a camera name with points: a configuration mistake, not a sensor fault
            point_obs, digest = measured.points[name]
            if sensor.seen_before(frame.sensor_stamps.get(name), digest):
                verdicts[name] = sensor.judged_already(stamp)
                continue
            obs = Observation(dict(point_obs.scalars), dict(point_obs.vectors))
            repeat = sensor.repeated(points, stamp, digest)
            if repeat is not None and len(points) >= self.config.repeat_min_returns:
                obs.scalars["repeat"] = repeat
            sweeps[name] = (sensor, obs, points, _origin(frame, name))
            judged[name] = (sensor, obs)
        self._timing(frame, judged)
        self._agreement(sweeps)
        self._near_objects(frame, judged, sweeps)
        lidars = [self._sensors.get(n) for n, m in frame.sensor_modality.items() if m == "lidar"]
        if all(lidar is None or lidar.state == OK for lidar in lidars):
            # a LiDAR not ok (stuck, late, knocked) puts its road returns elsewhere than the road in
            # the images: it would blame the cameras, as a reference not ok judges nothing
            self._road_agreement(judged, stamp)
        for name, (sensor, obs) in judged.items():
            verdicts[name] = sensor.step(obs, stamp)
        for name, sensor in self._sensors.items():
            if name not in verdicts:
                verdicts[name] = sensor.unobserved(stamp)
        return verdicts
