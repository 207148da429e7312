"""Model names -> architectures and configs. `build_model(name)` gives a randomly initialised model
(tests, training); `load_model` in io.py resolves the same names to shipped weights in
`ros2_lmd/models/weights/<name>.safetensors` (+ `.json`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ros2_lmd.models.base import FusionModel, ModelConfig
from ros2_lmd.models.compact import CompactFusion, compact_config
from ros2_lmd.models.simplebev import SimpleBEV, simplebev_config

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

ARCHITECTURES: dict[str, type[FusionModel]] = {
    "compact": CompactFusion,
    "simplebev": SimpleBEV,
}
_CONFIG_FACTORIES: dict[str, Callable[..., ModelConfig]] = {
    "compact": compact_config,
    "simplebev": simplebev_config,
}
# Registry name -> (architecture, variant).
MODEL_NAMES: dict[str, tuple[str, str]] = {
    "compact_cr": ("compact", "cr"),
    "compact_cl": ("compact", "cl"),
    "compact_crl": ("compact", "crl"),
    "simplebev_c": ("simplebev", "c"),
    "simplebev_cr": ("simplebev", "cr"),
    "simplebev_crm": ("simplebev", "crm"),
    "simplebev_cl": ("simplebev", "cl"),
    "simplebev_crml": ("simplebev", "crml"),
}
DEFAULT_MODEL = "compact_crl"


def available_models() -> list[str]:
    """Registry names, in a stable order."""
    return list(MODEL_NAMES)


def _resolve(name: str) -> tuple[str, str]:
    if name not in MODEL_NAMES:
        raise KeyError(f"unknown model name {name!r}; known: {available_models()}")
    return MODEL_NAMES[name]


def default_config(name: str, **overrides: Any) -> ModelConfig:
    """The config a registry name builds, with optional overrides (config fields or params)."""
    architecture, variant = _resolve(name)
    return _CONFIG_FACTORIES[architecture](variant, **overrides)


def model_from_config(config: ModelConfig) -> FusionModel:
    """Instantiate (randomly initialised) the architecture a config names."""
    if config.architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {config.architecture!r}; known: {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[config.architecture](config)


def build_model(name: str, **overrides: Any) -> FusionModel:
    """A randomly initialised model by registry name, in eval mode."""
    return model_from_config(default_config(name, **overrides)).eval()


def weights_path(name: str) -> Path:
    """Where the shipped weights of a registry name live (without suffix)."""
    _resolve(name)
    return WEIGHTS_DIR / name
