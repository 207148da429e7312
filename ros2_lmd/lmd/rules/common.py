"""What the Layer-Wise Modality Decomposition rule modules share: reading an op's arguments, the real
plane, plane-dim arithmetic and broadcasting, and the product rule for two decomposed tensors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ros2_lmd.lmd.tensor import Context, LMDTensor

T = torch.Tensor


def arg(args: tuple, kwargs: dict, index: int, name: str, default: Any = None) -> Any:
    """Argument `name` of an op call, passed at position `index` or by keyword."""
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def real(value: Any) -> Any:
    """The real activation of a decomposed value (plane 0); any other value unchanged."""
    return value._planes[0] if isinstance(value, LMDTensor) else value


def shift_dim(d: int, ndim: int) -> int:
    """Normalise a dim of the real tensor and shift it past the plane dim."""
    return (d % ndim) + 1 if ndim else 1


def broadcast_planes(p: T, shape: torch.Size) -> T:
    """Planes of a value broadcast to `shape` (the op's output shape), plane dim kept in front."""
    x_shape = p.shape[1:]
    if x_shape == shape:
        return p
    lead = len(shape) - len(x_shape)
    return p.reshape(p.shape[0], *([1] * lead), *x_shape).expand(p.shape[0], *shape)


def as_planes(ctx: Context, value: Any, like: T) -> T:
    """Planes of an operand: its own if decomposed, else those of a constant (all bias)."""
    return value._planes if isinstance(value, LMDTensor) else ctx.planes_of_constant(value, like)


def out_shape(a: Any, b: Any) -> torch.Size:
    """Broadcast shape of two operands of an element-wise op (decomposed, tensor or scalar)."""
    sa = real(a).shape if isinstance(real(a), torch.Tensor) else ()
    sb = real(b).shape if isinstance(real(b), torch.Tensor) else ()
    return torch.broadcast_shapes(sa, sb)


def bilinear(ctx: Context, op: Callable[[T, T], T], a: LMDTensor, b: LMDTensor) -> T:
    """Planes of op(a, b) for an op bilinear in (a, b) (paper App. D.2): real = op(real_a, real_b);
    modality m gets op(a_m, b_m); the bias (explicit mode) gets op(sum a, sum b) - sum_m op(a_m, b_m),
    i.e. every cross term, computed from the streams so conservation remains an independent check."""
    pa, pb = a._planes, b._planes
    real_out = op(pa[0], pb[0])
    M = ctx.num_modalities
    pairs = torch.vmap(op)(pa[ctx.mods], pb[ctx.mods]) if M else real_out.new_zeros((0, *real_out.shape))
    out = real_out.new_empty((ctx.num_planes, *real_out.shape))
    out[0] = real_out
    out[ctx.mods] = pairs
    if ctx.explicit_bias:
        out[ctx.bias_index] = op(pa[ctx.streams()].sum(0), pb[ctx.streams()].sum(0)) - pairs.sum(0)
    return out
