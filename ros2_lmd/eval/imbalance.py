"""Modality imbalance: does a fusion model lean on one sensor more than that sensor's own quality
justifies? The fleet statistics (replay/fleet_stats.py) set each modality's share of the fused
evidence (LMD, over many drives) against how well that modality does alone, the fusion-degradation
concern of "Representation Space Constrained Learning with Modality Decoupling for Multimodal
Object Detection" (Shao and Shi, arXiv:2511.15433, 2025): training can let the stronger or easier
modality dominate while the other branches stay under-optimised.

Quality of a modality alone: the IoU of its modality-only prediction against ground-truth vehicle
occupancy, on simulated scenes (the bags carry no ground truth; the simulator does). The
modality-only prediction is the model with every other modality's features zeroed, which is LMD's
reference input o_m (`training.evaluate_iou(only=m)`). IoU, because it is the BEV head's
task metric on the same occupancy the shares are measured on, and because most cells are empty:
cell accuracy would be ~99 % for any modality that predicts nothing. Intersection and union are
summed over all scenes (as the training's validation IoU), so scenes with few vehicles count less.

The rule (`ImbalanceRule`): each modality's *justified share* is its alone-IoU over the sum of
the alone-IoUs (what it would get if the evidence were split by standalone quality). The model
*leans on* a modality when its fused-evidence share exceeds the justified share by at least
`excess` (absolute) and by a factor of at least `ratio`; it *under-uses* one in the mirror case.
Both conditions: the absolute gap keeps small shares (3 % against 1 %) from being flagged, the
factor keeps two large ones (55 % against 45 %) from being flagged. When no modality alone finds
any vehicle (sum of alone-IoUs zero or undefined: an untrained model, a set without vehicles) the
diagnosis is undetermined, never a flag."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial

from ros2_lmd.models.base import FusionModel
from ros2_lmd.training import VAL_SEED_BASE, build_dataset, evaluate_iou, simulated_sample

QUALITY_FRAMES = 16  # simulated validation scenes (the training's check set size)
LEANS = "leans on"
UNDER_USED = "under-used"
BALANCED = "balanced"
UNDETERMINED = "undetermined"


@dataclass(frozen=True)
class ModalityQuality:
    """IoU against ground truth on `frames` simulated validation scenes: all modalities (`fused`)
    and each modality alone (the others' features zeroed). NaN where neither the prediction nor the
    truth has a vehicle cell in any scene."""

    frames: int
    fused: float
    alone: dict[str, float]
    threshold: float = 0.5  # on sigmoid(bev_logits), as the monitor's detection threshold default


def modality_quality(
    model: FusionModel, frames: int = QUALITY_FRAMES, seed_base: int = VAL_SEED_BASE
) -> ModalityQuality:
    """Each modality's IoU alone (and the fused IoU) on `frames` simulated validation scenes,
    ground truth on the model's own grid."""
    if frames < 1:
        raise ValueError(f"modality_quality: need at least 1 frame, got {frames}")
    sample = partial(simulated_sample, grid=model.grid)
    data = build_dataset(model, range(seed_base, seed_base + frames), sample, progress=False)
    alone = {m: evaluate_iou(model, data, only=m) for m in model.modalities}
    return ModalityQuality(frames, evaluate_iou(model, data), alone)


@dataclass(frozen=True)
class ImbalanceRule:
    """Flag a modality whose share exceeds its justified share by `excess` and by a factor `ratio`
    (the mirror for under-use); see the module docstring."""

    excess: float = 0.20
    ratio: float = 1.5

    def __post_init__(self) -> None:
        if not (0 < self.excess < 1 and self.ratio > 1):
            raise ValueError(
                "ImbalanceRule: need 0 < excess < 1 and ratio > 1, "
                f"got excess={self.excess}, ratio={self.ratio}"
            )

    def describe(self) -> str:
        return (
            f"leans on a modality when its share >= justified share + {self.excess:.2f} and >= "
            f"{self.ratio:g} x justified share; under-uses it when its share <= justified share - "
            f"{self.excess:.2f} and <= justified share / {self.ratio:g}; justified share = its alone-IoU / "
            "the sum of the alone-IoUs"
        )


@dataclass(frozen=True)
class ModalityVerdict:
    modality: str
    share: float  # of the fused evidence, normalised over the modalities
    quality: float  # IoU alone
    justified_share: float  # NaN when undetermined
    verdict: str  # LEANS, UNDER_USED, BALANCED or UNDETERMINED
    reason: str = ""

    @property
    def ratio(self) -> float:
        """share / justified share (inf when the modality alone finds nothing yet has a share)."""
        if math.isnan(self.justified_share):
            return math.nan
        if self.justified_share == 0:
            return math.inf if self.share > 0 else math.nan
        return self.share / self.justified_share


@dataclass(frozen=True)
class ImbalanceDiagnosis:
    verdicts: dict[str, ModalityVerdict]
    rule: ImbalanceRule = field(default_factory=ImbalanceRule)

    @property
    def leans_on(self) -> list[str]:
        return [m for m, v in self.verdicts.items() if v.verdict == LEANS]


def diagnose_imbalance(
    shares: Mapping[str, float], quality: Mapping[str, float], rule: ImbalanceRule | None = None
) -> ImbalanceDiagnosis:
    """Per modality, its share of the fused evidence (normalised here to sum to 1) against the
    share its alone-IoU justifies, judged by `rule`. `shares` and `quality` must name the same
    modalities; a NaN quality (no vehicle anywhere) counts as 0 when another modality has one."""
    rule = rule or ImbalanceRule()
    if set(shares) != set(quality) or not shares:
        raise ValueError(
            f"diagnose_imbalance: shares name {sorted(shares)}, quality names {sorted(quality)}: "
            "expected the same, non-empty set of modalities"
        )
    bad = {m: s for m, s in shares.items() if not (math.isfinite(s) and s >= 0)}
    if bad:
        raise ValueError(f"diagnose_imbalance: shares must be finite and >= 0, got {bad}")
    total_share = sum(shares.values())
    known = {m: q for m, q in quality.items() if math.isfinite(q)}
    total_quality = sum(known.values())
    verdicts = {}
    for m in shares:
        share = shares[m] / total_share if total_share > 0 else math.nan
        q = quality[m]
        if not total_share > 0:
            verdicts[m] = ModalityVerdict(m, share, q, math.nan, UNDETERMINED, "no positive evidence")
            continue
        if not total_quality > 0:
            verdicts[m] = ModalityVerdict(
                m, share, q, math.nan, UNDETERMINED, "no modality alone finds a vehicle (sum of IoUs is 0)"
            )
            continue
        justified = known.get(m, 0.0) / total_quality
        if share >= justified + rule.excess and share >= rule.ratio * justified:
            verdict, reason = LEANS, f"share {share:.0%} against {justified:.0%} justified"
        elif share <= justified - rule.excess and share * rule.ratio <= justified:
            verdict, reason = UNDER_USED, f"share {share:.0%} against {justified:.0%} justified"
        else:
            verdict, reason = BALANCED, ""
        verdicts[m] = ModalityVerdict(m, share, q, justified, verdict, reason)
    return ImbalanceDiagnosis(verdicts, rule)


__all__ = [
    "QUALITY_FRAMES",
    "ModalityQuality",
    "modality_quality",
    "ImbalanceRule",
    "ModalityVerdict",
    "ImbalanceDiagnosis",
    "diagnose_imbalance",
    "LEANS",
    "UNDER_USED",
    "BALANCED",
    "UNDETERMINED",
]
