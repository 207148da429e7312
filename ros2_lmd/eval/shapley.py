"""Exact modality-level Shapley values (all 2^M coalitions; section 6, Table 4) and LMD+SHAP: LMD
gives each modality its component, and Shapley values of the bias term, as a game over which
modalities are present, are added to the modalities, so the bias is redistributed."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import torch

from ros2_lmd.lmd import RuleVariants, decompose


def shapley_from_game(
    players: tuple[str, ...], value: Callable[[frozenset[str]], torch.Tensor]
) -> dict[str, torch.Tensor]:
    """phi_m = sum over S not containing m of |S|!(M-|S|-1)!/M! (v(S + m) - v(S)), elementwise."""
    M = len(players)
    values = {
        frozenset(s): value(frozenset(s)) for r in range(M + 1) for s in itertools.combinations(players, r)
    }
    phi = {}
    for m in players:
        others = [p for p in players if p != m]
        total = torch.zeros_like(values[frozenset()])
        for r in range(M):
            weight = math.factorial(r) * math.factorial(M - r - 1) / math.factorial(M)
            for s in itertools.combinations(others, r):
                total = total + weight * (values[frozenset(s) | {m}] - values[frozenset(s)])
        phi[m] = total
    return phi


def _coalition(features: dict[str, torch.Tensor], present: frozenset[str]) -> dict[str, torch.Tensor]:
    return {m: (x if m in present else torch.zeros_like(x)) for m, x in features.items()}


def modality_shapley(
    fn: Callable, features: dict[str, torch.Tensor], output_key: str | None = None
) -> dict[str, torch.Tensor]:
    """Shapley values of the plain network over modality coalitions (absent = zero features)."""

    def value(present: frozenset[str]) -> torch.Tensor:
        with torch.no_grad():
            out = fn(_coalition(features, present))
        return out[output_key] if output_key else out

    return shapley_from_game(tuple(features), value)


def lmd_shapley(
    fn: Callable,
    features: dict[str, torch.Tensor],
    output_key: str | None = None,
    rules: RuleVariants | None = None,
) -> dict[str, torch.Tensor]:
    """LMD component of each modality plus its Shapley share of the LMD bias term."""
    rules = rules or RuleVariants()

    def decomposition(present: frozenset[str]):
        with torch.no_grad():
            dec = decompose(fn, _coalition(features, present), rules=rules)
        return dec[output_key] if output_key else dec

    full = decomposition(frozenset(features))
    bias_phi = shapley_from_game(tuple(features), lambda s: decomposition(s).bias)
    return {m: full.components[m] + bias_phi[m] for m in features}
