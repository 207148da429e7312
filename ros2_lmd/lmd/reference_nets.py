"""Small fusion networks of the families Layer-Wise Modality Decomposition must handle, for the engine's
tests and benchmark and as runnable examples: a Simple-BEV-like BEV decoder, an MLP with LayerNorm, a
transformer block, a piecewise-linear net for the Jacobian oracle. Each `forward` takes the modality dict."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    """ResNet basic block with BatchNorm and an in-place residual add (as torchvision writes it)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += x
        return self.relu(out)


class UpsamplingAdd(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)
        self.norm = nn.InstanceNorm2d(cout, affine=True)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        return self.norm(self.conv(x)) + skip


class SimpleBEVDecoder(nn.Module):
    """Simple-BEV's fusion part in miniature: concat -> conv + InstanceNorm + GELU ('bev_compressor')
    -> ResNet-18-style encoder-decoder with BatchNorm blocks, bilinear upsampling, skip additions,
    and segmentation / centre / offset heads."""

    def __init__(self, in_channels: dict[str, int], latent: int = 32) -> None:
        super().__init__()
        self.modalities = tuple(in_channels)
        self.compressor = nn.Sequential(
            nn.Conv2d(sum(in_channels.values()), latent, 3, padding=1, bias=False),
            nn.InstanceNorm2d(latent, affine=True),
            nn.GELU(),
        )
        self.stem = nn.Sequential(
            nn.Conv2d(latent, latent, 3, padding=1, bias=False), nn.BatchNorm2d(latent), nn.ReLU(inplace=True)
        )
        self.layer1 = BasicBlock(latent)
        self.down = nn.Sequential(
            nn.Conv2d(latent, 2 * latent, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(2 * latent),
            nn.ReLU(inplace=True),
        )
        self.layer2 = BasicBlock(2 * latent)
        self.up = UpsamplingAdd(2 * latent, latent)
        self.feat_head = nn.Sequential(
            nn.Conv2d(latent, latent, 3, padding=1, bias=False),
            nn.InstanceNorm2d(latent),
            nn.ReLU(inplace=True),
        )
        self.segmentation_head = nn.Conv2d(latent, 1, 1)
        self.center_head = nn.Sequential(nn.Conv2d(latent, 1, 1), nn.Sigmoid())
        self.offset_head = nn.Conv2d(latent, 2, 1)

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = self.compressor(torch.cat([features[m] for m in self.modalities], dim=1))
        skip = self.layer1(self.stem(x))
        x = self.layer2(self.down(skip))
        x = self.feat_head(self.up(x, skip))
        return {
            "segmentation": self.segmentation_head(x),
            "center": self.center_head(x),
            "offset": self.offset_head(x),
        }


class LayerNormMLP(nn.Module):
    def __init__(self, in_features: dict[str, int], hidden: int = 32, out: int = 4) -> None:
        super().__init__()
        self.modalities = tuple(in_features)
        self.proj = nn.ModuleDict({m: nn.Linear(n, hidden) for m, n in in_features.items()})
        self.norm1 = nn.LayerNorm(hidden)
        self.fc1 = nn.Linear(hidden, hidden)
        self.norm2 = nn.LayerNorm(hidden)
        self.fc2 = nn.Linear(hidden, out)

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        x = sum(self.proj[m](features[m]) for m in self.modalities)
        x = F.silu(self.norm1(x))
        x = x + torch.tanh(self.fc1(x))
        return self.fc2(F.softplus(self.norm2(x)))


class TransformerFusion(nn.Module):
    """Tokens of each modality, concatenated; one pre-norm transformer block (nn.MultiheadAttention
    and a GELU MLP), then a functional scaled-dot-product attention pooling head."""

    def __init__(self, in_features: dict[str, int], dim: int = 16, heads: int = 2) -> None:
        super().__init__()
        self.modalities = tuple(in_features)
        self.embed = nn.ModuleDict({m: nn.Linear(n, dim) for m, n in in_features.items()})
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, 2 * dim), nn.GELU(approximate="tanh"), nn.Linear(2 * dim, dim)
        )
        self.query = nn.Parameter(torch.randn(1, 1, dim))
        self.head = nn.Linear(dim, 3)

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        tokens = torch.cat([self.embed[m](features[m]) for m in self.modalities], dim=1)
        h = self.norm1(tokens)
        tokens = tokens + self.attn(h, h, h, need_weights=False)[0]
        tokens = tokens + self.mlp(self.norm2(tokens))
        k = tokens.reshape(tokens.shape[0], 1, tokens.shape[1], tokens.shape[2])
        q = self.query.expand(tokens.shape[0], 1, 1, -1)
        pooled = F.scaled_dot_product_attention(q, k, k).flatten(1)
        return self.head(pooled)


class PiecewiseLinearNet(nn.Module):
    """Conv/linear, ReLU/LeakyReLU, BatchNorm (eval), residual additions, bilinear upsampling: a
    network whose LMD components (identity rules) equal Jacobian-vector products."""

    def __init__(self, in_channels: dict[str, int], width: int = 12) -> None:
        super().__init__()
        self.modalities = tuple(in_channels)
        self.conv_in = nn.Conv2d(sum(in_channels.values()), width, 3, padding=1)
        self.bn = nn.BatchNorm2d(width)
        self.block = BasicBlock(width)
        self.conv_mid = nn.Conv2d(width, width, 3, stride=2, padding=1)
        self.conv_out = nn.Conv2d(width, 2, 1)
        self.fc = nn.Linear(2, 3)

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        x = torch.cat([features[m] for m in self.modalities], dim=1)
        x = F.leaky_relu(self.bn(self.conv_in(x)), 0.1)
        x = self.block(x)
        y = F.relu(self.conv_mid(x))
        y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
        x = x + y
        out = self.conv_out(x)
        return self.fc(out.permute(0, 2, 3, 1))


def randomise_norm_statistics(model: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """Random BatchNorm running statistics and norm affine parameters, so that no norm is
    trivially the identity (what the rule tests need)."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._NormBase):
                if module.running_mean is not None and module.running_var is not None:
                    module.running_mean.normal_(0.0, 0.5, generator=generator)
                    module.running_var.uniform_(0.5, 2.0, generator=generator)
            if isinstance(module, (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)):
                if getattr(module, "weight", None) is not None:
                    module.weight.uniform_(0.5, 1.5, generator=generator)
                if getattr(module, "bias", None) is not None:
                    module.bias.normal_(0.0, 0.3, generator=generator)
    return model
