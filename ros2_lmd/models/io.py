"""Model files: `<path>.safetensors` (weights; metadata records architecture and variant) beside
`<path>.json` (the ModelConfig). Loading never unpickles; every failure names the file and what was
wrong with it."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ros2_lmd.models.base import FusionModel, ModelConfig, check_state_dict
from ros2_lmd.models.registry import ARCHITECTURES, MODEL_NAMES, model_from_config, weights_path

FORMAT = "ros2_lmd.model/1"
_SUFFIXES = (".safetensors", ".json")


def _base(path: str | Path) -> Path:
    """`x`, `x.safetensors` and `x.json` all name the model `x`."""
    path = Path(path)
    return path.with_suffix("") if path.suffix in _SUFFIXES else path


def model_files(path: str | Path) -> tuple[Path, Path]:
    """(weights, config) file paths of a model path."""
    base = _base(path)
    return base.parent / f"{base.name}.safetensors", base.parent / f"{base.name}.json"


def save_model(
    model: FusionModel, path: str | Path, metadata: dict[str, str] | None = None
) -> tuple[Path, Path]:
    """Write `<path>.safetensors` and `<path>.json`; returns both paths."""
    weights, config_file = model_files(path)
    weights.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    info = {
        "format": FORMAT,
        "architecture": model.config.architecture,
        "variant": model.config.variant,
        "config": model.config.to_json(),
        **{str(k): str(v) for k, v in (metadata or {}).items()},
    }
    save_file(tensors, str(weights), metadata=info)
    config_file.write_text(model.config.to_json() + "\n")
    return weights, config_file


def read_config(path: str | Path) -> ModelConfig:
    """The ModelConfig stored beside a weights file, with errors naming the file."""
    _, config_file = model_files(path)
    if not config_file.is_file():
        raise FileNotFoundError(
            f"model config {config_file} is missing (every .safetensors model "
            "needs its .json config beside it)"
        )
    try:
        values = json.loads(config_file.read_text())
        config = ModelConfig.from_dict(values)
    except (json.JSONDecodeError, TypeError, ValueError) as error:
        raise ValueError(f"model config {config_file} is invalid: {error}") from error
    if config.architecture not in ARCHITECTURES:
        raise ValueError(
            f"model config {config_file} names unknown architecture "
            f"{config.architecture!r}; known: {sorted(ARCHITECTURES)}"
        )
    return config


def _read_weights(weights: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        with safe_open(str(weights), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as error:  # safetensors raises its own error types for malformed headers
        raise ValueError(f"{weights} is not a readable safetensors file: {error}") from error
    return tensors, metadata


def load_model(name_or_path: str | Path, device: torch.device | str = "cpu") -> FusionModel:
    """Load a model by registry name (shipped weights in ros2_lmd/models/weights/) or by path
    (`x`, `x.safetensors` or `x.json`). Returns it in eval mode on `device`."""
    if isinstance(name_or_path, str) and name_or_path in MODEL_NAMES:
        weights, _ = model_files(weights_path(name_or_path))
        if not weights.is_file():
            raise FileNotFoundError(
                f"no shipped weights for model {name_or_path!r}: {weights} does not exist yet "
                f"(weights come from training; build_model({name_or_path!r}) gives a randomly "
                "initialised model)"
            )
    else:
        weights, _ = model_files(name_or_path)
        if not weights.is_file():
            raise FileNotFoundError(
                f"model weights {weights} not found ({name_or_path!r} is neither "
                f"a file nor a registry name; known names: {list(MODEL_NAMES)})"
            )
    config = read_config(weights)
    tensors, metadata = _read_weights(weights)
    for key in ("architecture", "variant"):
        if key in metadata and metadata[key] != getattr(config, key):
            raise ValueError(
                f"{weights} was saved as {key} {metadata[key]!r} but its config says {getattr(config, key)!r}"
            )
    model = model_from_config(config)
    check_state_dict(model, tensors, str(weights))
    model.load_state_dict(tensors, strict=True)
    return model.to(device).eval()
