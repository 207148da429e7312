"""How a training run keeps the weaker sensors learning (`ros2-lmd train --balance`). Inside a
fusion network each sensor's own parameters get only the gradient that survives the fusion, and the
sensor that helps least gets the least of it (RSC-MD's finding), so a fused model can lean on the
camera and LiDAR and leave radar under-trained. Three remedies, one per option:

- `none`: every sample sees every sensor; the baseline the other two are measured against.
- `modality-dropout` (the shipped models'): a share of the samples sees a random non-empty proper
  subset of the sensors (`augmentation.modality_dropout`), so each sensor, alone or in a pair, must
  carry the prediction.
- `unimodal-aux`: every sample sees every sensor, and an auxiliary head per sensor predicts the
  same BEV target from that sensor's own part of the first fusion layer (`UnimodalAuxHeads`); the
  auxiliary losses reach each sensor's own parameters directly, weighted towards the sensor whose
  head is furthest from the target. The heads live beside the model: the saved weights, `encode`
  and `fuse` are the architecture's, so LMD and the shipped-model contracts are untouched."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ros2_lmd.models.base import FusionModel
from ros2_lmd.training.config import BALANCES


def check_balance(balance: str) -> None:
    if balance not in BALANCES:
        raise ValueError(f"balance {balance!r}: expected one of {', '.join(BALANCES)}")


def modality_contributions(model: FusionModel, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each modality's term of the first fusion layer's pre-activation (the convolution over the
    concatenated features is linear in them, so the terms sum to that convolution's output: LMD's
    layer-1 split). Only the compact architecture has its first fusion layer where this looks."""
    compressor = getattr(model, "bev_compressor", None)
    conv = compressor[0] if isinstance(compressor, nn.Sequential) else None
    if not isinstance(conv, nn.Conv2d) or conv.bias is not None:
        raise ValueError(
            f"balance unimodal-aux: model {type(model).__name__} has no bias-free first fusion "
            "convolution (bev_compressor[0]); train a compact model"
        )
    terms, start = {}, 0
    for modality in model.modalities:
        channels = features[modality].shape[1]
        weight = conv.weight[:, start : start + channels]
        terms[modality] = F.conv2d(
            features[modality], weight, stride=conv.stride, padding=conv.padding, dilation=conv.dilation
        )
        start += channels
    return terms


class UnimodalAuxHeads(nn.Module):
    """One light head per modality (1x1 conv, ReLU, 1x1 conv to one logit) on that modality's term
    of the first fusion layer, predicting the fused model's BEV target. `loss` returns the
    auxiliary loss sum_m w_m L_m with L_m each head's binary cross-entropy and w_m = L_m / sum_k L_k
    (detached): the modality whose own evidence is furthest from the target, the one the fusion
    suppresses most, gets the largest push. Its gradient reaches each modality's own parameters
    (the camera backbone; every modality's slice of the fusion convolution) and nothing of the
    fused decoder."""

    def __init__(self, model: FusionModel, hidden: int = 16) -> None:
        super().__init__()
        channels = modality_contributions(model, _zero_features(model))
        self.modalities = model.modalities
        self.heads = nn.ModuleDict(
            {
                m: nn.Sequential(nn.Conv2d(c.shape[1], hidden, 1), nn.ReLU(), nn.Conv2d(hidden, 1, 1))
                for m, c in channels.items()
            }
        )

    def losses(
        self,
        model: FusionModel,
        features: dict[str, torch.Tensor],
        target: torch.Tensor,
        pos_weight: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Each modality's head loss (binary cross-entropy against `target`, on the output grid)."""
        terms = modality_contributions(model, features)
        out = {}
        for modality, term in terms.items():
            logits = self.heads[modality](term)
            if logits.shape[-2:] != target.shape[-2:]:
                logits = F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=False)
            out[modality] = F.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight)
        return out

    def loss(
        self,
        model: FusionModel,
        features: dict[str, torch.Tensor],
        target: torch.Tensor,
        pos_weight: torch.Tensor,
    ) -> torch.Tensor:
        losses = self.losses(model, features, target, pos_weight)
        total = sum(v.detach() for v in losses.values())
        return sum(v * (v.detach() / total) for v in losses.values())  # type: ignore[return-value]


def _zero_features(model: FusionModel) -> dict[str, torch.Tensor]:
    device = next(model.parameters()).device
    return {m: torch.zeros(1, *shape, device=device) for m, shape in model.feature_shapes().items()}
