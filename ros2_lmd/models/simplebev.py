"""`simplebev`: a reimplementation of Simple-BEV's `Segnet` (Harley et al., ICRA 2023), module for
module and parameter for parameter, so official checkpoints load with strict=True after
`convert_simplebev_checkpoint` (models/conversion.py). Split for LMD: `encode` = ResNet camera
encoder + unprojection + radar/LiDAR voxels; `fuse` = concatenation + `bev_compressor` + decoder +
heads.

Frames. Simple-BEV works in a reference camera frame (X right, Y down, Z forward) with memory
layout (Z, Y, X). Here the reference frame is base_link turned so that X = forward, Y = down,
Z = left (a pure rotation about the vertical; the official training uses a random reference camera,
so every yaw was seen): memory (Z, Y, X) is then (iy, height bin top-first, ix) and the BEV output
lands on the BEVGrid as-is. Differences from the official code, all small: the camera average
counts the cameras that see a voxel (official: channels that are non-zero), point voxels use the
grid's floor binning, and no voxel near the origin is dropped."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ros2_lmd.geometry.grid import BEVGrid
from ros2_lmd.geometry.lifting import CameraLifter
from ros2_lmd.geometry.voxelize import occupancy, voxelize_radar
from ros2_lmd.models.base import FusionModel, ModelConfig
from ros2_lmd.models.resnet import init_resnet_, resnet_stages

# variant -> (modalities, radar input). "crm" is Simple-BEV's use_metaradar.
VARIANTS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "c": (("camera",), None),
    "cr": (("camera", "radar"), "occupancy"),
    "crm": (("camera", "radar"), "meta"),
    "cl": (("camera", "lidar"), None),
    # The LMD paper's three-modality network (camera + meta radar + LiDAR occupancy into one BEV
    # compressor; detxter-jvb/Layer-Wise-Modality-Decomposition, segnet_relu_feats_bias_three.py).
    "crml": (("camera", "radar", "lidar"), "meta"),
}
META_RADAR_CHANNELS = 16
# The LMD paper's network normalises the compressor output, the three up-skips and the segmentation
# head with var + 1e-7 (its own arithmetic, not nn.InstanceNorm2d's 1e-5); "crml" builds those
# InstanceNorms with this eps so that its real outputs are the reference's.
REFERENCE_NORM_EPS = 1e-7
INSTANCE_NORM_EPS = 1e-5  # nn.InstanceNorm2d's default, Simple-BEV's everywhere

DEFAULT_PARAMS: dict[str, Any] = {
    "encoder_type": "res101",  # or "res50" (the EfficientNet encoders are not reimplemented)
    "latent_dim": 128,  # Segnet's latent_dim == feat2d_dim
}
# Paper Table 5 / Simple-BEV nuScenes setting: 224x400 images, a (200, 8, 200) voxel grid over
# +-50 m. Official height bounds are Y in [-5, 5] m about a centroid 1 m below the reference
# camera; with nuScenes' front camera ~1.5 m above base_link that is z in [-4.5, 5.5] m.
DEFAULT_IMAGE_SIZE = (224, 400)
DEFAULT_GRID = BEVGrid(z_min=-4.5, z_max=5.5, z_bins=8)
# The official checkpoints were trained and evaluated at res_scale=2: 448x800 images (their README's
# IoUs are at that size). Converted checkpoints get it unless told otherwise.
OFFICIAL_IMAGE_SIZE = (448, 800)


class UpsamplingConcat(nn.Module):
    """Upsample x2, concatenate with the skip ([skip, upsampled]), two conv-IN-ReLU."""

    def __init__(self, in_channels: int, out_channels: int, scale_factor: int = 2) -> None:
        super().__init__()
        self.upsample = nn.Upsample(scale_factor=scale_factor, mode="bilinear", align_corners=False)
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.InstanceNorm2d(out_channels),
            nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.InstanceNorm2d(out_channels),
            nn.ReLU(),
        )

    def forward(self, x_to_upsample: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([x, self.upsample(x_to_upsample)], dim=1))


class UpsamplingAdd(nn.Module):
    """Upsample x2, 1x1 conv, InstanceNorm, add the skip."""

    def __init__(
        self, in_channels: int, out_channels: int, scale_factor: int = 2, norm_eps: float = INSTANCE_NORM_EPS
    ) -> None:
        super().__init__()
        self.upsample_layer = nn.Sequential(
            nn.Upsample(scale_factor=scale_factor, mode="bilinear", align_corners=False),
            nn.Conv2d(in_channels, out_channels, kernel_size=1, padding=0, bias=False),
            nn.InstanceNorm2d(out_channels, eps=norm_eps),
        )

    def forward(self, x: torch.Tensor, x_skip: torch.Tensor) -> torch.Tensor:
        return self.upsample_layer(x) + x_skip


class ImageEncoder(nn.Module):
    """Encoder_res101 / Encoder_res50: ResNet up to layer2 (`backbone`, stride 8) and layer3
    (stride 16), fused back at stride 8, then a 1x1 `depth_layer` to C channels."""

    def __init__(self, C: int, depth: int = 101) -> None:
        super().__init__()
        self.C = C
        conv1, bn1, (layer1, layer2, layer3) = resnet_stages(depth, num_stages=3)
        # Same children order as torchvision's resnet children()[:-4]: conv1, bn1, relu, maxpool,
        # layer1, layer2 (state_dict indices 0, 1, 4, 5).
        self.backbone = nn.Sequential(
            conv1, bn1, nn.ReLU(), nn.MaxPool2d(kernel_size=3, stride=2, padding=1), layer1, layer2
        )
        self.layer3 = layer3
        self.depth_layer = nn.Conv2d(512, C, kernel_size=1, padding=0)
        self.upsampling_layer = UpsamplingConcat(1536, 512)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.backbone(x)
        x2 = self.layer3(x1)
        return self.depth_layer(self.upsampling_layer(x2, x1))


def _head(channels: int, out: int, norm_eps: float = INSTANCE_NORM_EPS) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False),
        nn.InstanceNorm2d(channels, eps=norm_eps),
        nn.ReLU(),
        nn.Conv2d(channels, out, kernel_size=1, padding=0),
    )


class Decoder(nn.Module):
    """Segnet's BEV decoder: ResNet-18 stem conv (no max-pool) + layer1-3, three UpsamplingAdd
    skips, and the feat / segmentation / offset / center heads. `norm_eps`: the eps of the up-skips'
    and the segmentation head's InstanceNorms (REFERENCE_NORM_EPS in the LMD paper's network)."""

    def __init__(self, in_channels: int, n_classes: int = 1, norm_eps: float = INSTANCE_NORM_EPS) -> None:
        super().__init__()
        _, bn1, (layer1, layer2, layer3) = resnet_stages(18, num_stages=3)
        self.first_conv = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = bn1
        self.relu = nn.ReLU()
        self.layer1, self.layer2, self.layer3 = layer1, layer2, layer3
        self.up3_skip = UpsamplingAdd(256, 128, norm_eps=norm_eps)
        self.up2_skip = UpsamplingAdd(128, 64, norm_eps=norm_eps)
        self.up1_skip = UpsamplingAdd(64, in_channels, norm_eps=norm_eps)
        self.feat_head = _head(in_channels, in_channels)
        self.segmentation_head = _head(in_channels, n_classes, norm_eps=norm_eps)
        self.instance_offset_head = _head(in_channels, 2)
        # Official center head ends in nn.Sigmoid (index 4); `fuse` stops before it (logits).
        self.instance_center_head = nn.Sequential(*_head(in_channels, 1), nn.Sigmoid())

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        skip1 = x
        x = self.relu(self.bn1(self.first_conv(x)))
        skip2 = x = self.layer1(x)
        skip3 = x = self.layer2(x)
        x = self.layer3(x)
        x = self.up3_skip(x, skip3)
        x = self.up2_skip(x, skip2)
        return self.up1_skip(x, skip1)


class SimpleBEV(FusionModel):
    """Simple-BEV Segnet behind the FusionModel contract. Outputs: `bev_logits` (segmentation),
    `center_logits` (sigmoid gives the official instance_center) and `offset`."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        unknown = set(config.params) - set(DEFAULT_PARAMS)
        if unknown:
            raise ValueError(f"simplebev: unknown params {sorted(unknown)}; known: {sorted(DEFAULT_PARAMS)}")
        if config.variant not in VARIANTS:
            raise ValueError(f"simplebev: unknown variant {config.variant!r}; expected {sorted(VARIANTS)}")
        modalities, self.radar_mode = VARIANTS[config.variant]
        if tuple(config.modalities) != modalities:
            raise ValueError(
                f"simplebev variant {config.variant!r} needs modalities {modalities}, got {config.modalities}"
            )
        p = {**DEFAULT_PARAMS, **config.params}
        depth = {"res101": 101, "res50": 50}.get(p["encoder_type"])
        if depth is None:
            raise ValueError(
                f"simplebev: encoder_type must be 'res101' or 'res50', got {p['encoder_type']!r}"
            )
        # Fixed x2 upsampling joins stride 16 to stride 8 (encoder) and 1/8 .. 1 of the BEV (decoder).
        H, W = config.image_size
        if H % 16 or W % 16:
            raise ValueError(f"simplebev: image_size {config.image_size} must be divisible by 16")
        if config.grid.ny % 8 or config.grid.nx % 8:
            raise ValueError(f"simplebev: BEV grid {config.grid.shape} must be divisible by 8")
        self.params = p
        self.latent_dim = p["latent_dim"]
        self.lifter = CameraLifter(config.grid, z_descending=True, convention="simplebev")

        # Parameter registration order follows Segnet so state_dict key order matches too.
        self.encoder = ImageEncoder(self.latent_dim, depth)
        compressor_in = sum(shape[0] for shape in self.feature_shapes().values())
        norm_eps = REFERENCE_NORM_EPS if config.variant == "crml" else INSTANCE_NORM_EPS
        self.bev_compressor = nn.Sequential(
            nn.Conv2d(compressor_in, self.latent_dim, kernel_size=3, padding=1, stride=1, bias=False),
            nn.InstanceNorm2d(self.latent_dim, eps=norm_eps),
            nn.GELU(),
        )
        self.decoder = Decoder(self.latent_dim, n_classes=1, norm_eps=norm_eps)
        # Segnet's learned uncertainty weights of its three losses (kept for state_dict parity).
        self.ce_weight = nn.Parameter(torch.tensor(0.0))
        self.center_weight = nn.Parameter(torch.tensor(0.0))
        self.offset_weight = nn.Parameter(torch.tensor(0.0))
        init_resnet_(self.encoder)
        init_resnet_(self.decoder, zero_init_residual=True)

    def feature_shapes(self) -> dict[str, tuple[int, int, int]]:
        g = self.grid
        radar_channels = META_RADAR_CHANNELS * g.z_bins if self.radar_mode == "meta" else 1
        shapes = {
            "camera": (self.latent_dim * g.z_bins, g.ny, g.nx),
            "radar": (radar_channels, g.ny, g.nx),
            "lidar": (g.z_bins, g.ny, g.nx),
        }
        return {m: shapes[m] for m in self.modalities}

    def point_inputs(self, modality: str, points: np.ndarray) -> np.ndarray:
        g = self.grid
        if modality == "radar" and self.radar_mode == "occupancy":
            return voxelize_radar(g, points, "occupancy")  # (1, ny, nx)
        if modality == "radar":
            meta = voxelize_radar(g, points, "meta")[:, ::-1]  # height bins top-first (Y down)
            return np.ascontiguousarray(meta).reshape(-1, g.ny, g.nx)  # channel = f * Y + y
        if modality == "lidar":
            return np.ascontiguousarray(occupancy(g, points[:, :3], per_z=True)[::-1])
        raise ValueError(f"simplebev: no point input for modality {modality!r}")

    def encode(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        images = inputs["images"]
        B, S, _, H, W = images.shape
        feats = self.encoder(self.normalise_images(images.flatten(0, 1)))
        feats = feats.reshape(B, S, *feats.shape[1:])
        volume = self.lifter(
            feats, inputs["intrinsics"], inputs["T_base_cam"], (H, W), inputs.get("camera_valid")
        )  # (B, C, Y, Z, X)
        # Official: feat_mem.permute(0, 1, 3, 2, 4).reshape(B, C*Y, Z, X); ours is already (C, Y, Z, X).
        features = {"camera": volume.flatten(1, 2)}
        for modality in ("radar", "lidar"):
            if modality in self.modalities:
                features[modality] = inputs[modality]
        return self.mask_absent(features, inputs)

    def fuse(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = torch.cat([features[m] for m in self.modalities], dim=1)
        x = self.decoder.trunk(self.bev_compressor(x))
        center = self.decoder.instance_center_head
        center_logits = center[3](center[2](center[1](center[0](x))))
        return {
            "bev_logits": self.decoder.segmentation_head(x),
            "center_logits": center_logits,
            "offset": self.decoder.instance_offset_head(x),
        }


def simplebev_config(variant: str, **overrides: Any) -> ModelConfig:
    """Default config of a Simple-BEV variant ('c', 'cr', 'crm', 'cl', 'crml'); overrides go to
    ModelConfig fields or, for other names, into `params` (e.g. encoder_type='res50')."""
    if variant not in VARIANTS:
        raise ValueError(f"simplebev: unknown variant {variant!r}; expected one of {sorted(VARIANTS)}")
    fields_ = {"grid", "image_size", "camera_names", "image_mean", "image_std"}
    top = {
        "grid": DEFAULT_GRID,
        "image_size": DEFAULT_IMAGE_SIZE,
        **{k: v for k, v in overrides.items() if k in fields_},
    }
    params = {**DEFAULT_PARAMS, **{k: v for k, v in overrides.items() if k not in fields_}}
    return ModelConfig(
        architecture="simplebev", variant=variant, modalities=VARIANTS[variant][0], params=params, **top
    )


# -- official checkpoint conversion -------------------------------------------------------------


def infer_simplebev_variant(
    state_dict: dict[str, torch.Tensor], z_bins: int = 8
) -> tuple[str, dict[str, Any]]:
    """Variant and params of an official Segnet state_dict, read from its shapes: the encoder depth
    from the number of layer3 blocks, latent_dim from depth_layer, the inputs from the
    bev_compressor's input width (C*Y, +1 radar, +16*Y meta radar, +Y LiDAR)."""
    if "encoder.depth_layer.weight" not in state_dict or "bev_compressor.0.weight" not in state_dict:
        raise ValueError(
            "not a Simple-BEV Segnet checkpoint (or an EfficientNet encoder, which is not "
            "supported): encoder.depth_layer.weight / bev_compressor.0.weight missing"
        )
    latent = int(state_dict["encoder.depth_layer.weight"].shape[0])
    blocks = {int(k.split(".")[2]) for k in state_dict if k.startswith("encoder.layer3.")}
    encoder_type = {23: "res101", 6: "res50"}.get(len(blocks))
    if encoder_type is None:
        raise ValueError(
            f"Simple-BEV checkpoint has {len(blocks)} encoder.layer3 blocks; "
            "expected 23 (res101) or 6 (res50)"
        )
    extra = int(state_dict["bev_compressor.0.weight"].shape[1]) - latent * z_bins
    by_extra = {
        0: "c",
        1: "cr",
        META_RADAR_CHANNELS * z_bins: "crm",
        z_bins: "cl",
        (META_RADAR_CHANNELS + 1) * z_bins: "crml",
    }
    if extra not in by_extra:
        raise ValueError(
            f"cannot tell the Simple-BEV variant: bev_compressor.0.weight takes "
            f"{latent * z_bins} camera + {extra} other channels (z_bins={z_bins})"
        )
    return by_extra[extra], {"encoder_type": encoder_type, "latent_dim": latent}


def _reference_aliases() -> dict[str, str]:
    """The LMD paper's network registers some decoder modules a second time under flat names
    (`decoder.layer1_1_conv1` is `decoder.layer1[0].conv1`), so its state_dict holds their tensors
    twice. Alias module name -> the Simple-BEV name of the same module."""
    aliases = {}
    for layer in (1, 2, 3):
        for block in (1, 2):
            for part in ("conv1", "bn1", "relu", "conv2", "bn2"):
                aliases[f"decoder.layer{layer}_{block}_{part}"] = f"decoder.layer{layer}.{block - 1}.{part}"
        if layer > 1:
            aliases[f"decoder.layer{layer}_1_downsample_conv"] = f"decoder.layer{layer}.0.downsample.0"
            aliases[f"decoder.layer{layer}_1_downsample_bn"] = f"decoder.layer{layer}.0.downsample.1"
    for up in (3, 2, 1):
        aliases[f"decoder.up{up}_upsample"] = f"decoder.up{up}_skip.upsample_layer.0"
        aliases[f"decoder.up{up}_conv1"] = f"decoder.up{up}_skip.upsample_layer.1"
    for index, part in enumerate(("seg_conv1", "seg_instance_norm", "seg_act", "seg_conv2")):
        aliases[f"decoder.{part}"] = f"decoder.segmentation_head.{index}"
    return aliases


REFERENCE_ALIASES: dict[str, str] = _reference_aliases()


def fold_reference_aliases(state_dict: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """`state_dict` without the LMD paper's alias keys (REFERENCE_ALIASES), each checked to hold the
    same tensor as its Simple-BEV key; a state_dict without aliases is returned unchanged. Raises
    ValueError naming every alias whose Simple-BEV key is missing or differs."""
    folded, problems = {}, []
    for key, value in state_dict.items():
        module, _, leaf = key.rpartition(".")
        canonical = REFERENCE_ALIASES.get(module)
        if canonical is None:
            folded[key] = value
            continue
        target = f"{canonical}.{leaf}"
        if target not in state_dict:
            problems.append(f"{key} (alias of {target}, which is missing)")
        elif state_dict[target].shape != value.shape or not torch.equal(state_dict[target], value):
            problems.append(f"{key} (differs from {target}, which it aliases)")
    if problems:
        raise ValueError(
            f"{source}: the LMD reference's alias keys must repeat their Simple-BEV keys: "
            + ", ".join(sorted(problems))
        )
    return folded
