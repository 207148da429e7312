"""Fusion networks behind one contract (`encode` per modality, `fuse` for LMD), their weights
(safetensors + JSON config) and the registry of names (compact_*, simplebev_*)."""

from ros2_lmd.models.base import FusionModel, ModelConfig
from ros2_lmd.models.conversion import convert_simplebev_checkpoint
from ros2_lmd.models.io import load_model, read_config, save_model
from ros2_lmd.models.registry import (
    DEFAULT_MODEL,
    available_models,
    build_model,
    default_config,
    model_from_config,
    weights_path,
)
from ros2_lmd.models.rule_presets import RULE_PRESETS, rule_preset

__all__ = [
    "FusionModel",
    "ModelConfig",
    "load_model",
    "read_config",
    "save_model",
    "DEFAULT_MODEL",
    "available_models",
    "build_model",
    "default_config",
    "model_from_config",
    "weights_path",
    "convert_simplebev_checkpoint",
    "RULE_PRESETS",
    "rule_preset",
]
