"""Foreign checkpoints into the project's model files (safetensors weights + JSON config): the
official Simple-BEV checkpoints, read with torch.load(weights_only=True) and checked key by key
against the reimplementation in models/simplebev.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ros2_lmd.geometry.grid import BEVGrid
from ros2_lmd.models.base import ModelConfig, check_state_dict
from ros2_lmd.models.io import save_model
from ros2_lmd.models.simplebev import (
    DEFAULT_GRID,
    OFFICIAL_IMAGE_SIZE,
    SimpleBEV,
    fold_reference_aliases,
    infer_simplebev_variant,
    simplebev_config,
)


def convert_simplebev_checkpoint(
    src_path: str | Path, dst_path: str | Path, variant: str | None = None, **overrides: Any
) -> ModelConfig:
    """Convert an official Simple-BEV checkpoint, or one of the LMD paper's three-modality network
    (camera + meta radar + LiDAR: variant crml), (.pth/.ckpt) into `<dst>.safetensors` +
    `<dst>.json`. The variant (c/cr/crm/cl/crml), encoder and latent_dim are read from the weights unless
    given; `overrides` adjust the config (grid, image_size, camera_names, ...). Images default to
    OFFICIAL_IMAGE_SIZE, the grid to the official 200 x 8 x 200 over +-50 m (DEFAULT_GRID) and the
    cameras to the official order (NUSCENES_CAMERAS). Raises ValueError listing mismatching keys by
    name. The only torch.load in the project, with weights_only=True."""
    src_path = Path(src_path)
    try:
        checkpoint = torch.load(src_path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for corrupt / non-weights files
        raise ValueError(f"cannot read {src_path} as a weights-only torch checkpoint: {error}") from error
    if isinstance(checkpoint, dict) and "model_state_dict" in checkpoint:
        checkpoint = checkpoint["model_state_dict"]
    if not isinstance(checkpoint, dict) or not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise ValueError(f"{src_path}: expected a state_dict (or a dict with 'model_state_dict')")
    # Checkpoints saved from DataParallel prefix every key with "module.".
    state_dict = {k[len("module.") :] if k.startswith("module.") else k: v for k, v in checkpoint.items()}
    # The LMD paper's network (variant crml) names some decoder modules twice: one copy is checked
    # against the other and dropped, every remaining key must match the model.
    state_dict = fold_reference_aliases(state_dict, str(src_path))
    overrides.setdefault("image_size", OFFICIAL_IMAGE_SIZE)
    grid = overrides.get("grid", DEFAULT_GRID)
    z_bins = grid.z_bins if isinstance(grid, BEVGrid) else int(grid["z_bins"])
    if variant is None:
        variant, inferred = infer_simplebev_variant(state_dict, z_bins)
        overrides = {**inferred, **overrides}
    model = SimpleBEV(simplebev_config(variant, **overrides))
    check_state_dict(model, state_dict, str(src_path))
    model.load_state_dict(state_dict, strict=True)
    save_model(model, dst_path, metadata={"source": src_path.name})
    return model.config
