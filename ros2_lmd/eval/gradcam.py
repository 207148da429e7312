"""Modality Grad-CAM (App. E.3, eq. 20-21): Grad-CAM computed on the modality-only activations that
LMD records at a layer. The weights alpha_k are the spatial mean of the gradient of the fused output
summed over a BEV region with respect to the layer's (real) activation; the map is
ReLU(sum_k alpha_k * component_m^k) at that layer."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ros2_lmd.lmd import RuleVariants, decompose


def _layer_gradient(
    model: nn.Module,
    fn: Callable,
    features: dict[str, torch.Tensor],
    layer: str,
    output_key: str | None,
    region: torch.Tensor,
) -> torch.Tensor:
    """d(sum over region of the output) / d(activation of `layer`), at the real input (eq. 21)."""
    module = dict(model.named_modules())[layer]
    captured: dict[str, torch.Tensor] = {}

    def hook(_module, _inputs, output):
        output.retain_grad()
        captured["activation"] = output

    handle = module.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            inputs = {m: x.detach().clone() for m, x in features.items()}
            out = fn(inputs)
            out = out[output_key] if output_key else out
            target = (out * region.to(out.dtype)).sum()
            activation = captured["activation"]
            (grad,) = torch.autograd.grad(target, activation)
    finally:
        handle.remove()
    return grad


def modality_gradcam(
    model: nn.Module,
    fn: Callable,
    features: dict[str, torch.Tensor],
    layer: str,
    region: torch.Tensor,
    output_key: str | None = None,
    rules: RuleVariants | None = None,
) -> dict[str, torch.Tensor]:
    """One (B, H, W) map per modality for the BEV `region` (a 0/1 mask broadcastable to the output)."""
    grad = _layer_gradient(model, fn, features, layer, output_key, region)
    alpha = grad.mean(dim=tuple(range(2, grad.dim())), keepdim=True)  # (B, K, 1, 1): eq. 19 / 21
    with torch.no_grad():
        dec = decompose(fn, features, rules=rules or RuleVariants(), record=[layer], module=model)
    dec = dec[output_key] if output_key else dec
    layer_dec = dec.layers[layer]
    return {m: torch.relu((alpha * layer_dec.components[m]).sum(1)) for m in features}
