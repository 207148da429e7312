"""The modality-replacement experiment (section 5.1-5.3, App. D.1/D.4, Tables 1, 2, 4, 6, 7, 8):
for each method, the modality-specific predictions at a clean sample and after replacing one
modality (two, with three modalities) by another sample's, compared by PCC and MSE.

Methods and how they give modality m's prediction at input x, linearised at the clean sample x0:
  LMD variants     component m of decompose(fn, x, rules, linearize_at=x0)
  Baseline / partial linearisations (Act. only, Norm. only)
                   F~(x) - F~(x with m zeroed), F~ = fn with the chosen layer families frozen at x0
                   (ros2_lmd.eval.frozen); with everything frozen this equals LMD exactly.
  SHAP             exact modality Shapley value of fn at x (absent modality = zero features)
  LMD+SHAP         LMD component plus the Shapley share of the LMD bias, at x
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import torch

from ros2_lmd.eval.frozen import FrozenNetwork
from ros2_lmd.eval.metrics import mse, pcc, perturbation_pairs, summarise
from ros2_lmd.eval.shapley import lmd_shapley, modality_shapley
from ros2_lmd.lmd import RuleVariants, decompose
from ros2_lmd.models.rule_presets import rule_preset

LETTER = {"camera": "C", "radar": "R", "lidar": "L"}


@dataclass(frozen=True)
class Method:
    name: str
    kind: str  # lmd | frozen | shap | lmd_shap
    rules: RuleVariants = field(default_factory=RuleVariants)
    freeze_activations: bool = False
    freeze_norms: bool = False
    table: str = ""  # which of the paper's tables the row belongs to


def paper_methods(lmd_rules: str = "default") -> list[Method]:
    """The rows of Tables 1/7 (linearisation ablation), 2/8 (BN-LN variants), 6 (activation bias
    splitting) and 4 (SHAP). `lmd_rules`: a rule preset (models/rule_presets.py) other than the
    default adds its row to the linearisation table, `LMD (<preset> rules)`, after LMD's."""
    preset = (
        [Method(f"LMD ({lmd_rules} rules)", "lmd", rule_preset(lmd_rules), table="linearisation")]
        if lmd_rules != "default"
        else []
    )
    return [
        Method("Baseline", "frozen", table="linearisation"),
        Method("Act. only", "frozen", freeze_activations=True, table="linearisation"),
        Method("Norm. only", "frozen", freeze_norms=True, table="linearisation"),
        Method("LMD (Ratio Rule)", "lmd", RuleVariants(), table="linearisation"),
        *preset,
        Method(
            "Uniform - Identity",
            "lmd",
            RuleVariants(batchnorm="uniform", layernorm="identity"),
            table="variants",
        ),
        Method(
            "Identity - Identity",
            "lmd",
            RuleVariants(batchnorm="identity", layernorm="identity"),
            table="variants",
        ),
        Method(
            "Identity - Uniform",
            "lmd",
            RuleVariants(batchnorm="identity", layernorm="uniform"),
            table="variants",
        ),
        Method(
            "Identity - Ratio", "lmd", RuleVariants(batchnorm="identity", layernorm="ratio"), table="variants"
        ),
        Method("Sum-Splitting", "lmd", RuleVariants(activation_split="sum"), table="splitting"),
        Method("Ratio-Splitting", "lmd", RuleVariants(activation_split="ratio"), table="splitting"),
        Method("SHAP", "shap", table="shap"),
        Method("LMD + SHAP", "lmd_shap", table="shap"),
    ]


def modality_predictions(
    method: Method,
    fn: Callable,
    clean: dict[str, torch.Tensor],
    inputs: dict[str, torch.Tensor],
    output_key: str,
) -> dict[str, torch.Tensor]:
    """Per-modality predictions (each shaped like the output) of `method` at `inputs`, with the
    linearisation point `clean` where the method has one."""
    names = list(inputs)
    if method.kind == "lmd":
        with torch.no_grad():
            dec = decompose(fn, inputs, rules=method.rules, linearize_at=clean)[output_key]
        return dict(dec.components)
    if method.kind == "frozen":
        frozen = FrozenNetwork(
            fn, clean, method.freeze_activations, method.freeze_norms, method.rules.layernorm
        )
        # all variants in one call: [x, x without m1, x without m2, ...] along the batch dim
        variants = [inputs] + [
            {k: (torch.zeros_like(v) if k == m else v) for k, v in inputs.items()} for m in names
        ]
        stacked = {k: torch.cat([v[k] for v in variants]) for k in names}
        out = frozen(stacked, repeats=len(variants))[output_key]
        parts = out.chunk(len(variants))
        return {m: parts[0] - parts[1 + i] for i, m in enumerate(names)}
    if method.kind == "shap":
        return modality_shapley(fn, inputs, output_key)
    if method.kind == "lmd_shap":
        return lmd_shapley(fn, inputs, output_key, method.rules)
    raise ValueError(f"unknown method kind {method.kind!r}")


def perturbation_sets(modalities: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Which modalities are replaced together: one at a time for two modalities (Table 1), pairs
    for three (Table 7), each single one otherwise."""
    if len(modalities) == 3:
        return list(itertools.combinations(modalities, 2))
    return [(m,) for m in modalities]


def column_name(perturbed: tuple[str, ...], observed: str) -> str:
    return "".join(f"{LETTER.get(m, m)}_p" for m in perturbed) + "/" + LETTER.get(observed, observed)


def run_perturbation(
    fn: Callable,
    samples: Sequence[dict[str, torch.Tensor]],
    methods: Iterable[Method],
    output_key: str = "bev_logits",
    offsets: int = 12,
    spacing: int | None = None,
    batch: int = 8,
    progress: Callable[[int], None] | None = None,
    anchors: int | None = None,
) -> dict[str, dict[str, tuple[float, float]]]:
    """metrics[method][f"PCC {column}" or f"MSE {column}"] = (mean, std) over all pairs. `samples`
    is any sequence (eval.runner.EncodedFrames encodes on access); `anchors`: see perturbation_pairs."""
    modalities = tuple(samples[0])
    pairs = perturbation_pairs(len(samples), offsets, spacing, anchors)
    sets = perturbation_sets(modalities)
    results: dict[str, dict[str, tuple[float, float]]] = {}
    for method in methods:
        values: dict[str, list[float]] = {}
        for start in range(0, len(pairs), batch):
            chunk = pairs[start : start + batch]
            clean = {m: torch.cat([samples[k][m] for k, _ in chunk]) for m in modalities}
            before = modality_predictions(method, fn, clean, clean, output_key)
            for replaced in sets:
                perturbed = {
                    m: (torch.cat([samples[j][m] for _, j in chunk]) if m in replaced else clean[m])
                    for m in modalities
                }
                after = modality_predictions(method, fn, clean, perturbed, output_key)
                for observed in modalities:
                    col = column_name(replaced, observed)
                    values.setdefault(f"PCC {col}", []).extend(
                        pcc(after[observed], before[observed]).tolist()
                    )
                    values.setdefault(f"MSE {col}", []).extend(
                        mse(after[observed], before[observed]).tolist()
                    )
            if progress:
                progress(len(chunk))
        results[method.name] = {k: summarise(v) for k, v in values.items()}
    return results
