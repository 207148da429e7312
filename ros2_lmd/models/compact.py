"""`compact`: the built-in CPU-sized fusion network with Simple-BEV's structure: a small camera CNN
lifted into BEV by unprojection, radar/LiDAR voxel features, a fusion conv + norm + GELU
("bev_compressor"; BatchNorm by default, Simple-BEV's InstanceNorm as an option), a small U-Net
decoder and segmentation/center/offset heads. The BEV inside runs on a coarser grid
(bev_downsample) and the heads are upsampled onto the output grid."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ros2_lmd.geometry.lifting import CameraLifter
from ros2_lmd.geometry.voxelize import voxelize_lidar, voxelize_radar
from ros2_lmd.models.base import FusionModel, ModelConfig
from ros2_lmd.models.resnet import BasicBlock, init_resnet_

VARIANTS: dict[str, tuple[str, ...]] = {
    "cr": ("camera", "radar"),
    "cl": ("camera", "lidar"),
    "crl": ("camera", "radar", "lidar"),
}

DEFAULT_IMAGE_SIZE = (128, 224)  # (H, W): nuScenes' 900x1600 shrunk ~7x, divisible by 8

DEFAULT_PARAMS: dict[str, Any] = {
    "bev_downsample": 2,  # internal BEV cell = grid.resolution * bev_downsample
    "lift_z_bins": 4,  # height bins of the camera lifting
    # Height band of the camera lifting [m, base_link]: the road to just above a truck; voxels far
    # below ground or in the sky only sample the road texture and the horizon.
    "lift_z_range": [-1.0, 3.0],
    # LiDAR height bins: 0.5 m slices, so ground returns (z ~ 0) and vehicle surfaces (0.3-2 m)
    # land in different channels; with coarse bins they are indistinguishable.
    "lidar_z_range": [-0.5, 3.0],
    "lidar_z_bins": 7,
    "camera_widths": [32, 64, 96],  # three stride-2 conv stages: image features at stride 8
    "camera_channels": 8,  # lifted camera channels per height bin
    "fusion_channels": 32,  # bev_compressor output
    # Norm of the bev_compressor: "batch" (fixed statistics in eval: each sensor's share of the
    # fused features does not depend on the other sensors, and LMD through it is exact) or
    # "instance" (Simple-BEV's; per-frame statistics, so a dense camera map rescales the sparse
    # radar/LiDAR evidence and a lost sensor changes how the others are normalised).
    "fusion_norm": "batch",
    "decoder_channels": [48, 64],  # U-Net stages at 1/2 and 1/4 of the internal grid
    "head_channels": 16,
    "radar_mode": "features",  # occupancy + mean rcs, vx_comp, vy_comp per cell
    # Scales bring raw sensor units near 1: rcs [dBsm] / 10, velocity [m/s] / 10, intensity / 255.
    "radar_scale": [1.0, 0.1, 0.1, 0.1],
    "lidar_intensity_scale": 1.0 / 255.0,
}


def conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()
    )


class UpsampleAdd(nn.Module):
    """Bilinear upsampling to the skip's size, 1x1 conv, InstanceNorm, then add the skip
    (Simple-BEV's UpsamplingAdd, sized by the skip so odd grid sizes work)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)
        self.norm = nn.InstanceNorm2d(cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.norm(self.conv(x)) + skip


class CameraBackbone(nn.Module):
    """Plain conv/BN/ReLU CNN at stride 8 with one residual block and a 1x1 feature layer whose
    output is batch-normalised: the lifted camera features then enter the fusion at unit scale,
    like the radar and LiDAR cell values. Unnormalised, they were ~40x larger in mean square and
    drowned the other sensors in the fusion InstanceNorm (the fused model ignored the LiDAR)."""

    def __init__(self, widths: list[int], out_channels: int) -> None:
        super().__init__()
        layers, cin = [], 3
        for width in widths:
            layers.append(conv_bn_relu(cin, width, stride=2))
            cin = width
        self.stages = nn.Sequential(*layers)
        self.block = BasicBlock(cin, cin)
        self.feature_layer = nn.Conv2d(cin, out_channels, 1, bias=False)
        self.feature_norm = nn.BatchNorm2d(out_channels)
        self.stride = 2 ** len(widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature_norm(self.feature_layer(self.block(self.stages(x))))


class CompactFusion(FusionModel):
    """Camera + radar and/or LiDAR BEV segmentation sized for >= 10 Hz with LMD on 2 CPU cores."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        unknown = set(config.params) - set(DEFAULT_PARAMS)
        if unknown:
            raise ValueError(f"compact: unknown params {sorted(unknown)}; known: {sorted(DEFAULT_PARAMS)}")
        if "camera" not in config.modalities:
            raise ValueError("compact: the camera modality is required")
        p = {**DEFAULT_PARAMS, **config.params}
        self.params = p
        g = config.grid
        self.feature_grid = replace(
            g,
            resolution=g.resolution * p["bev_downsample"],
            z_min=float(p["lift_z_range"][0]),
            z_max=float(p["lift_z_range"][1]),
            z_bins=p["lift_z_bins"],
        )
        self.lidar_grid = replace(
            self.feature_grid,
            z_min=float(p["lidar_z_range"][0]),
            z_max=float(p["lidar_z_range"][1]),
            z_bins=p["lidar_z_bins"],
        )
        self.lifter = CameraLifter(self.feature_grid)

        self.camera_backbone = CameraBackbone(p["camera_widths"], p["camera_channels"])
        self.register_buffer(
            "radar_scale",
            torch.tensor(p["radar_scale"], dtype=torch.float32).reshape(1, -1, 1, 1),
            persistent=False,
        )
        channels = self.feature_shapes()
        fusion_in = sum(channels[m][0] for m in self.modalities)
        c0, (c1, c2) = p["fusion_channels"], p["decoder_channels"]
        # The first fusion layer (paper's l=1): concatenation + conv + norm + GELU.
        norms = {"batch": nn.BatchNorm2d, "instance": nn.InstanceNorm2d}
        if p["fusion_norm"] not in norms:
            raise ValueError(f"compact: fusion_norm must be one of {sorted(norms)}, got {p['fusion_norm']!r}")
        self.bev_compressor = nn.Sequential(
            nn.Conv2d(fusion_in, c0, 3, padding=1, bias=False), norms[p["fusion_norm"]](c0), nn.GELU()
        )
        self.down1 = conv_bn_relu(c0, c1, stride=2)
        self.block1 = BasicBlock(c1, c1)
        self.down2 = conv_bn_relu(c1, c2, stride=2)
        self.block2 = BasicBlock(c2, c2)
        self.up2 = UpsampleAdd(c2, c1)
        self.up1 = UpsampleAdd(c1, c0)
        ch = p["head_channels"]
        self.head_trunk = nn.Sequential(
            nn.Conv2d(c0, ch, 3, padding=1, bias=False), nn.InstanceNorm2d(ch), nn.ReLU()
        )
        self.segmentation_head = nn.Conv2d(ch, 1, 1)
        self.center_head = nn.Conv2d(ch, 1, 1)
        self.offset_head = nn.Conv2d(ch, 2, 1)
        init_resnet_(self)

    def feature_shapes(self) -> dict[str, tuple[int, int, int]]:
        fg, p = self.feature_grid, self.params
        radar_channels = {"occupancy": 1, "features": 4}
        if p["radar_mode"] not in radar_channels:
            raise ValueError(f"compact: radar_mode must be one of {sorted(radar_channels)}")
        shapes = {
            "camera": (p["camera_channels"] * fg.z_bins, fg.ny, fg.nx),
            "radar": (radar_channels[p["radar_mode"]], fg.ny, fg.nx),
            "lidar": (self.lidar_grid.z_bins + 1, fg.ny, fg.nx),
        }
        return {m: shapes[m] for m in self.modalities}

    def point_inputs(self, modality: str, points: np.ndarray) -> np.ndarray:
        if modality == "radar":
            return voxelize_radar(self.feature_grid, points, self.params["radar_mode"])
        if modality == "lidar":
            return voxelize_lidar(
                self.lidar_grid,
                points,
                with_intensity=True,
                intensity_scale=self.params["lidar_intensity_scale"],
            )
        raise ValueError(f"compact: no point input for modality {modality!r}")

    def encode(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        features: dict[str, torch.Tensor] = {}
        if "camera" in self.modalities:
            images = inputs["images"]
            B, S, _, H, W = images.shape
            feats = self.camera_backbone(self.normalise_images(images.flatten(0, 1)))
            feats = feats.reshape(B, S, *feats.shape[1:])
            volume = self.lifter(
                feats, inputs["intrinsics"], inputs["T_base_cam"], (H, W), inputs.get("camera_valid")
            )
            features["camera"] = volume.flatten(1, 2)  # (B, C*Z, Y, X): height into channels
        if "radar" in self.modalities:
            radar = inputs["radar"]
            scale = self.radar_scale[:, : radar.shape[1]]
            features["radar"] = radar * scale
        if "lidar" in self.modalities:
            features["lidar"] = inputs["lidar"]
        return self.mask_absent(features, inputs)

    def fuse(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = torch.cat([features[m] for m in self.modalities], dim=1)
        skip1 = self.bev_compressor(x)
        skip2 = self.block1(self.down1(skip1))
        x = self.block2(self.down2(skip2))
        x = self.up1(self.up2(x, skip2), skip1)
        h = self.head_trunk(x)
        size = self.grid.shape
        outputs = {
            "bev_logits": self.segmentation_head(h),
            "center_logits": self.center_head(h),
            "offset": self.offset_head(h),
        }
        if tuple(h.shape[-2:]) != size:
            outputs = {
                k: F.interpolate(v, size=size, mode="bilinear", align_corners=False)
                for k, v in outputs.items()
            }
        return outputs


def compact_config(variant: str, **overrides: Any) -> ModelConfig:
    """Default config of a compact variant ('cr', 'cl', 'crl'); overrides go to ModelConfig fields
    or, for unknown field names, into `params`."""
    if variant not in VARIANTS:
        raise ValueError(f"compact: unknown variant {variant!r}; expected one of {sorted(VARIANTS)}")
    fields_ = {"grid", "image_size", "camera_names", "image_mean", "image_std"}
    top = {"image_size": DEFAULT_IMAGE_SIZE, **{k: v for k, v in overrides.items() if k in fields_}}
    params = {k: v for k, v in overrides.items() if k not in fields_}
    return ModelConfig(
        architecture="compact",
        variant=variant,
        modalities=VARIANTS[variant],
        params={**DEFAULT_PARAMS, **params},
        **top,
    )
