"""Camera corruptions: pure functions (RGB image, severity parameter, seeded Generator) -> RGB image,
the same on a bag's messages (`replay.corrupt`) and on a model's inputs. Severity parameters live in
`registry`; sizes in pixels are given at nuScenes' 1600 px width and scaled to the image
(`_px`), so a severity means the same on a 448 px simulated camera and a 1600 px real one.

The formulas follow the ImageNet-C implementations that Dong et al., "Benchmarking Robustness of
3D Object Detection to Common Corruptions in Autonomous Driving" (CVPR 2023) and RoboBEV/nuScenes-C
apply to nuScenes cameras, rewritten with OpenCV/numpy (no imagecorruptions download)."""

from __future__ import annotations

import cv2
import numpy as np

REFERENCE_WIDTH = 1600  # nuScenes camera width: pixel sizes in `registry` are given at this width


def _px(size: float, image: np.ndarray) -> float:
    """`size` pixels at REFERENCE_WIDTH, at this image's width."""
    return size * image.shape[1] / REFERENCE_WIDTH


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def brightness(rgb: np.ndarray, shift: float, rng: np.random.Generator) -> np.ndarray:
    """HSV value raised by `shift` (fraction of full scale), as ImageNet-C's brightness."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 2] = np.clip(hsv[..., 2] + 255.0 * shift, 0, 255)
    return cv2.cvtColor(_to_uint8(hsv), cv2.COLOR_HSV2RGB)


def low_light(rgb: np.ndarray, gain: float, rng: np.random.Generator) -> np.ndarray:
    """Light scaled by `gain`, then the sensor's shot and read noise at that light (RoboBEV's low light)."""
    dark = rgb.astype(np.float32) * gain
    shot = rng.poisson(np.maximum(dark, 0) * 4.0) / 4.0  # 4 electrons per grey level
    return _to_uint8(shot + rng.normal(0.0, 2.0, rgb.shape))


def fog(rgb: np.ndarray, density: float, rng: np.random.Generator) -> np.ndarray:
    """Grey airlight blended in with a smooth random thickness, thickest towards the horizon row."""
    h, w = rgb.shape[:2]
    coarse = rng.uniform(0.6, 1.0, (4, 8)).astype(np.float32)
    texture = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    rows = np.linspace(1.0, 0.6, h, dtype=np.float32)[:, None]  # farther (upper) rows: more fog
    alpha = np.clip(density * texture * rows / 0.8, 0, 1)[..., None]
    return _to_uint8(rgb.astype(np.float32) * (1 - alpha) + 200.0 * alpha)


def _streaks(
    shape: tuple[int, int], count: int, length: float, angle_deg: float, rng: np.random.Generator
) -> np.ndarray:
    """A float mask of `count` straight streaks of `length` px at `angle_deg`, anti-aliased."""
    h, w = shape
    mask = np.zeros((h, w), np.float32)
    dx, dy = length * np.sin(np.radians(angle_deg)), length * np.cos(np.radians(angle_deg))
    for x, y in zip(rng.uniform(0, w, count), rng.uniform(0, h, count)):
        cv2.line(mask, (int(x), int(y)), (int(x + dx), int(y + dy)), 1.0, 1, cv2.LINE_AA)
    return mask


def snow(rgb: np.ndarray, density: float, rng: np.random.Generator) -> np.ndarray:
    """Flakes (`density` per pixel, blurred by their fall) over a whitened, dimmed scene."""
    h, w = rgb.shape[:2]
    flakes = (rng.random((h, w)) < density).astype(np.float32)
    size = max(1, round(_px(4, rgb)))
    flakes = cv2.dilate(flakes, np.ones((size, size), np.uint8))
    length = max(3, int(_px(12, rgb)) | 1)
    kernel = np.zeros((length, length), np.float32)
    kernel[:, length // 2] = 1.0 / length
    flakes = np.clip(cv2.filter2D(flakes, -1, kernel) * 2.0, 0, 1)[..., None]
    base = rgb.astype(np.float32) * 0.75 + 40.0  # overcast: washed out
    return _to_uint8(base * (1 - flakes) + 255.0 * flakes)


def rain(rgb: np.ndarray, density: float, rng: np.random.Generator) -> np.ndarray:
    """Slanted rain streaks (`density` per 1000 pixels), a little blur and dimming."""
    h, w = rgb.shape[:2]
    count = int(density * h * w / 1000)
    streaks = _streaks((h, w), count, _px(40, rgb), float(rng.uniform(-20, 20)), rng)
    streaks = cv2.GaussianBlur(streaks, (3, 3), 0)[..., None]
    blurred = cv2.GaussianBlur(rgb, (3, 3), 0).astype(np.float32) * 0.85
    return _to_uint8(blurred * (1 - 0.6 * streaks) + 220.0 * 0.6 * streaks)


def motion_blur(rgb: np.ndarray, length: float, rng: np.random.Generator) -> np.ndarray:
    """A straight motion kernel of `length` px (at 1600 px width) in a random direction."""
    size = max(3, int(round(_px(length, rgb))) | 1)
    kernel = np.zeros((size, size), np.float32)
    angle = rng.uniform(0, np.pi)
    c = size // 2
    dx, dy = c * np.cos(angle), c * np.sin(angle)
    cv2.line(
        kernel, (int(round(c - dx)), int(round(c - dy))), (int(round(c + dx)), int(round(c + dy))), 1.0, 1
    )
    return cv2.filter2D(rgb, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT)


def defocus(rgb: np.ndarray, radius: float, rng: np.random.Generator) -> np.ndarray:
    """A disk kernel of `radius` px (at 1600 px width), anti-aliased, as ImageNet-C's defocus."""
    r = _px(radius, rgb)
    half = int(np.ceil(r)) + 1
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float32)
    kernel = np.clip(r + 1.0 - np.hypot(xx, yy), 0, 1)  # soft edge: the blur grows with r continuously
    return cv2.filter2D(rgb, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT)


def gaussian_noise(rgb: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """Additive Gaussian noise of `std` (fraction of full scale)."""
    return _to_uint8(rgb.astype(np.float32) + rng.normal(0.0, 255.0 * std, rgb.shape))


def shot_noise(rgb: np.ndarray, photons: float, rng: np.random.Generator) -> np.ndarray:
    """Poisson noise with `photons` at full scale (fewer photons: more noise)."""
    return _to_uint8(rng.poisson(rgb.astype(np.float64) / 255.0 * photons) / photons * 255.0)


def impulse_noise(rgb: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """Salt and pepper: a fraction `amount` of the pixel values set to 0 or 255."""
    out = rgb.copy()
    hit = rng.random(rgb.shape) < amount
    out[hit] = np.where(rng.random(int(hit.sum())) < 0.5, 0, 255).astype(np.uint8)
    return out


def jpeg(rgb: np.ndarray, quality: float, rng: np.random.Generator) -> np.ndarray:
    """Encoded and decoded as JPEG at `quality`."""
    _, encoded = cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED).reshape(rgb.shape)


def pixelate(rgb: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Down-sampled by `scale` (at 1600 px width; box filter) and back up with nearest neighbours."""
    h, w = rgb.shape[:2]
    factor = scale * w / REFERENCE_WIDTH if w < REFERENCE_WIDTH else scale
    small = cv2.resize(rgb, (max(1, int(w * factor)), max(1, int(h * factor))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def color_quant(rgb: np.ndarray, bits: float, rng: np.random.Generator) -> np.ndarray:
    """Each channel quantised to `bits` bits (RoboBEV's colour quantisation)."""
    step = 256 // (2 ** int(bits))
    return (rgb // step * step + step // 2).astype(np.uint8)


def _blob_mask(shape: tuple[int, int], area: float, rng: np.random.Generator, blur: float) -> np.ndarray:
    """A float mask of irregular blobs covering about `area` of the image, edges blurred."""
    h, w = shape
    mask = np.zeros((h, w), np.float32)
    target = area * h * w
    centre = np.array([rng.uniform(0.2, 0.8) * w, rng.uniform(0.3, 0.8) * h])
    while mask.sum() < target:
        radius = np.sqrt(target / np.pi) * rng.uniform(0.3, 0.6)
        offset = rng.normal(0, np.sqrt(target / np.pi) * 0.5, 2)
        x, y = (centre + offset).astype(int)
        axes = (int(radius * rng.uniform(0.7, 1.4)), int(radius * rng.uniform(0.7, 1.4)))
        cv2.ellipse(mask, (int(x), int(y)), axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
    k = max(3, int(blur * w) | 1)
    return np.clip(cv2.GaussianBlur(mask, (k, k), 0), 0, 1)


def soiling_opaque(rgb: np.ndarray, area: float, rng: np.random.Generator) -> np.ndarray:
    """Opaque dark dirt covering about `area` of the lens (blobs, soft edges)."""
    alpha = _blob_mask(rgb.shape[:2], area, rng, 0.01)[..., None]
    return _to_uint8(rgb.astype(np.float32) * (1 - alpha) + 30.0 * alpha)


def soiling_transparent(rgb: np.ndarray, area: float, rng: np.random.Generator) -> np.ndarray:
    """Semi-transparent film (water spots, dust) over about `area`: blurred and hazed behind it."""
    alpha = _blob_mask(rgb.shape[:2], area, rng, 0.05)[..., None] * 0.7
    k = max(3, int(0.03 * rgb.shape[1]) | 1)
    behind = cv2.GaussianBlur(rgb, (k, k), 0).astype(np.float32) * 0.8 + 40.0
    return _to_uint8(rgb.astype(np.float32) * (1 - alpha) + behind * alpha)


def soiling_mud(rgb: np.ndarray, area: float, rng: np.random.Generator) -> np.ndarray:
    """Textured mud smear over about `area`: brown, with grain, mostly opaque: no image, yet not flat."""
    h, w = rgb.shape[:2]
    alpha = _blob_mask((h, w), area, rng, 0.02)[..., None] * 0.92
    grain = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), max(1.0, 0.004 * w))
    grain = grain / (grain.std() + 1e-6)
    mud = np.stack([90 + 25 * grain, 65 + 20 * grain, 40 + 15 * grain], axis=-1)
    return _to_uint8(rgb.astype(np.float32) * (1 - alpha) + mud * alpha)


def occlusion(rgb: np.ndarray, area: float, rng: np.random.Generator) -> np.ndarray:
    """A hard-edged object (a leaf, a sticker, a wiper at rest) covering `area` of the image."""
    h, w = rgb.shape[:2]
    side_w, side_h = int(np.sqrt(area) * w), int(np.sqrt(area) * h)
    x = int(rng.uniform(0, max(1, w - side_w)))
    y = int(rng.uniform(0, max(1, h - side_h)))
    out = rgb.copy()
    out[y : y + side_h, x : x + side_w] = rng.integers(20, 60, 3, dtype=np.uint8)
    return out


def crash(rgb: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """A black image (RoboBEV's camera crash): every pixel 0."""
    return np.zeros_like(rgb)
