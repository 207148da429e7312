"""Camera-to-BEV lifting (Simple-BEV's parameter-free unprojection): every voxel centre of a BEV grid
is projected into every camera, the image feature map is sampled bilinearly there, and the samples
are averaged over the cameras that see the voxel.

Because the projection depends only on the calibration, the bilinear sampling is precomputed once
per calibration as a sparse (voxels x camera pixels) matrix and cached; lifting is then one sparse
matrix product. `lift_with_grid_sample` is the direct F.grid_sample formulation, kept as the oracle
the tests compare against."""

from __future__ import annotations

import hashlib
import threading
import warnings
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F

from ros2_lmd.geometry.grid import BEVGrid

# Pixel conventions. "centre": pixel i covers [i-0.5, i+0.5) and features at stride s sit at
# (i+0.5)*s-0.5 in the image (what cv2/F.interpolate resizing does). "simplebev": reproduces the
# official Simple-BEV code (intrinsics scaled without the half-pixel term, grid_sample coordinates
# normalised by W-1 but sampled with align_corners=False) so that its trained weights see the
# sampling they were trained with.
PIXEL_CONVENTIONS = ("centre", "simplebev")


def voxel_centres(grid: BEVGrid, z_descending: bool = False) -> np.ndarray:
    """Metric centres of all voxels, shaped (z_bins, ny, nx, 3) in base_link. `z_descending`
    orders height bins top first (Simple-BEV's "Y down" memory layout)."""
    xs = grid.x_min + (np.arange(grid.nx) + 0.5) * grid.resolution
    ys = grid.y_min + (np.arange(grid.ny) + 0.5) * grid.resolution
    zs = grid.z_min + (np.arange(grid.z_bins) + 0.5) * grid.z_resolution
    if z_descending:
        zs = zs[::-1]
    gz, gy, gx = np.meshgrid(zs, ys, xs, indexing="ij")
    return np.stack([gx, gy, gz], axis=-1)


def scale_intrinsics(K: np.ndarray, sx: float, sy: float, convention: str = "centre") -> np.ndarray:
    """Intrinsics of an image resized by (sx, sy) (new = old * s)."""
    K = np.array(K, dtype=np.float64, copy=True)
    K[..., 0, 0] *= sx
    K[..., 1, 1] *= sy
    if convention == "centre":
        K[..., 0, 2] = (K[..., 0, 2] + 0.5) * sx - 0.5
        K[..., 1, 2] = (K[..., 1, 2] + 0.5) * sy - 0.5
    elif convention == "simplebev":
        K[..., 0, 2] *= sx
        K[..., 1, 2] *= sy
    else:
        raise ValueError(f"unknown pixel convention {convention!r}; expected one of {PIXEL_CONVENTIONS}")
    return K


def project_voxels(
    grid: BEVGrid,
    K_feat: np.ndarray,
    T_base_cam: np.ndarray,
    feature_hw: tuple[int, int],
    z_descending: bool = False,
    convention: str = "centre",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Project every voxel centre into S cameras given intrinsics in feature-map pixels (S,3,3).
    Returns sample coordinates (u, v), each (S, N) in feature-pixel index space (pixel centres at
    integers), and the validity mask (S, N): in front of the camera and inside the image."""
    Hf, Wf = feature_hw
    centres = voxel_centres(grid, z_descending).reshape(-1, 3)
    K_feat = np.asarray(K_feat, np.float64).reshape(-1, 3, 3)
    T_cam_base = np.linalg.inv(np.asarray(T_base_cam, np.float64).reshape(-1, 4, 4))
    cam = np.einsum("sij,nj->sni", T_cam_base[:, :3, :3], centres) + T_cam_base[:, None, :3, 3]
    pix = np.einsum("sij,snj->sni", K_feat, cam)
    depth = cam[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        # Behind-camera points are masked below; the clamp only keeps the division finite.
        x = pix[..., 0] / np.maximum(pix[..., 2], 1e-6)
        y = pix[..., 1] / np.maximum(pix[..., 2], 1e-6)
    valid = (depth > 0) & (x > -0.5) & (x < Wf - 0.5) & (y > -0.5) & (y < Hf - 0.5)
    if convention == "simplebev":
        x = x * Wf / max(Wf - 1, 1) - 0.5
        y = y * Hf / max(Hf - 1, 1) - 0.5
    return x, y, valid


def sampling_matrix(
    grid: BEVGrid,
    K_feat: np.ndarray,
    T_base_cam: np.ndarray,
    feature_hw: tuple[int, int],
    camera_valid: np.ndarray | None = None,
    z_descending: bool = False,
    convention: str = "centre",
) -> torch.Tensor:
    """The lifting as a sparse CSR matrix (N voxels x S*Hf*Wf feature pixels): bilinear weights
    (zero padding outside the map) divided by the number of cameras that see each voxel."""
    Hf, Wf = feature_hw
    x, y, valid = project_voxels(grid, K_feat, T_base_cam, feature_hw, z_descending, convention)
    S, N = valid.shape
    if camera_valid is not None:
        valid &= np.asarray(camera_valid, bool).reshape(S, 1)
    count = valid.sum(axis=0)
    cam_idx, vox_idx = np.nonzero(valid)
    u, v = x[cam_idx, vox_idx], y[cam_idx, vox_idx]
    u0, v0 = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
    du, dv = u - u0, v - v0
    rows, cols, weights = [], [], []
    for oy, ox, w in (
        (0, 0, (1 - du) * (1 - dv)),
        (0, 1, du * (1 - dv)),
        (1, 0, (1 - du) * dv),
        (1, 1, du * dv),
    ):
        uu, vv = u0 + ox, v0 + oy
        keep = (uu >= 0) & (uu < Wf) & (vv >= 0) & (vv < Hf) & (w > 0)
        rows.append(vox_idx[keep])
        cols.append((cam_idx[keep] * Hf + vv[keep]) * Wf + uu[keep])
        weights.append(w[keep] / count[vox_idx[keep]])
    index = torch.from_numpy(np.stack([np.concatenate(rows), np.concatenate(cols)]))
    values = torch.from_numpy(np.concatenate(weights).astype(np.float32))
    coo = torch.sparse_coo_tensor(index, values, (N, S * Hf * Wf), check_invariants=False).coalesce()
    with warnings.catch_warnings():
        # CSR is flagged "beta" by torch; it is the fast CPU/GPU layout for sparse @ dense.
        warnings.simplefilter("ignore", UserWarning)
        return coo.to_sparse_csr()


class CameraLifter:
    """Lifts per-camera feature maps into a (B, C, z_bins, ny, nx) voxel volume on `grid`.
    Sampling matrices are cached per (calibration, image size, feature size, device): a vehicle's
    calibration rarely changes, so after the first frame lifting is a single sparse product."""

    def __init__(
        self, grid: BEVGrid, z_descending: bool = False, convention: str = "centre", cache_size: int = 8
    ) -> None:
        if convention not in PIXEL_CONVENTIONS:
            raise ValueError(f"unknown pixel convention {convention!r}; expected one of {PIXEL_CONVENTIONS}")
        self.grid = grid
        self.z_descending = z_descending
        self.convention = convention
        self.cache_size = cache_size
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._cache_lock = threading.Lock()  # the node may lift frames in several threads

    def _matrix(
        self,
        K_image: np.ndarray,
        T_base_cam: np.ndarray,
        camera_valid: np.ndarray,
        image_hw: tuple[int, int],
        feature_hw: tuple[int, int],
        device: torch.device,
    ) -> torch.Tensor:
        K_image = np.ascontiguousarray(K_image, np.float64)
        T_base_cam = np.ascontiguousarray(T_base_cam, np.float64)
        camera_valid = np.ascontiguousarray(camera_valid, bool)
        digest = hashlib.sha1()
        for part in (K_image, T_base_cam, camera_valid, np.array(image_hw + feature_hw)):
            digest.update(part.tobytes())
        key = f"{digest.hexdigest()}:{device}"
        with self._cache_lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        sx, sy = feature_hw[1] / image_hw[1], feature_hw[0] / image_hw[0]
        K_feat = scale_intrinsics(K_image, sx, sy, self.convention)
        matrix = sampling_matrix(
            self.grid, K_feat, T_base_cam, feature_hw, camera_valid, self.z_descending, self.convention
        ).to(device)
        with self._cache_lock:
            self._cache[key] = matrix
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return matrix

    def __call__(
        self,
        features: torch.Tensor,
        K_image: torch.Tensor,
        T_base_cam: torch.Tensor,
        image_hw: tuple[int, int],
        camera_valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """features (B, S, C, Hf, Wf); K_image (B, S, 3, 3) for images of size `image_hw`;
        T_base_cam (B, S, 4, 4); camera_valid (B, S) or None. Returns (B, C, z_bins, ny, nx)."""
        B, S, C, Hf, Wf = features.shape
        K_np = K_image.detach().cpu().double().numpy()
        T_np = T_base_cam.detach().cpu().double().numpy()
        valid_np = (
            np.ones((B, S), bool) if camera_valid is None else camera_valid.detach().cpu().numpy() > 0.5
        )
        g = self.grid
        out = []
        size = (int(image_hw[0]), int(image_hw[1]))  # a hashable cache key, whatever sequence came in
        for b in range(B):
            matrix = self._matrix(K_np[b], T_np[b], valid_np[b], size, (Hf, Wf), features.device)
            pixels = features[b].permute(0, 2, 3, 1).reshape(S * Hf * Wf, C)
            lifted = torch.sparse.mm(matrix, pixels)  # (N, C)
            out.append(lifted.t().reshape(C, g.z_bins, g.ny, g.nx))
        return torch.stack(out)


def lift_with_grid_sample(
    grid: BEVGrid,
    features: torch.Tensor,
    K_feat: np.ndarray,
    T_base_cam: np.ndarray,
    z_descending: bool = False,
    convention: str = "centre",
) -> torch.Tensor:
    """Reference lifting for one sample with F.grid_sample: features (S, C, Hf, Wf), intrinsics
    already in feature pixels (S, 3, 3). Returns (C, z_bins, ny, nx). Slow; for tests."""
    S, C, Hf, Wf = features.shape
    x, y, valid = project_voxels(grid, K_feat, T_base_cam, (Hf, Wf), z_descending, convention)
    # Index space -> grid_sample's align_corners=True normalisation (pixel centres at +-1).
    gx = torch.from_numpy(2.0 * x / max(Wf - 1, 1) - 1.0).float()
    gy = torch.from_numpy(2.0 * y / max(Hf - 1, 1) - 1.0).float()
    coords = torch.stack([gx, gy], dim=-1).reshape(S, 1, -1, 2)
    sampled = F.grid_sample(features, coords, mode="bilinear", padding_mode="zeros", align_corners=True)[
        :, :, 0
    ]  # (S, C, N)
    mask = torch.from_numpy(valid).float()[:, None]
    total = (sampled * mask).sum(0)
    count = mask.sum(0).clamp(min=1.0)
    return (total / count).reshape(C, grid.z_bins, grid.ny, grid.nx)
