"""Procedural driving world: a straight multi-lane road with markings, vehicles (cars, vans, trucks)
as oriented 3D boxes driving along lanes or parked, static clutter (building walls, poles, guard
rails) and the ego car's motion. Motion is analytic (constant velocities), so a sensor can be
rendered at any instant, which the `delay` fault needs. World frame: ground at z = 0, road along +x."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

VEHICLE_CLASSES: tuple[str, ...] = ("car", "van", "truck")
STATIC_CLASSES: tuple[str, ...] = ("wall", "pole", "guard_rail")
CLASSES: tuple[str, ...] = VEHICLE_CLASSES + STATIC_CLASSES
CLASS_ID = {name: i for i, name in enumerate(CLASSES)}
N_VEHICLE_CLASSES = len(VEHICLE_CLASSES)

# (length, width, height) uniform ranges in metres per vehicle class.
_VEHICLE_SIZE = {
    "car": ((3.8, 4.9), (1.7, 1.95), (1.4, 1.7)),
    "van": ((4.8, 5.8), (1.9, 2.1), (1.9, 2.5)),
    "truck": ((7.0, 12.0), (2.4, 2.55), (3.0, 3.8)),
}
_CAR_PAINT = np.array(
    [
        [235, 235, 232],
        [25, 25, 28],
        [170, 172, 176],
        [100, 102, 106],
        [160, 25, 25],
        [30, 55, 130],
        [35, 80, 50],
        [200, 185, 150],
        [215, 170, 30],
    ],
    np.float64,
)
_CAR_PAINT_P = np.array([0.24, 0.18, 0.17, 0.14, 0.09, 0.09, 0.04, 0.03, 0.02])
_FACADE = np.array(
    [[150, 80, 60], [180, 175, 165], [200, 185, 150], [90, 90, 95], [120, 130, 140]], np.float64
)
# Radar cross-section means (dBsm) and LiDAR reflectivity (0..1) per class, in CLASSES order.
RCS_MEAN = np.array([10.0, 13.0, 20.0, 15.0, 5.0, 8.0])
_REFLECTIVITY = np.array([0.45, 0.45, 0.5, 0.35, 0.5, 0.75])


@dataclass(frozen=True)
class WorldConfig:
    """Scene parameters. Densities are per 100 m of lane (moving) or of kerb (parked)."""

    lanes_per_direction: int = 2
    lane_width: float = 3.5
    median_width: float = 1.0  # a guard rail runs along the median when > 0
    parking_width: float = 2.5  # parking strip on each side; >= 5.5 allows angled parking
    sidewalk_width: float = 3.0
    vehicle_density: float = 2.5
    parked_density: float = 6.0
    van_fraction: float = 0.18
    truck_fraction: float = 0.12
    ego_speed: tuple[float, float] = (7.0, 13.0)  # m/s, drawn uniformly
    walls: bool = True
    poles: bool = True
    guard_rails: bool = True
    populate_range: float = 120.0  # the road is populated this far around the ego's whole path

    def __post_init__(self) -> None:
        if self.lanes_per_direction < 1:
            raise ValueError(f"WorldConfig.lanes_per_direction must be >= 1, got {self.lanes_per_direction}")
        if min(self.lane_width, self.sidewalk_width) <= 0 or min(self.median_width, self.parking_width) < 0:
            raise ValueError(f"WorldConfig widths must be positive: {self}")
        if min(self.vehicle_density, self.parked_density) < 0:
            raise ValueError(f"WorldConfig densities must be >= 0: {self}")

    def randomised(self, rng: np.random.Generator) -> WorldConfig:
        """A varied scene for training sets: road layout, traffic density and clutter."""
        return replace(
            self,
            lanes_per_direction=int(rng.integers(1, 4)),
            median_width=float(rng.choice([0.0, 1.0, 3.0])),
            parking_width=float(rng.choice([0.0, 2.5, 6.0])),
            vehicle_density=float(rng.uniform(0.0, 6.0)),
            parked_density=float(rng.uniform(0.0, 15.0)),
            ego_speed=(0.0, 15.0),
            walls=bool(rng.random() < 0.75),
            poles=bool(rng.random() < 0.8),
            guard_rails=bool(rng.random() < 0.6),
        )

    # Lateral layout (world y): the ego's direction (+x) uses y < 0 (right-hand traffic).
    @property
    def road_edge(self) -> float:
        return self.median_width / 2 + self.lanes_per_direction * self.lane_width

    @property
    def kerb(self) -> float:
        return self.road_edge + self.parking_width

    @property
    def building_line(self) -> float:
        return self.kerb + self.sidewalk_width

    def lane_centre(self, lane: int, direction: int) -> float:
        """Lane 0 is innermost; direction +1 drives along +x (y < 0), -1 along -x (y > 0)."""
        return -direction * (self.median_width / 2 + (lane + 0.5) * self.lane_width)


@dataclass
class ObjectBoxes:
    """Oriented 3D boxes as parallel arrays (one row per object), in one frame (world or base_link).
    `centre` is the box centre (z = h/2 for objects on the ground); `velocity` is over ground."""

    ids: np.ndarray  # (N,) int64, unique within a world
    classes: np.ndarray  # (N,) int64 index into CLASSES
    centre: np.ndarray  # (N, 3)
    size: np.ndarray  # (N, 3) length, width, height
    yaw: np.ndarray  # (N,)
    velocity: np.ndarray  # (N, 2)
    colour: np.ndarray  # (N, 3) RGB albedo 0..255
    reflectivity: np.ndarray  # (N,) LiDAR reflectivity 0..1

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, mask: np.ndarray) -> ObjectBoxes:
        return ObjectBoxes(*(getattr(self, f)[mask] for f in self.__dataclass_fields__))

    @property
    def is_vehicle(self) -> np.ndarray:
        return self.classes < N_VEHICLE_CLASSES

    @property
    def class_names(self) -> list[str]:
        return [CLASSES[c] for c in self.classes]

    def corners(self) -> np.ndarray:
        """(N, 8, 3) corners; index bits: 1 -> +l/2 (x), 2 -> +w/2 (y), 4 -> +h/2 (z)."""
        signs = np.array(
            [[(i & 1) * 2 - 1, ((i >> 1) & 1) * 2 - 1, ((i >> 2) & 1) * 2 - 1] for i in range(8)], float
        )
        local = signs[None] * (self.size[:, None, :] / 2)
        c, s = np.cos(self.yaw)[:, None], np.sin(self.yaw)[:, None]
        x = c * local[..., 0] - s * local[..., 1]
        y = s * local[..., 0] + c * local[..., 1]
        return np.stack([x, y, local[..., 2]], axis=-1) + self.centre[:, None, :]

    def transformed(self, yaw: float, translation: np.ndarray) -> ObjectBoxes:
        """Boxes in a frame given as that frame's pose (yaw, translation) in the current frame."""
        c, s = np.cos(yaw), np.sin(yaw)
        R_T = np.array([[c, s], [-s, c]])
        centre = self.centre.copy()
        centre[:, :2] = (self.centre[:, :2] - np.asarray(translation)[:2]) @ R_T.T
        centre[:, 2] -= translation[2] if len(translation) > 2 else 0.0
        return replace(self, centre=centre, yaw=_wrap(self.yaw - yaw), velocity=self.velocity @ R_T.T)


def _wrap(angle: np.ndarray) -> np.ndarray:
    return (angle + np.pi) % (2 * np.pi) - np.pi


@dataclass(frozen=True)
class Lighting:
    """Per-scene illumination, varied so that camera training sets are not all one look."""

    sun_direction: np.ndarray = field(repr=False)  # unit vector towards the sun, world frame
    exposure: float
    sky_top: np.ndarray = field(repr=False)  # RGB 0..255
    sky_horizon: np.ndarray = field(repr=False)

    @classmethod
    def random(cls, rng: np.random.Generator) -> Lighting:
        az, el = rng.uniform(-np.pi, np.pi), np.radians(rng.uniform(20, 70))
        sun = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
        overcast = rng.random()
        top = (1 - overcast) * np.array([70, 120, 200]) + overcast * np.array([165, 170, 178])
        horizon = (1 - overcast) * np.array([190, 210, 235]) + overcast * np.array([205, 207, 210])
        return cls(sun, float(rng.uniform(0.85, 1.15)), top, horizon)


@dataclass
class World:
    """One scene: static layout, every object's state at t = 0 and the ego's straight motion.
    Times are seconds since the start of the drive."""

    seed: int
    config: WorldConfig
    objects: ObjectBoxes  # world frame at t = 0
    ego_start: np.ndarray  # (x, y) at t = 0
    ego_yaw: float
    ego_speed: float
    lighting: Lighting
    reflector_y: np.ndarray  # world y of long lateral reflectors (walls, guard rail): radar multipath

    @classmethod
    def generate(
        cls,
        seed: int,
        config: WorldConfig | None = None,
        duration_s: float = 20.0,
        ego_yaw: float = 0.0,
        ego_lateral_offset: float = 0.0,
        rng: np.random.Generator | None = None,
    ) -> World:
        """A deterministic scene from `seed`, populated for a drive of `duration_s` seconds."""
        config = config or WorldConfig()
        rng = rng if rng is not None else np.random.default_rng(np.random.SeedSequence([seed, 0]))
        ego_lane = int(rng.integers(0, config.lanes_per_direction))
        ego_speed = float(rng.uniform(*config.ego_speed))
        ego_start = np.array([0.0, config.lane_centre(ego_lane, +1) + ego_lateral_offset])
        travel = ego_speed * duration_s
        R = config.populate_range
        parts: list[dict[str, np.ndarray]] = []

        for direction in (+1, -1):
            for lane in range(config.lanes_per_direction):
                is_ego_lane = direction == 1 and lane == ego_lane
                speed = ego_speed if is_ego_lane else direction * rng.uniform(6.0, 15.0)
                # Cover [ego - R, ego + R] at every t in [0, duration] in this lane's moving frame.
                shift = (ego_speed - speed) * duration_s
                lo, hi = min(-R, shift - R), max(R, shift + R)
                veh = _vehicles_along(rng, config, lo, hi, config.vehicle_density)
                if is_ego_lane:  # same speed as the ego: keep the ego's own gap free forever
                    keep = np.abs(veh["x"] - 1.5) > veh["size"][:, 0] / 2 + 9.0
                    veh = {k: v[keep] for k, v in veh.items()}
                n = len(veh["x"])
                yaw = (0.0 if direction == 1 else np.pi) + rng.normal(0, 0.01, n)
                centre_y = config.lane_centre(lane, direction) + rng.normal(0, 0.15, n)
                parts.append(_assemble(veh, centre_y, yaw, np.stack([np.full(n, speed), np.zeros(n)], 1)))

        lo_static, hi_static = -R - 10, travel + R + 10
        if config.parking_width > 0:
            for side in (+1, -1):
                parts.append(_parked(rng, config, side, lo_static, hi_static))
        if config.walls:
            for side in (+1, -1):
                parts.append(_walls(rng, config, side, lo_static, hi_static))
        if config.poles:
            for side in (+1, -1):
                parts.append(_poles(rng, config, side, lo_static, hi_static))
        reflectors = [side * config.building_line for side in (+1, -1)] if config.walls else []
        if config.guard_rails and config.median_width > 0:
            parts.append(_guard_rail(config, lo_static, hi_static))
            reflectors.append(0.0)

        merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        n = len(merged["classes"])
        paint = _CAR_PAINT[rng.choice(len(_CAR_PAINT), n, p=_CAR_PAINT_P)] * rng.uniform(0.9, 1.05, (n, 1))
        colour = np.where((merged["classes"] < N_VEHICLE_CLASSES)[:, None], paint, merged["colour"])
        reflect = _REFLECTIVITY[merged["classes"]] * rng.uniform(0.7, 1.3, n)
        reflect += 0.25 * (colour.mean(1) > 180)  # bright paint returns more light
        objects = ObjectBoxes(
            np.arange(1, n + 1, dtype=np.int64),
            merged["classes"].astype(np.int64),
            merged["centre"],
            merged["size"],
            merged["yaw"],
            merged["velocity"],
            np.clip(colour, 0, 255),
            np.clip(reflect, 0.05, 1.0),
        )
        return cls(
            seed,
            config,
            objects,
            ego_start,
            float(ego_yaw),
            ego_speed,
            Lighting.random(rng),
            np.array(reflectors),
        )

    def ego_pose(self, t: float) -> tuple[np.ndarray, float]:
        """(x, y) of base_link in the world and its yaw at time t."""
        heading = np.array([np.cos(self.ego_yaw), np.sin(self.ego_yaw)])
        return self.ego_start + heading * self.ego_speed * t, self.ego_yaw

    def ego_velocity(self) -> np.ndarray:
        """Ego velocity over ground in base_link (it drives straight ahead)."""
        return np.array([self.ego_speed, 0.0])

    def T_world_base(self, t: float) -> np.ndarray:
        xy, yaw = self.ego_pose(t)
        T = np.eye(4)
        c, s = np.cos(yaw), np.sin(yaw)
        T[:2, :2] = [[c, -s], [s, c]]
        T[:2, 3] = xy
        return T

    def objects_at(self, t: float) -> ObjectBoxes:
        """Every object at time t, world frame."""
        centre = self.objects.centre.copy()
        centre[:, :2] += self.objects.velocity * t
        return replace(self.objects, centre=centre)

    def objects_in_base(self, t: float, radius: float | None = None) -> ObjectBoxes:
        """Every object at time t in base_link (ego pose at t), optionally within `radius` metres
        (box centre distance minus half its diagonal)."""
        xy, yaw = self.ego_pose(t)
        boxes = self.objects_at(t).transformed(yaw, np.array([xy[0], xy[1], 0.0]))
        if radius is not None:
            half_diag = np.hypot(boxes.size[:, 0], boxes.size[:, 1]) / 2
            boxes = boxes.subset(np.hypot(boxes.centre[:, 0], boxes.centre[:, 1]) - half_diag < radius)
        return boxes


def _vehicles_along(
    rng: np.random.Generator,
    config: WorldConfig,
    lo: float,
    hi: float,
    density: float,
    gap_scale: float = 1.0,
) -> dict[str, np.ndarray]:
    """Vehicles queued along a line from lo to hi with exponential gaps (`x` = centre)."""
    if density <= 0:
        return {"x": np.zeros(0), "size": np.zeros((0, 3)), "classes": np.zeros(0, np.int64)}
    n_max = int((hi - lo) / 4.0) + 2
    classes = rng.choice(
        3,
        n_max,
        p=[1 - config.van_fraction - config.truck_fraction, config.van_fraction, config.truck_fraction],
    )
    size = np.empty((n_max, 3))
    for c, name in enumerate(VEHICLE_CLASSES):
        m = classes == c
        for k, (a, b) in enumerate(_VEHICLE_SIZE[name]):
            size[m, k] = rng.uniform(a, b, m.sum())
    length = size[:, 0] * gap_scale
    mean_gap = max(100.0 / density - 5.0, 0.5)
    gaps = 1.5 + rng.exponential(mean_gap, n_max)
    start = lo + rng.uniform(0, mean_gap) + np.concatenate([[0.0], np.cumsum(length + gaps)[:-1]])
    keep = start + length < hi
    return {"x": (start + length / 2)[keep], "size": size[keep], "classes": classes[keep]}


def _assemble(
    veh: dict[str, np.ndarray],
    centre_y: np.ndarray,
    yaw: np.ndarray,
    velocity: np.ndarray,
    colour: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    n = len(veh["x"])
    centre = np.stack([veh["x"], np.broadcast_to(centre_y, (n,)), veh["size"][:, 2] / 2], 1)
    return {
        "classes": veh["classes"],
        "centre": centre,
        "size": veh["size"],
        "yaw": np.broadcast_to(yaw, (n,)).astype(float),
        "velocity": velocity.reshape(n, 2),
        "colour": np.zeros((n, 3)) if colour is None else colour,
    }


def _parked(rng: np.random.Generator, config: WorldConfig, side: int, lo: float, hi: float) -> dict:
    angled = config.parking_width >= 5.5
    # Angled bays: the along-road footprint is about the width, so queue on a shrunken length.
    veh = _vehicles_along(rng, config, lo, hi, config.parked_density, gap_scale=0.45 if angled else 1.0)
    n = len(veh["x"])
    if angled:
        veh["size"][:, 0] = np.minimum(
            veh["size"][:, 0], config.parking_width / 1.05
        )  # no trucks sticking out
        base = rng.choice([np.pi / 2, np.radians(60)], n) * rng.choice([-1, 1], n)
    else:
        base = rng.choice([0.0, np.pi], n)
    yaw = base + rng.normal(0, 0.03, n)
    centre_y = side * (config.road_edge + config.parking_width / 2) + rng.normal(0, 0.1, n)
    return _assemble(veh, centre_y, yaw, np.zeros((n, 2)))


def _segments(
    rng: np.random.Generator, lo: float, hi: float, length: tuple[float, float], gap: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    n_max = int((hi - lo) / (length[0] + gap[0])) + 2
    lengths = rng.uniform(*length, n_max)
    gaps = rng.uniform(*gap, n_max)
    start = lo + np.concatenate([[0.0], np.cumsum(lengths + gaps)[:-1]])
    keep = start < hi
    return (start + lengths / 2)[keep], lengths[keep]


def _static(
    cls_name: str, x: np.ndarray, y: np.ndarray | float, size: np.ndarray, colour: np.ndarray
) -> dict[str, np.ndarray]:
    n = len(x)
    veh = {"x": x, "size": size, "classes": np.full(n, CLASS_ID[cls_name])}
    return _assemble(veh, y, np.zeros(n), np.zeros((n, 2)), colour)


def _walls(rng: np.random.Generator, config: WorldConfig, side: int, lo: float, hi: float) -> dict:
    x, length = _segments(rng, lo, hi, (8.0, 35.0), (0.0, 15.0))
    n = len(x)
    depth = 8.0
    size = np.stack([length, np.full(n, depth), rng.uniform(4.0, 14.0, n)], 1)
    colour = _FACADE[rng.integers(0, len(_FACADE), n)] * rng.uniform(0.85, 1.1, (n, 1))
    return _static("wall", x, side * (config.building_line + depth / 2), size, colour)


def _poles(rng: np.random.Generator, config: WorldConfig, side: int, lo: float, hi: float) -> dict:
    x, _ = _segments(rng, lo, hi, (0.3, 0.3), (25.0, 40.0))
    n = len(x)
    size = np.stack([np.full(n, 0.3), np.full(n, 0.3), rng.uniform(5.0, 8.0, n)], 1)
    return _static("pole", x, side * (config.kerb + 0.5), size, np.tile([[120.0, 122.0, 125.0]], (n, 1)))


def _guard_rail(config: WorldConfig, lo: float, hi: float) -> dict:
    # Segmented so each box spans a bounded azimuth for the LiDAR's per-box ray culling.
    seg = 16.0
    x = np.arange(lo + seg / 2, hi, seg + 0.2)
    n = len(x)
    size = np.tile([[seg, 0.25, 0.8]], (n, 1))
    return _static("guard_rail", x, 0.0, size, np.tile([[165.0, 168.0, 172.0]], (n, 1)))
