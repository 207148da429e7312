"""Pinhole camera rendering of the synthetic world with numpy and OpenCV: a sky gradient, the
ground plane (road texture with lane markings, looked up per pixel with cv2.remap) and the boxes
as shaded quads, z-buffered per pixel (cv2.fillConvexPoly per face + an exact plane depth)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from ros2_lmd.sim.rig import SensorSpec
from ros2_lmd.sim.world import CLASS_ID, ObjectBoxes, World, WorldConfig

TEXEL = 0.05  # metres per ground-texture texel
TEXTURE_PERIOD = 24.0  # the road texture repeats along x (a multiple of the 12 m dash cycle)
DASH_CYCLE, DASH_LENGTH = 12.0, 3.0
FOG_DISTANCE = 220.0  # e-folding distance of the haze towards the horizon
NEAR = 0.1
_WINDOW_RGB = np.array([38.0, 46.0, 56.0])
_TYRE_RGB = np.array([28.0, 28.0, 30.0])
NOISE_SIGMA = 3.0


@dataclass(frozen=True)
class GroundTexture:
    """Road surface as an image over (world y rows, world x columns), periodic in x."""

    rgb: np.ndarray  # (rows, cols, 3) uint8
    reflectivity: np.ndarray  # (rows, cols) float32, LiDAR reflectivity 0..1
    y0: float  # world y of row 0's top edge

    def lookup_reflectivity(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        rows, cols = self.reflectivity.shape
        c = (np.floor(np.mod(x, TEXTURE_PERIOD) / TEXEL).astype(np.int64)) % cols
        r = np.clip(np.floor((y - self.y0) / TEXEL).astype(np.int64), 0, rows - 1)
        return self.reflectivity[r, c]


def ground_texture(config: WorldConfig) -> GroundTexture:
    return _ground_texture(
        config.lanes_per_direction,
        config.lane_width,
        config.median_width,
        config.parking_width,
        config.sidewalk_width,
    )


@lru_cache(maxsize=64)
def _ground_texture(
    lanes: int, lane_width: float, median: float, parking: float, sidewalk: float
) -> GroundTexture:
    road_edge = median / 2 + lanes * lane_width
    kerb, building = road_edge + parking, road_edge + parking + sidewalk
    half = building + 40.0
    y = -half + (np.arange(int(2 * half / TEXEL)) + 0.5) * TEXEL
    x = (np.arange(int(TEXTURE_PERIOD / TEXEL)) + 0.5) * TEXEL
    ay = np.abs(y)
    # Per-row surface (band), then markings that may depend on x (dashes).
    colour = np.empty((len(y), 3))
    refl = np.empty(len(y))
    bands = (
        (ay >= building, (85, 110, 60), 0.05),
        ((ay >= kerb) & (ay < building), (170, 168, 160), 0.2),
        ((ay >= road_edge) & (ay < kerb), (104, 104, 107), 0.09),
        (ay < road_edge, (92, 92, 95), 0.08),
    )
    for mask, rgb, r in bands:
        colour[mask], refl[mask] = rgb, r
    if median >= 2.0:
        colour[ay < median / 2], refl[ay < median / 2] = (85, 110, 60), 0.05
    solid = np.abs(ay - (road_edge - 0.1)) < 0.075
    if median >= 2.0:
        solid |= np.abs(ay - (median / 2 + 0.1)) < 0.075
    else:
        solid |= np.abs(ay - (median / 2 + 0.12)) < 0.06  # double centre line
    dashed = np.zeros_like(solid)
    for k in range(1, lanes):
        dashed |= np.abs(ay - (median / 2 + k * lane_width)) < 0.075
    dash_on = np.mod(x, DASH_CYCLE) < DASH_LENGTH
    marking = solid[:, None] | (dashed[:, None] & dash_on[None, :])
    rgb = np.broadcast_to(colour[:, None, :], (len(y), len(x), 3)).copy()
    rgb[marking] = (225, 225, 218)
    reflectivity = np.broadcast_to(refl[:, None], marking.shape).copy()
    reflectivity[marking] = 0.6
    # Fixed seed: the grain is part of the texture, not of any scene's random stream.
    grain = np.random.default_rng(12345).normal(0, 6.0, marking.shape)
    rgb = np.clip(rgb + cv2.GaussianBlur(grain, (3, 3), 0)[..., None], 0, 255)
    # Pre-blur so distant, minified texels alias less under bilinear lookup.
    rgb = cv2.GaussianBlur(rgb.astype(np.float32), (3, 3), 0)
    return GroundTexture(rgb.astype(np.uint8), reflectivity.astype(np.float32), float(-half))


@lru_cache(maxsize=4)
def _noise_bank(height: int, width: int) -> np.ndarray:
    """Sensor noise shared by all frames; each frame takes a random window (cheaper than drawing)."""
    noise = np.random.default_rng(424242).normal(0, NOISE_SIGMA, (2 * height, 2 * width, 3))
    return noise.astype(np.float32)


class CameraModel:
    """Per-camera pixel geometry that depends only on calibration: ray directions, where each pixel
    ray meets the ground (in base_link) and the haze along it."""

    def __init__(self, spec: SensorSpec) -> None:
        if spec.modality != "camera" or spec.K is None:
            raise ValueError(f"sensor {spec.name!r} is not a camera")
        self.spec = spec
        W, H = spec.width, spec.height
        K = spec.K
        self.fx, self.fy, self.cx, self.cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
        self.rx = ((np.arange(W) - self.cx) / self.fx).astype(np.float32)
        self.ry = ((np.arange(H) - self.cy) / self.fy).astype(np.float32)
        R, t = spec.T_base_sensor[:3, :3], spec.T_base_sensor[:3, 3]
        self.R, self.t = R, t
        d_cam = np.stack(np.broadcast_arrays(self.rx[None, :], self.ry[:, None], np.ones((1, 1))), -1)
        d = d_cam @ R.T
        dz = d[..., 2]
        self.ground = dz < -1e-6
        s = np.where(self.ground, -t[2] / np.where(self.ground, dz, -1.0), 0.0)
        self.ground_x = (t[0] + s * d[..., 0]).astype(np.float32)
        self.ground_y = (t[1] + s * d[..., 1]).astype(np.float32)
        dist = np.minimum(s * np.linalg.norm(d, axis=-1), 5000.0)
        self.haze = np.where(self.ground, 1.0 - np.exp(-dist / FOG_DISTANCE), 1.0)[..., None].astype(
            np.float32
        )
        self.elevation = np.arcsin(np.clip(dz / np.linalg.norm(d, axis=-1), -1, 1))
        g = W  # guard band (pixels) for clipping: keeps projected coordinates small for fillConvexPoly
        self.clip_planes = np.array(
            [
                [0.0, 0.0, 1.0, -NEAR],
                [self.fx, 0.0, self.cx + g, 0.0],
                [-self.fx, 0.0, W - 1 + g - self.cx, 0.0],
                [0.0, self.fy, self.cy + g, 0.0],
                [0.0, -self.fy, H - 1 + g - self.cy, 0.0],
            ]
        )
        self.view_planes = np.array(
            [
                [0.0, 0.0, 1.0, -NEAR],
                [self.fx, 0.0, self.cx + 1, 0.0],
                [-self.fx, 0.0, W - self.cx, 0.0],
                [0.0, self.fy, self.cy + 1, 0.0],
                [0.0, -self.fy, H - self.cy, 0.0],
            ]
        )


class CameraRenderer:
    """Renders one camera of one world; holds the lighting-dependent background terms."""

    def __init__(self, world: World, spec: SensorSpec, model: CameraModel | None = None) -> None:
        self.world, self.model = world, model or CameraModel(spec)
        self.texture = ground_texture(world.config)
        light = world.lighting
        m = self.model
        sky_w = np.clip(m.elevation / 0.6, 0, 1)[..., None] ** 0.6
        sky = (1 - sky_w) * light.sky_horizon + sky_w * light.sky_top
        ground_light = light.exposure * (0.6 + 0.4 * light.sun_direction[2])
        self.gain = np.where(m.ground[..., None], (1 - m.haze) * ground_light, 0.0).astype(np.float32)
        self.far = np.where(m.ground[..., None], m.haze * light.sky_horizon, sky).astype(np.float32)

    def render(self, t: float, rng: np.random.Generator) -> np.ndarray:
        """HxWx3 uint8 RGB image at time t (seconds since the drive's start)."""
        m, spec = self.model, self.model.spec
        H, W = spec.height, spec.width
        oy, ox = rng.integers(0, H), rng.integers(0, W)  # drawn first: independent of scene content
        xy, yaw = self.world.ego_pose(t)
        c, s = np.float32(np.cos(yaw)), np.float32(np.sin(yaw))
        wx = xy[0] + c * m.ground_x - s * m.ground_y
        wy = xy[1] + s * m.ground_x + c * m.ground_y
        tex = self.texture
        map_x = (np.mod(wx, TEXTURE_PERIOD) / TEXEL).astype(np.float32)
        map_y = np.clip((wy - tex.y0) / TEXEL, 0, tex.rgb.shape[0] - 1.01).astype(np.float32)
        ground = cv2.remap(tex.rgb, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
        img = ground.astype(np.float32) * self.gain + self.far
        self._draw_boxes(img, t)
        img += _noise_bank(H, W)[oy : oy + H, ox : ox + W]
        return np.clip(img, 0, 255).astype(np.uint8)

    def _draw_boxes(self, img: np.ndarray, t: float) -> None:
        m, spec = self.model, self.model.spec
        H, W = spec.height, spec.width
        boxes = self.world.objects_in_base(t, radius=spec.max_range)
        if len(boxes) == 0:
            return
        quads, normals, colours = box_quads(boxes, self.world, t)
        q_cam = (quads - m.t) @ m.R  # base -> optical frame, row vectors
        n_cam = (normals @ m.R).astype(np.float32)
        centre = q_cam.mean(1)
        front = np.einsum("qk,qk->q", n_cam, centre) < 0
        side_view = q_cam @ m.view_planes[:, :3].T + m.view_planes[:, 3]
        visible = front & ~(side_view < 0).all(1).any(-1)
        side_clip = q_cam @ m.clip_planes[:, :3].T + m.clip_planes[:, 3]
        needs_clip = (side_clip < 0).any((1, 2))
        dist = np.linalg.norm(centre, axis=1)
        haze = (1 - np.exp(-dist / FOG_DISTANCE))[:, None]
        shade = (colours * (1 - haze) + haze * self.world.lighting.sky_horizon).astype(np.float32)
        plane_d = np.einsum("qk,qk->q", n_cam, q_cam[:, 0]).astype(np.float32)
        # Project every unclipped quad at once; only the clipped few are projected in the loop.
        q_vis = np.flatnonzero(visible)
        with np.errstate(divide="ignore", invalid="ignore"):
            uv_all = q_cam[q_vis, :, :2] / q_cam[q_vis, :, 2:3] * (m.fx, m.fy) + (m.cx, m.cy)
        uv_all[needs_clip[q_vis]] = 0.0  # replaced below
        pts_all = np.round(uv_all).astype(np.int32)
        zbuf = np.full((H, W), np.inf, np.float32)
        for j, q in enumerate(q_vis):
            if needs_clip[q]:
                poly = _clip_polygon(q_cam[q], m.clip_planes)
                if len(poly) < 3:
                    continue
                pts = np.round(poly[:, :2] / poly[:, 2:3] * (m.fx, m.fy) + (m.cx, m.cy)).astype(np.int32)
            else:
                pts = pts_all[j]
            u0, v0 = pts.min(0)
            u1, v1 = pts.max(0) + 1
            u0, v0, u1, v1 = max(u0, 0), max(v0, 0), min(u1, W), min(v1, H)
            if u1 <= u0 or v1 <= v0:
                continue
            mask = np.zeros((v1 - v0, u1 - u0), np.uint8)
            cv2.fillConvexPoly(mask, pts - (u0, v0), 1)
            n = n_cam[q]
            denom = (n[1] * m.ry[v0:v1])[:, None] + (n[0] * m.rx[u0:u1] + n[2])[None, :]
            with np.errstate(divide="ignore", invalid="ignore"):
                depth = plane_d[q] / denom  # exact depth of the face plane along each pixel ray
            zroi = zbuf[v0:v1, u0:u1]
            upd = mask.view(bool)
            upd &= depth < zroi
            upd &= depth > 0
            np.copyto(zroi, depth, where=upd)
            np.copyto(img[v0:v1, u0:u1], shade[q], where=upd[..., None])


# Side faces as (bottom corner i, bottom corner j) going counter-clockwise seen from above
# (corner bits: 1 -> +x, 2 -> +y); the top corners are i + 4, j + 4.
_SIDE_EDGES = ((0, 1), (1, 3), (3, 2), (2, 0))


def box_quads(boxes: ObjectBoxes, world: World, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Visible-side geometry of boxes in base_link: quads (Q, 4, 3), outward normals (Q, 3) and
    shaded colours (Q, 3). Vehicle sides get three bands (tyres, body, windows; trucks have no
    window band) so they read as vehicles while the geometry stays exactly the box."""
    corners = boxes.corners()
    n = len(boxes)
    cls = boxes.classes
    vehicle = boxes.is_vehicle
    f1 = np.where(vehicle, 0.18, 0.0)
    f2 = np.where(vehicle & (cls != CLASS_ID["truck"]), 0.62, 1.0)
    bands = ((np.zeros(n), f1, "tyre"), (f1, f2, "body"), (f2, np.ones(n), "window"))
    _, yaw = world.ego_pose(t)
    c, s = np.cos(-yaw), np.sin(-yaw)
    sun = world.lighting.sun_direction
    sun_base = np.array([c * sun[0] - s * sun[1], s * sun[0] + c * sun[1], sun[2]])
    quads, normals, colours, keep = [], [], [], []
    for i, j in _SIDE_EDGES:
        b0, b1, t0, t1 = corners[:, i], corners[:, j], corners[:, i + 4], corners[:, j + 4]
        edge = b1[:, :2] - b0[:, :2]
        normal = np.stack([edge[:, 1], -edge[:, 0], np.zeros(n)], 1)
        normal /= np.linalg.norm(normal, axis=1, keepdims=True)
        for lo, hi, band in bands:
            lo_, hi_ = lo[:, None], hi[:, None]
            quads.append(
                np.stack(
                    [b0 + lo_ * (t0 - b0), b1 + lo_ * (t1 - b1), b1 + hi_ * (t1 - b1), b0 + hi_ * (t0 - b0)],
                    1,
                )
            )
            normals.append(normal)
            albedo = {
                "tyre": np.broadcast_to(_TYRE_RGB, (n, 3)),
                "body": boxes.colour,
                "window": 0.8 * _WINDOW_RGB + 0.2 * boxes.colour,
            }[band]
            colours.append(albedo)
            keep.append(hi > lo)
    top = corners[:, [4, 5, 7, 6]]
    quads.append(top)
    normals.append(np.tile([0.0, 0.0, 1.0], (n, 1)))
    colours.append(boxes.colour)
    keep.append(np.ones(n, bool))
    quads_a = np.stack(quads, 1).reshape(-1, 4, 3)
    normals_a = np.stack(normals, 1).reshape(-1, 3)
    colours_a = np.stack(colours, 1).reshape(-1, 3)
    keep_a = np.stack(keep, 1).reshape(-1)
    light = world.lighting.exposure * (0.45 + 0.55 * np.clip(normals_a @ sun_base, 0, None))
    return quads_a[keep_a], normals_a[keep_a], (colours_a * light[:, None])[keep_a]


def _clip_polygon(poly: np.ndarray, planes: np.ndarray) -> np.ndarray:
    """Sutherland-Hodgman clipping of a convex 3D polygon to the half-spaces a.X + d >= 0."""
    for plane in planes:
        if len(poly) == 0:
            break
        dist = poly @ plane[:3] + plane[3]
        if (dist >= 0).all():
            continue
        out = []
        for k in range(len(poly)):
            a, b = poly[k], poly[(k + 1) % len(poly)]
            da, db = dist[k], dist[(k + 1) % len(poly)]
            if da >= 0:
                out.append(a)
            if (da >= 0) != (db >= 0):
                out.append(a + (b - a) * (da / (da - db)))
        poly = np.array(out).reshape(-1, 3)
    return poly
