"""Named LMD rule configurations for the fusion networks here, selectable by name from the params
file, `analyze` and `evaluate`. `default` is the engine's single choice for every layer; `paper`
is the configuration of the LMD authors' code for the camera+radar+LiDAR Simple-BEV (see
docs/reference-comparison.md), which chooses the InstanceNorm rule per module."""

from __future__ import annotations

import dataclasses
from typing import Any

from ros2_lmd.lmd import INSTANCENORM_MODULES, ModuleMatch, ModuleRule, RuleVariants

RULE_PRESETS: dict[str, RuleVariants] = {
    "default": RuleVariants(),
    # Activations split by the real stream's gate, BatchNorm shift spread evenly over the streams,
    # InstanceNorm frozen (identity) in the decoder but centred per stream (ratio) in the BEV
    # compressor. The decoder's eps (1e-7) is the model's: simplebev_crml builds its norms with it.
    "paper": RuleVariants(
        batchnorm="uniform",
        activation_split="identity",
        per_module=(
            ModuleRule(ModuleMatch(INSTANCENORM_MODULES, "bev_compressor.*"), layernorm="ratio"),
            ModuleRule(ModuleMatch(INSTANCENORM_MODULES, "decoder.*"), layernorm="identity"),
        ),
    ),
}


def rule_preset(name: str, **changes: Any) -> RuleVariants:
    """The preset `name` (RULE_PRESETS), with `changes` to its global fields (e.g. bias='explicit')."""
    if name not in RULE_PRESETS:
        raise ValueError(f"unknown LMD rule preset {name!r}; known: {sorted(RULE_PRESETS)}")
    return dataclasses.replace(RULE_PRESETS[name], **changes)
