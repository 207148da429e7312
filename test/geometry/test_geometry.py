"""Voxelisation and camera lifting against explicit constructions and the grid_sample oracle."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ros2_lmd.geometry import (
    BEVGrid,
    CameraLifter,
    lift_with_grid_sample,
    occupancy,
    scale_intrinsics,
    voxel_centres,
    voxel_indices,
    voxelize_lidar,
    voxelize_radar,
)

# Camera optical frame (z forward, x right, y down) expressed in base_link (x forward, y left, z up).
R_BASE_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def camera_pose(yaw_deg: float, position=(1.0, 0.0, 1.5)) -> np.ndarray:
    yaw = np.deg2rad(yaw_deg)
    Rz = np.array([[np.cos(yaw), -np.sin(yaw), 0.0], [np.sin(yaw), np.cos(yaw), 0.0], [0.0, 0.0, 1.0]])
    T = np.eye(4)
    T[:3, :3] = Rz @ R_BASE_OPTICAL
    T[:3, 3] = position
    return T


def ring_rig(H: int, W: int, yaws=(55, 0, -55, 110, 180, -110), fov_deg: float = 70.0):
    f = W / 2 / np.tan(np.deg2rad(fov_deg / 2))
    K = np.array([[f, 0, W / 2 - 0.5], [0, f * 1.02, H / 2 - 0.5], [0, 0, 1]])
    return np.stack([K] * len(yaws)), np.stack([camera_pose(y) for y in yaws])


GRID = BEVGrid()  # the default 200 x 200 x 8 grid


def test_point_lands_in_its_cell():
    point = np.array([[10.2, -3.7, 0.3]])
    iz, iy, ix, inside = voxel_indices(GRID, point)
    assert inside.all() and (iz[0], iy[0], ix[0]) == (4, 92, 120)
    occ = occupancy(GRID, point)
    assert occ.shape == (8, 200, 200) and occ.sum() == 1 and occ[4, 92, 120] == 1
    flat = occupancy(GRID, point, per_z=False)
    assert flat.shape == (1, 200, 200) and flat[0, 92, 120] == 1


def test_points_outside_the_grid_are_dropped():
    points = np.array(
        [[60.0, 0, 0], [0, -50.01, 0], [0, 0, 5.0], [0, 0, -5.2], [np.nan, 0, 0], [49.99, 49.99, 4.99]]
    )
    occ = occupancy(GRID, points)
    assert occ.sum() == 1 and occ[7, 199, 199] == 1


def test_lidar_occupancy_and_mean_intensity():
    points = np.array([[0.1, 0.1, 0.0, 10.0], [0.2, 0.3, 0.1, 30.0], [5.0, 5.0, -3.0, 100.0]], np.float32)
    out = voxelize_lidar(GRID, points, intensity_scale=0.5)
    assert out.shape == (9, 200, 200)
    assert out[4, 100, 100] == 1 and out[1, 110, 110] == 1 and out[:8].sum() == 2
    assert out[8, 100, 100] == pytest.approx(10.0) and out[8, 110, 110] == pytest.approx(50.0)
    assert voxelize_lidar(GRID, points, with_intensity=False).shape == (8, 200, 200)


def test_radar_modes():
    # x, y, z, rcs, vx_comp, vy_comp; first two share a cell.
    radar = np.array(
        [
            [20.1, -0.2, 0.5, 4.0, 1.0, -2.0],
            [20.3, -0.4, 0.6, 8.0, 3.0, 0.0],
            [-30.0, 10.0, -4.9, 1.0, 0.5, 0.5],
        ],
        np.float32,
    )
    occ = voxelize_radar(GRID, radar, "occupancy")
    assert occ.shape == (1, 200, 200) and occ.sum() == 2 and occ[0, 99, 140] == 1
    feats = voxelize_radar(GRID, radar, "features")
    assert feats.shape == (4, 200, 200)
    np.testing.assert_allclose(feats[:, 99, 140], [1.0, 6.0, 2.0, -1.0])
    np.testing.assert_allclose(feats[:, 120, 40], [1.0, 1.0, 0.5, 0.5])
    meta = voxelize_radar(GRID, radar, "meta")
    assert meta.shape == (16, 8, 200, 200)
    np.testing.assert_allclose(meta[[2, 5, 6], 4, 99, 140], [6.0, 2.0, -1.0])
    assert np.count_nonzero(meta[[0, 1, 3, 4, 7, 8, 9, 10, 11, 12, 13, 14, 15]]) == 0
    with pytest.raises(ValueError, match="unknown mode"):
        voxelize_radar(GRID, radar, "dense")


def test_empty_points_give_zeros():
    assert not voxelize_lidar(GRID, np.zeros((0, 4))).any()
    assert not voxelize_radar(GRID, np.zeros((0, 6)), "meta").any()


def test_voxel_centres_order():
    small = BEVGrid(-2, 2, -1, 1, resolution=1.0, z_min=0, z_max=4, z_bins=2)
    centres = voxel_centres(small)
    assert centres.shape == (2, 2, 4, 3)
    np.testing.assert_allclose(centres[1, 0, 3], [1.5, -0.5, 3.0])
    np.testing.assert_allclose(voxel_centres(small, z_descending=True)[0, 0, 3], [1.5, -0.5, 3.0])


def test_scale_intrinsics_pixel_centres():
    K = np.array([[100.0, 0, 49.5], [0, 100.0, 29.5], [0, 0, 1]])  # principal point mid-image
    half = scale_intrinsics(K, 0.5, 0.5)
    # Image centre stays the image centre: (W/2 - 0.5) at every size.
    assert half[0, 2] == pytest.approx(24.5) and half[1, 2] == pytest.approx(14.5)
    assert half[0, 0] == pytest.approx(50.0)
    official = scale_intrinsics(K, 0.5, 0.5, "simplebev")
    assert official[0, 2] == pytest.approx(24.75)


def test_feature_at_projected_pixel_lands_in_the_points_voxel():
    small = BEVGrid(-10, 10, -10, 10, resolution=1.0, z_min=-2, z_max=4, z_bins=3)
    T = camera_pose(0.0, position=(0.0, 0.0, 1.0))
    point = np.array([6.5, 2.5, 1.0])  # the centre of voxel (iz=1, iy=12, ix=16)
    p_cam = np.linalg.inv(T) @ np.append(point, 1.0)
    Hf, Wf, f, (u0, v0) = 12, 20, 8.0, (5, 6)
    K_feat = np.array([[f, 0, u0 - f * p_cam[0] / p_cam[2]], [0, f, v0 - f * p_cam[1] / p_cam[2]], [0, 0, 1]])
    features = torch.zeros(1, 1, 2, Hf, Wf)
    features[0, 0, 0, v0, u0] = 1.0
    features[0, 0, 1] = 3.0  # a constant channel: every visible voxel gets 3
    lifter = CameraLifter(small)
    # Feature map == image here (stride 1), so the image-size intrinsics are the feature ones.
    volume = lifter(features, torch.tensor(K_feat)[None, None], torch.tensor(T)[None, None], (Hf, Wf))[0]
    assert volume.shape == (2, 3, 20, 20)
    assert volume[0, 1, 12, 16] == pytest.approx(1.0, abs=1e-5)
    iz, iy, ix = np.unravel_index(int(volume[0].argmax()), (3, 20, 20))
    assert volume[0].max() == pytest.approx(1.0, abs=1e-5)
    # Voxels behind the camera see nothing: zero, not the constant channel.
    assert volume[1, :, :, :9].abs().max() == 0 and volume[1, 1, 12, 16] == pytest.approx(3.0)


def test_average_over_cameras_that_see_a_voxel():
    small = BEVGrid(-10, 10, -10, 10, resolution=1.0, z_min=0, z_max=2, z_bins=1)
    K, T = ring_rig(16, 24, yaws=(0, 0), fov_deg=90)
    features = torch.ones(1, 2, 1, 16, 24)
    features[0, 1] *= 3.0
    volume = CameraLifter(small)(features, torch.tensor(K)[None], torch.tensor(T)[None], (16, 24))[0, 0, 0]
    seen = volume[volume > 0]
    assert seen.numel() > 20 and torch.allclose(seen, torch.full_like(seen, 2.0), atol=1e-5)
    # With the second camera marked invalid only the first one counts.
    one = CameraLifter(small)(
        features,
        torch.tensor(K)[None],
        torch.tensor(T)[None],
        (16, 24),
        camera_valid=torch.tensor([[1.0, 0.0]]),
    )[0, 0, 0]
    assert torch.allclose(one[one > 0], torch.ones(1), atol=1e-5)


@pytest.mark.parametrize("convention, z_descending", [("centre", False), ("simplebev", True)])
def test_sparse_lifting_equals_grid_sample(convention, z_descending):
    grid = BEVGrid(-20, 20, -20, 20, resolution=1.0, z_min=-2, z_max=4, z_bins=3)
    H, W, Hf, Wf = 48, 80, 12, 20
    K, T = ring_rig(H, W)
    torch.manual_seed(0)
    features = torch.randn(1, 6, 5, Hf, Wf)
    lifter = CameraLifter(grid, z_descending=z_descending, convention=convention)
    fast = lifter(features, torch.tensor(K)[None], torch.tensor(T)[None], (H, W))[0]
    K_feat = scale_intrinsics(K, Wf / W, Hf / H, convention)
    reference = lift_with_grid_sample(grid, features[0], K_feat, T, z_descending, convention)
    assert fast.shape == reference.shape == (5, 3, 40, 40)
    assert (reference != 0).float().mean() > 0.5  # most voxels are seen: a real comparison
    torch.testing.assert_close(fast, reference, atol=1e-5, rtol=1e-5)


def test_sampling_matrices_are_cached_per_calibration():
    grid = BEVGrid(-10, 10, -10, 10, resolution=1.0, z_bins=2)
    K, T = ring_rig(32, 48)
    lifter = CameraLifter(grid, cache_size=2)
    feats = torch.randn(1, 6, 3, 4, 6)
    a = lifter(feats, torch.tensor(K)[None], torch.tensor(T)[None], (32, 48))
    b = lifter(feats, torch.tensor(K)[None], torch.tensor(T)[None], (32, 48))
    assert len(lifter._cache) == 1 and torch.equal(a, b)
    T2 = T.copy()
    T2[:, 0, 3] += 0.5
    lifter(feats, torch.tensor(K)[None], torch.tensor(T2)[None], (32, 48))
    assert len(lifter._cache) == 2
    # A batch of two calibrations lifts each sample with its own matrix.
    both = lifter(
        feats.expand(2, -1, -1, -1, -1),
        torch.tensor(np.stack([K, K])),
        torch.tensor(np.stack([T, T2])),
        (32, 48),
    )
    torch.testing.assert_close(both[0], a[0])
    assert not torch.allclose(both[1], a[0])


def test_lifting_is_differentiable():
    grid = BEVGrid(-10, 10, -10, 10, resolution=1.0, z_bins=2)
    K, T = ring_rig(32, 48)
    feats = torch.randn(1, 6, 3, 4, 6, requires_grad=True)
    CameraLifter(grid)(feats, torch.tensor(K)[None], torch.tensor(T)[None], (32, 48)).sum().backward()
    assert feats.grad is not None and feats.grad.abs().sum() > 0
