"""Tiny untrained models and scenes for fast tests (no ROS needed): a model on a small grid with a
16x32 camera input and a few channels (`build_tiny_model`, saved by `tiny_model`), and the few
simulated scenes the training and evaluation tests share (`tiny`, `scenes`)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from ros2_lmd.geometry.grid import BEVGrid

TINY_GRID = BEVGrid(-8.0, 8.0, -8.0, 6.0, 0.5)  # 32 x 28 cells: nx != ny catches a swapped axis
TINY_LAYERS = dict(
    image_size=(16, 32),
    camera_widths=[4, 4, 4],
    camera_channels=2,
    fusion_channels=4,
    decoder_channels=[4, 4],
    head_channels=4,
    lift_z_bins=2,
)


def build_tiny_model(name: str = "compact_crl") -> Any:
    """A small untrained model: tiny grid, 16x32 camera input, a few channels."""
    from ros2_lmd.models import build_model

    return build_model(name, grid=TINY_GRID, **TINY_LAYERS)


def tiny_model(directory: Path, name: str = "compact_crl") -> str:
    """Save build_tiny_model(name) and return its path."""
    from ros2_lmd.models import save_model

    model = build_tiny_model(name)
    path = Path(directory) / name
    save_model(model, path)
    return str(path)


# --- Training and evaluation: a coarser grid and four simulated scenes ------------------------------

SCENE_GRID = BEVGrid(-16.0, 16.0, -12.0, 12.0, 1.0)  # 32 x 24 cells: nx != ny catches a swapped axis
TINY = dict(grid=SCENE_GRID, **TINY_LAYERS)


def tiny(name: str = "compact_cr") -> Any:
    """A tiny untrained model on SCENE_GRID."""
    from ros2_lmd.models import build_model

    return build_model(name, **TINY)


@functools.cache
def scene(seed: int) -> tuple[Any, Any]:
    """(SensorFrame, ground-truth occupancy) of the simulated scene `seed` on SCENE_GRID (cached:
    callers clear it with `scene.cache_clear()` when their module ends)."""
    from ros2_lmd.sim import SimConfig, random_frame

    frame = random_frame(seed, SimConfig(camera_width=64, camera_height=32, grid=SCENE_GRID))
    return frame.to_sensor_frame(), frame.ground_truth.occupancy


def scenes(seed: int) -> tuple[Any, Any]:
    """Four distinct scenes on the tiny grid, whatever the seed (training and validation seeds
    are far apart: seed % 4 maps both onto the same few scenes, so the tests stay fast)."""
    return scene(seed % 4)


CRML_GRID = BEVGrid(-8, 8, -8, 8, z_min=-4.5, z_max=5.5, z_bins=8)  # 32 x 32 x 8


def build_small_crml(latent_dim: int = 16, seed: int = 0) -> Any:
    """simplebev_crml (the LMD paper's camera + meta radar + LiDAR Simple-BEV) with a res50 encoder,
    a narrow latent and a 32 x 32 BEV, in eval mode; the decoder's BatchNorm statistics and affine
    drawn at random, so that no BatchNorm is the identity and a uniform shift rule has a shift to
    spread."""
    import torch
    from torch import nn

    from ros2_lmd.models.simplebev import SimpleBEV, simplebev_config

    torch.manual_seed(seed)
    config = simplebev_config(
        "crml",
        grid=CRML_GRID,
        image_size=(64, 96),
        camera_names=("cam_front", "cam_back"),
        encoder_type="res50",
        latent_dim=latent_dim,
    )
    model = SimpleBEV(config).eval()
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for module in model.decoder.modules():
            if isinstance(module, nn.BatchNorm2d):
                shape = module.running_mean.shape
                module.running_mean.copy_(torch.randn(shape, generator=generator) * 0.2)
                module.running_var.copy_(torch.rand(shape, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(shape, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(shape, generator=generator) * 0.2)
    return model
