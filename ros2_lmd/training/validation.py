"""Validation of a fusion model on a prepared dataset: vehicle IoU with all sensors, with one
zeroed (the sensor lost) or with one alone, and the small fixed check set the tests re-run on the
shipped weights."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ros2_lmd.models.base import FusionModel
from ros2_lmd.training.data import VAL_SEED_BASE, batch_inputs, build_dataset, on_device, simulated_sample


@torch.no_grad()
def evaluate_iou(
    model: FusionModel,
    data: dict[str, torch.Tensor],
    drop: str | None = None,
    batch_size: int = 16,
    threshold: float = 0.5,
    only: str | None = None,
) -> float:
    """Vehicle IoU over the whole set (intersection and union summed over frames). With `drop`, that
    modality is marked absent (its features zeroed), as when the sensor is lost; with `only`, every
    other modality is: the prediction of that modality alone (the others at LMD's reference input)."""
    if drop is not None and only is not None:
        raise ValueError(f"evaluate_iou: give drop or only, not both (got drop={drop!r}, only={only!r})")
    for name in (drop, only):
        if name is not None and name not in model.modalities:
            raise ValueError(f"evaluate_iou: {name!r} is not a modality of the model {model.modalities}")
    absent = [drop] if drop is not None else [m for m in model.modalities if only is not None and m != only]
    model.eval()
    device = next(model.parameters()).device
    intersection = union = 0.0
    n = data["target"].shape[0]
    for start in range(0, n, batch_size):
        index = torch.arange(start, min(n, start + batch_size))
        inputs, target = on_device(device, *batch_inputs(data, index))
        if absent:
            inputs["present"] = inputs["present"].clone()
            for modality in absent:
                inputs["present"][:, model.modalities.index(modality)] = 0
        predicted = torch.sigmoid(model(inputs)["bev_logits"]) >= threshold
        truth = target >= 0.5
        intersection += float((predicted & truth).sum())
        union += float((predicted | truth).sum())
    return intersection / union if union else float("nan")


CHECK_FRAMES = 16  # the small fixed validation set the tests re-run on the shipped weights


def check_set_metrics(
    model: FusionModel,
    frames: int = CHECK_FRAMES,
    sample_fn: Callable = simulated_sample,
    start: int = VAL_SEED_BASE,
) -> dict:
    """IoU on the first `frames` validation scenes (samples `start`...), with all sensors and with
    each one zeroed."""
    data = build_dataset(model, range(start, start + frames), sample_fn, progress=False)
    return {
        "frames": frames,
        "iou": evaluate_iou(model, data),
        "iou_without": {m: evaluate_iou(model, data, drop=m) for m in model.modalities},
    }
