"""The paper's perturbation metrics (section 5.1, App. D.4): Pearson correlation and mean squared
error between a modality-specific prediction before and after one modality's input is replaced by
an uncorrelated sample, and the sampling scheme that pairs sample k with sample k + s*m mod N."""

from __future__ import annotations

import numpy as np
import torch

PAPER_DATASET_SIZE = 6019  # nuScenes val samples in the paper (App. D.4)
PAPER_SPACING = 500
PAPER_OFFSETS = 12


def pcc(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation per sample over all remaining dims (eq. 16); shape (B,). A constant
    prediction has no defined correlation: NaN, which the aggregation reports rather than hides."""
    a = a.flatten(1).double()
    b = b.flatten(1).double()
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    denominator = torch.sqrt((a * a).sum(1) * (b * b).sum(1))
    return torch.where(
        denominator > 0,
        (a * b).sum(1) / denominator.clamp_min(1e-300),
        torch.full_like(denominator, float("nan")),
    )


def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared error per sample over all remaining dims (eq. 17); shape (B,)."""
    return (a.flatten(1).double() - b.flatten(1).double()).pow(2).mean(1)


def perturbation_pairs(
    n: int, offsets: int = PAPER_OFFSETS, spacing: int | None = None, anchors: int | None = None
) -> list[tuple[int, int]]:
    """(k, (k + spacing * m) mod n) for every sample k and m = 1..offsets. The paper uses spacing 500
    on 6019 samples; by default the spacing keeps that fraction of the dataset (at least 1), and a
    pair that would map a sample onto itself is skipped. With `anchors` < n only that many samples
    k, spread evenly over the set, are paired (their partners still range over all n): the same
    pairing on a subset of its rows, for a set too large to evaluate whole."""
    if n < 2:
        raise ValueError(f"perturbation metrics need at least 2 samples, got {n}")
    if spacing is None:
        spacing = max(1, round(n * PAPER_SPACING / PAPER_DATASET_SIZE))
    pairs = []
    for k in anchor_indices(n, anchors):
        for m in range(1, offsets + 1):
            j = (k + spacing * m) % n
            if j != k:
                pairs.append((k, j))
    return pairs


def anchor_indices(n: int, anchors: int | None = None) -> list[int]:
    """The samples k that `perturbation_pairs` pairs: all n, or `anchors` of them spread evenly."""
    if anchors is None or anchors >= n:
        return list(range(n))
    if anchors < 1:
        raise ValueError(f"anchors must be >= 1, got {anchors}")
    return sorted({(i * n) // anchors for i in range(anchors)})


def summarise(values: list[float] | np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation, ignoring NaN (undefined correlations), as the paper's mean ± std."""
    array = np.asarray(values, dtype=np.float64)
    array = array[np.isfinite(array)]
    if array.size == 0:
        return float("nan"), float("nan")
    return float(array.mean()), float(array.std())
