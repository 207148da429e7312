"""Partially linearised networks for the paper's baselines (Table 1, Table 7): the original network
with chosen layer families frozen at a clean input's linearisation point, the rest still reacting
to the input. Freezing everything gives an affine network F~, and F~(x) - F~(x without m) is then
exactly LMD's component m; freezing nothing gives the plain network (the "Baseline").

Frozen activation: y = c * x + f(0), with c the clean secant slope (eq. 9). Frozen normalisation
with statistics of the input (LayerNorm / InstanceNorm / GroupNorm): the clean variance is held;
the centring stays live under the ratio rule (it is linear) and uses the clean mean otherwise.
BatchNorm in eval is already fixed. Implemented as a record pass and a replay pass with
TorchFunctionMode, so no model code changes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ros2_lmd.lmd import ACTIVATIONS, op_argument, value_and_slope_at_zero

_ACTIVATIONS = set(ACTIVATIONS) | {F.softmax, torch.softmax, torch.Tensor.softmax}
_NORMS = {F.layer_norm, F.instance_norm, F.group_norm}


def _norm_groups(
    func, args, kwargs, x: torch.Tensor
) -> tuple[tuple[int, ...], torch.Tensor | None, torch.Tensor | None, float]:
    """(grouping shape, weight view, bias view, eps) of a statistics norm call."""
    if func is F.layer_norm:
        shape = op_argument(args, kwargs, 1, "normalized_shape")
        k = len(shape) if isinstance(shape, (tuple, list, torch.Size)) else 1
        weight, bias, eps = (
            op_argument(args, kwargs, 2, "weight"),
            op_argument(args, kwargs, 3, "bias"),
            op_argument(args, kwargs, 4, "eps", 1e-5),
        )
        return (*x.shape[: x.dim() - k], -1), weight, bias, eps
    view = [-1] + [1] * (x.dim() - 2)
    if func is F.instance_norm:
        weight, bias, eps = (
            op_argument(args, kwargs, 3, "weight"),
            op_argument(args, kwargs, 4, "bias"),
            op_argument(args, kwargs, 7, "eps", 1e-5),
        )
        groups = (*x.shape[:2], -1)
    else:
        groups_n = op_argument(args, kwargs, 1, "num_groups")
        weight, bias, eps = (
            op_argument(args, kwargs, 2, "weight"),
            op_argument(args, kwargs, 3, "bias"),
            op_argument(args, kwargs, 4, "eps", 1e-5),
        )
        groups = (x.shape[0], groups_n, -1)
    return (
        groups,
        None if weight is None else weight.view(view),
        None if bias is None else bias.view(view),
        eps,
    )


class _Record(TorchFunctionMode):
    def __init__(self, activations: bool, norms: bool) -> None:
        super().__init__()
        self.activations, self.norms = activations, norms
        self.cache: list[Any] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.activations and func in _ACTIVATIONS:
            x = args[0].clone()
            out = func(*args, **kwargs)
            if func in (F.softmax, torch.softmax, torch.Tensor.softmax):
                f0, slope0 = torch.zeros((), dtype=x.dtype), torch.zeros((), dtype=x.dtype)
            else:
                f0, slope0, _ = value_and_slope_at_zero(func, tuple(args[1:]), kwargs, x)
            small = x.abs() <= torch.finfo(x.dtype).tiny
            c = torch.where(small, slope0, (out - f0) / torch.where(small, torch.ones_like(x), x))
            # The residual out - c*x (== f(0) up to rounding) keeps the frozen layer exact at the point.
            self.cache.append((c, out - c * x))
            return out
        if self.norms and func in _NORMS:
            x = args[0]
            groups, _, _, eps = _norm_groups(func, args, kwargs, x)
            g = x.reshape(groups)
            self.cache.append(
                (g.mean(-1, keepdim=True), torch.rsqrt(g.var(-1, unbiased=False, keepdim=True) + eps))
            )
        return func(*args, **kwargs)


class _Replay(TorchFunctionMode):
    def __init__(
        self, cache: list[Any], activations: bool, norms: bool, norm_rule: str, repeats: int
    ) -> None:
        super().__init__()
        self.cache = iter(cache)
        self.activations, self.norms, self.norm_rule, self.repeats = activations, norms, norm_rule, repeats

    def _tile(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        # replayed inputs may stack several variants along the batch dim
        return t.repeat(self.repeats, *([1] * (t.dim() - 1))) if t.dim() and t.shape[0] != x.shape[0] else t

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.activations and func in _ACTIVATIONS:
            c, residual = next(self.cache)
            x = args[0]
            return x * self._tile(c, x) + self._tile(residual, x)
        if self.norms and func in _NORMS:
            mean, inv_std = next(self.cache)
            x = args[0]
            groups, weight, bias, _ = _norm_groups(func, args, kwargs, x)
            g = x.reshape(groups)
            centre = g.mean(-1, keepdim=True) if self.norm_rule == "ratio" else self._tile(mean, g)
            y = ((g - centre) * self._tile(inv_std, g)).reshape(x.shape)
            if weight is not None:
                y = y * weight
            return y + bias if bias is not None else y
        return func(*args, **kwargs)


class FrozenNetwork:
    """`fn` with activations and/or statistics norms frozen at `clean` (a dict of batched features).
    Call it on inputs of the same shape, or on `repeats` variants stacked along the batch dim."""

    def __init__(
        self,
        fn: Callable[[dict[str, torch.Tensor]], Any],
        clean: dict[str, torch.Tensor],
        freeze_activations: bool,
        freeze_norms: bool,
        norm_rule: str = "ratio",
    ) -> None:
        self.fn = fn
        self.freeze_activations, self.freeze_norms, self.norm_rule = (
            freeze_activations,
            freeze_norms,
            norm_rule,
        )
        recorder = _Record(freeze_activations, freeze_norms)
        with torch.no_grad(), recorder:
            self.clean_output = fn(clean)
        self.cache = recorder.cache

    def __call__(self, features: dict[str, torch.Tensor], repeats: int = 1) -> Any:
        with (
            torch.no_grad(),
            _Replay(self.cache, self.freeze_activations, self.freeze_norms, self.norm_rule, repeats),
        ):
            return self.fn(features)
