"""Layer-Wise Modality Decomposition rules for the non-linear layers, linearised at the real activation:
element-wise activations (secant slope, eq. 9; bias splitting, App. C), normalisation (eq. 10, 11,
App. B.3) and max selections (max pooling, max/min). The real output is always computed by the original op."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from ros2_lmd.lmd.registry import Rule, register_rule
from ros2_lmd.lmd.rules.common import arg, as_planes, broadcast_planes, out_shape, shift_dim
from ros2_lmd.lmd.tensor import Context, LMDRuleError, LMDTensor, op_name

T = torch.Tensor

# --- activations ----------------------------------------------------------------------------------

# f(0) and f'(0) per (function, constant arguments, dtype, device); activations are few, so this
# cache stays tiny.
_AT_ZERO: dict[tuple, tuple[T, T, bool]] = {}


def _constants_key(args: tuple, kwargs: dict) -> tuple:
    def freeze(v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            return ("tensor", tuple(v.flatten().tolist()) if v.numel() <= 16 else id(v))
        return v

    return tuple(freeze(a) for a in args) + tuple(
        (k, freeze(v)) for k, v in sorted(kwargs.items()) if k != "inplace"
    )


def value_and_slope_at_zero(func: Callable, rest: tuple, kwargs: dict, like: T) -> tuple[T, T, bool]:
    """f(0) (routed to the bias stream) and f'(0) (the slope used where the input is ~0, the limit of
    the secant), the latter by autograd in float64 outside any inference_mode of the caller. Both
    are 0-dim, or, for an op with a parameter per channel (nn.PReLU(num_parameters=C): it refuses a
    0-dim input), of shape (1, C, 1, ...) to broadcast against `like`."""
    key = (func, _constants_key(rest, kwargs), like.dtype, like.device, like.shape[1:2])
    if key not in _AT_ZERO:
        kw = {k: v for k, v in kwargs.items() if k != "inplace"}
        rest64 = tuple(
            r.double() if isinstance(r, torch.Tensor) and r.is_floating_point() else r for r in rest
        )
        per_channel = (1, like.shape[1], *([1] * (like.dim() - 2))) if like.dim() >= 2 else None
        with torch.inference_mode(False), torch.enable_grad():
            for shape in ((), per_channel):
                if shape is None:
                    raise LMDRuleError(
                        f"{op_name(func)}: cannot evaluate it at zero for input shape {tuple(like.shape)}"
                    )
                zero = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
                try:
                    value = func(zero.clone(), *rest64, **kw)
                except RuntimeError:
                    if shape:
                        raise
                    continue  # a parameter per channel: probe with the channel dimension
                break
            (slope,) = torch.autograd.grad(value.sum(), zero, allow_unused=True)
            slope = torch.zeros_like(zero) if slope is None else slope
        _AT_ZERO[key] = (
            value.detach().to(like.dtype).to(like.device),
            slope.detach().to(like.dtype).to(like.device),
            bool((value == 0).all()),
        )
    return _AT_ZERO[key]


def _split_weights(ctx: Context, mods: T, bias: T) -> T:
    """Share of the activation-input bias handed to each modality (App. C), shape (M, *x).
    Zero where a neuron fails the rule's condition; the rest of the bias stays in the bias stream."""
    rule = ctx.rules.activation_split
    M = mods.shape[0]
    pos = mods > 0
    neg = mods < 0
    bias_pos, bias_neg = bias > 0, bias < 0
    if rule == "sum":
        # App. C.1 for M modalities: the bias goes to the one modality that shares its sign while
        # every other modality has the opposite sign (the modality that "triggered" the neuron).
        same = torch.where(bias_pos, pos, torch.where(bias_neg, neg, torch.zeros_like(pos)))
        opposite = torch.where(bias_pos, neg, torch.where(bias_neg, pos, torch.zeros_like(pos)))
        unique = same & (same.sum(0, keepdim=True) == 1) & (opposite.sum(0, keepdim=True) == M - 1)
        return unique.to(mods.dtype)
    # ratio, App. C.2: all modalities share a sign. Same sign as the bias -> each takes the bias in
    # proportion to |h_m|; opposite sign -> in the complementary proportion (for M = 2 the paper's
    # alpha / 1 - alpha swap). As in the paper, eps goes to the first modality's weight, so the
    # weights (|h_1| + eps, |h_2|, ...) / (sum|h| + eps) sum to one exactly and M = 2 is eq. C.2.
    eps = ctx.rules.split_eps
    magnitude = mods.abs()
    weights = magnitude / (magnitude.sum(0, keepdim=True) + eps)
    weights[0] = 1 - weights[1:].sum(0)
    all_pos, all_neg = pos.all(0), neg.all(0)
    agree = (all_pos & bias_pos) | (all_neg & bias_neg)
    disagree = (all_pos & bias_neg) | (all_neg & bias_pos)
    complementary = (1 - weights) / (M - 1) if M > 1 else weights
    zero = torch.zeros_like(weights)
    return torch.where(agree, weights, torch.where(disagree, complementary, zero))


def apply_activation(
    ctx: Context, x: LMDTensor, out_real: T, f0: T, slope0: T, zero_tol: float, inplace: bool = False
) -> T:
    """Planes of f(x) given the real output. c = (f(A) - f(0)) / A (f'(0) where |A| <= zero_tol):
    every stream is scaled by c; f(0), and whatever c * A misses of f(A) - f(0), go to the bias.
    With `inplace` (ReLU(inplace=True) and friends) the planes of x are overwritten."""
    p = x._planes
    A = p[0]
    small = A.abs() <= zero_tol
    c = torch.where(small, slope0, (out_real - f0) / torch.where(small, torch.ones_like(A), A))
    M = ctx.num_modalities
    if inplace and ctx.rules.activation_split == "identity":
        # no new planes: scale the streams where they are, the real plane last (A is a view of it)
        if ctx.explicit_bias:
            residual = out_real - c * A
            p[ctx.bias_index].mul_(c).add_(residual)
        p[ctx.mods].mul_(c)
        p[0].copy_(out_real)
        return p
    out = torch.empty_like(p)
    out[0] = out_real
    mods = p[ctx.mods]
    if ctx.rules.activation_split == "identity":
        out[ctx.mods] = mods * c
        if ctx.explicit_bias:
            out[ctx.bias_index] = c * p[ctx.bias_index] + (out_real - c * A)
        return out
    bias_in = ctx.bias_stream(p)
    if ctx.split_replay is not None:
        weights = next(ctx.split_replay)
    else:
        weights = _split_weights(ctx, mods, bias_in)
        if ctx.split_record is not None:
            ctx.split_record.append(weights)
    out[ctx.mods] = (mods + weights * bias_in) * c
    if ctx.explicit_bias:
        kept = 1 - weights.sum(0) if M else torch.ones_like(A)
        out[ctx.bias_index] = c * kept * bias_in + (out_real - c * A)
    return out


def _activation_rule(ctx: Context, func: Callable, args: tuple, kwargs: dict) -> Any:
    x = args[0]
    if not isinstance(x, LMDTensor) or any(isinstance(a, LMDTensor) for a in args[1:]):
        raise LMDRuleError(f"{op_name(func)}: only the first argument may be decomposed")
    rest = args[1:]
    real_in = x._planes[0]
    real_out = func(real_in.clone(), *rest, **kwargs)  # clone: in-place variants must not touch it
    f0, slope0, f0_is_zero = value_and_slope_at_zero(func, rest, kwargs, real_in)
    # Near A = 0 the secant's numerator cancels; where f(0) = 0 only exact zeros need the slope.
    tol = torch.finfo(real_in.dtype).tiny if f0_is_zero else math.sqrt(torch.finfo(real_in.dtype).eps)
    inplace = func in _INPLACE_ACTIVATIONS or bool(kwargs.get("inplace")) or _positional_inplace(func, args)
    out = apply_activation(ctx, x, real_out, f0, slope0, tol, inplace=inplace)
    if inplace:
        if out is not x._planes:
            x._planes.copy_(out)
        return x
    return ctx.wrap(out)


def _positional_inplace(func: Callable, args: tuple) -> bool:
    position = _INPLACE_POSITION.get(func)
    return position is not None and len(args) > position and bool(args[position])


def _softmax_rule(ctx: Context, func: Callable, args: tuple, kwargs: dict) -> LMDTensor:
    """Softmax linearised as an activation (App. D.2): c = softmax(A) / A, f(0) taken as 0; where
    A is ~0 the output goes to the bias stream."""
    x = args[0]
    real_in = x._planes[0]
    real_out = func(real_in, *args[1:], **kwargs)
    zero = torch.zeros((), dtype=real_in.dtype, device=real_in.device)
    out = apply_activation(ctx, x, real_out, zero, zero, torch.finfo(real_in.dtype).tiny)
    return ctx.wrap(out)


# positional index of the `inplace` flag for F functions that take it positionally
_INPLACE_POSITION = {
    F.relu: 1,
    F.relu6: 1,
    F.selu: 1,
    F.silu: 1,
    F.mish: 1,
    F.hardswish: 1,
    F.hardsigmoid: 1,
    F.leaky_relu: 2,
    F.elu: 2,
    F.celu: 2,
    F.hardtanh: 3,
    F.rrelu: 4,
    F.threshold: 3,
}
_INPLACE_ACTIVATIONS: set[Callable] = {
    torch.relu_,
    T.relu_,
    F.relu_,
    F.leaky_relu_,
    F.elu_,
    F.hardtanh_,
    F.rrelu_,
    torch.sigmoid_,
    T.sigmoid_,
    torch.tanh_,
    T.tanh_,
    T.clamp_,
    torch.clamp_,
    T.clip_,
    torch.clip_,
    torch.threshold_,  # F.threshold_ is this same function (torch's stubs only declare this name)
}


# --- normalisation --------------------------------------------------------------------------------


def _bn_like(ctx: Context, x: LMDTensor, out_real: T, scale: T, shift: T, channel_dim: int) -> T:
    """A fixed affine map y = scale * x + shift per channel (BatchNorm in eval, or any norm whose
    statistics are frozen). identity: the shift goes to the bias stream (eq. 10); uniform: each of
    the M + 1 streams takes shift / (M + 1) (section 4.2.4)."""
    p = x._planes
    view = [1] * p.dim()
    view[channel_dim + 1] = -1
    scale, shift = scale.reshape(view), shift.reshape(view)
    out = p * scale
    out[0] = out_real
    if ctx.rules.batchnorm == "uniform":
        share = shift / (ctx.num_modalities + 1)
        out[ctx.streams()] += share
    elif ctx.explicit_bias:
        out[ctx.bias_index] += shift[0]
    return out


def _batch_norm_rule(ctx: Context, func: Callable, args: tuple, kwargs: dict) -> LMDTensor:
    x = args[0]
    running_mean, running_var = arg(args, kwargs, 1, "running_mean"), arg(args, kwargs, 2, "running_var")
    weight, bias = arg(args, kwargs, 3, "weight"), arg(args, kwargs, 4, "bias")
    training = arg(args, kwargs, 5, "training", False)
    eps = arg(args, kwargs, 7, "eps", 1e-5)
    if training or running_mean is None:
        raise LMDRuleError(
            "batch_norm with batch statistics (training mode, or "
            "track_running_stats=False) has no LMD rule: call model.eval() on a "
            "model with running statistics"
        )
    real = x._planes[0]
    out_real = F.batch_norm(real, running_mean, running_var, weight, bias, False, 0.0, eps)
    scale = torch.rsqrt(running_var + eps)
    if weight is not None:
        scale = scale * weight
    shift = -running_mean * scale
    if bias is not None:
        shift = shift + bias
    return ctx.wrap(_bn_like(ctx, x, out_real, scale, shift, channel_dim=1 if real.dim() > 1 else 0))


def _stat_norm(
    ctx: Context,
    x: LMDTensor,
    out_real: T,
    groups_shape: tuple[int, ...],
    eps: float,
    weight: T | None,
    bias: T | None,
) -> T:
    """Norms with statistics of the current input (LayerNorm, InstanceNorm, GroupNorm).
    `groups_shape` reshapes x so that its last dim holds one normalisation group; weight and bias
    are already shaped to broadcast against x. The real mean and variance fix the linearisation."""
    p = x._planes
    x_shape = p.shape[1:]
    g = p.reshape(p.shape[0], *groups_shape)
    mean = g[0].mean(-1, keepdim=True)
    inv_std = torch.rsqrt(g[0].var(-1, unbiased=False, keepdim=True) + eps)
    streams = g[ctx.streams()]
    rule = ctx.rules.layernorm
    if rule == "ratio":  # eq. 11 / App. B.3: each stream centred on its own mean
        streams = (streams - streams.mean(-1, keepdim=True)) * inv_std
    else:  # identity / uniform: mean and variance frozen at the real input, as for BatchNorm
        streams = streams * inv_std
    streams = streams.reshape(-1, *x_shape)
    if weight is not None:
        streams = streams * weight
    out = torch.empty_like(p)
    out[0] = out_real
    out[ctx.streams()] = streams
    # the modality-independent part: beta always; with frozen statistics also -gamma * mean / std
    constant = torch.zeros_like(p[0]) if bias is None else bias.expand(x_shape).clone()
    if rule != "ratio":
        centre = (-mean * inv_std).expand(g[0].shape).reshape(x_shape)
        constant += centre * weight if weight is not None else centre
    if rule == "uniform":
        out[ctx.streams()] += constant / (ctx.num_modalities + 1)
    elif ctx.explicit_bias:
        out[ctx.bias_index] += constant
    return out


def _channel_affine(param: T | None, x_dim: int, channel_dim: int) -> T | None:
    if param is None:
        return None
    view = [1] * (x_dim - channel_dim)
    view[0] = -1
    return param.reshape(view)


def _instance_norm_rule(ctx: Context, func: Callable, args: tuple, kwargs: dict) -> LMDTensor:
    x = args[0]
    running_mean, running_var = arg(args, kwargs, 1, "running_mean"), arg(args, kwargs, 2, "running_var")
    weight, bias = arg(args, kwargs, 3, "weight"), arg(args, kwargs, 4, "bias")
    use_input_stats = arg(args, kwargs, 5, "use_input_stats", True)
    eps = arg(args, kwargs, 7, "eps", 1e-5)
    real = x._planes[0]
    if not use_input_stats:  # eval with tracked statistics: a fixed affine map, like BatchNorm
        out_real = F.instance_norm(real, running_mean, running_var, weight, bias, False, 0.0, eps)
        scale = torch.rsqrt(running_var + eps) * (weight if weight is not None else 1)
        shift = -running_mean * scale + (bias if bias is not None else 0)
        return ctx.wrap(_bn_like(ctx, x, out_real, scale, shift, channel_dim=1))
    # Never pass running stats here: with use_input_stats they would be updated (model modified).
    out_real = F.instance_norm(real, None, None, weight, bias, True, 0.0, eps)
    groups = (*real.shape[:2], -1)  # (B, C, spatial...) -> one group per (b, c)
    return ctx.wrap(
        _stat_norm(
            ctx,
            x,
            out_real,
            groups,
            eps,
            _channel_affine(weight, real.dim(), 1),
            _channel_affine(bias, real.dim(), 1),
        )
    )


def _layer_norm_rule(ctx: Context, func: Callable, args: tuple, kwargs: dict) -> LMDTensor:
    x = args[0]
    normalized_shape = arg(args, kwargs, 1, "normalized_shape")
    weight, bias = arg(args, kwargs, 2, "weight"), arg(args, kwargs, 3, "bias")
    eps = arg(args, kwargs, 4, "eps", 1e-5)
    real = x._planes[0]
    out_real = F.layer_norm(real, normalized_shape, weight, bias, eps)
    k = len(normalized_shape) if isinstance(normalized_shape, (tuple, list, torch.Size)) else 1
    groups = (*real.shape[: real.dim() - k], -1)
    return ctx.wrap(_stat_norm(ctx, x, out_real, groups, eps, weight, bias))


def _group_norm_rule(ctx: Context, func: Callable, args: tuple, kwargs: dict) -> LMDTensor:
    x = args[0]
    num_groups = arg(args, kwargs, 1, "num_groups")
    weight, bias = arg(args, kwargs, 2, "weight"), arg(args, kwargs, 3, "bias")
    eps = arg(args, kwargs, 4, "eps", 1e-5)
    real = x._planes[0]
    out_real = F.group_norm(real, num_groups, weight, bias, eps)
    groups = (real.shape[0], num_groups, -1)
    return ctx.wrap(
        _stat_norm(
            ctx,
            x,
            out_real,
            groups,
            eps,
            _channel_affine(weight, real.dim(), 1),
            _channel_affine(bias, real.dim(), 1),
        )
    )


def _rms_norm_rule(ctx: Context, func: Callable, args: tuple, kwargs: dict) -> LMDTensor:
    """RMSNorm has no centring: the real RMS is held fixed (the ratio idea); no bias term."""
    x = args[0]
    normalized_shape = arg(args, kwargs, 1, "normalized_shape")
    weight = arg(args, kwargs, 2, "weight")
    eps = arg(args, kwargs, 3, "eps")
    p = x._planes
    real = p[0]
    out_real = F.rms_norm(real, normalized_shape, weight, eps)
    k = len(normalized_shape) if isinstance(normalized_shape, (tuple, list, torch.Size)) else 1
    dims = tuple(range(real.dim() - k, real.dim()))
    eps_value = torch.finfo(real.dtype).eps if eps is None else eps
    inv_rms = torch.rsqrt(real.pow(2).mean(dims, keepdim=True) + eps_value)
    out = p * inv_rms
    if weight is not None:
        out = out * weight
    out[0] = out_real
    return ctx.wrap(out)


# --- max selections: the real activation picks, every plane follows ----------------------------


def _max_pool_rule(
    with_indices: Callable, spatial_dims: int, return_indices_at: int, always_indices: bool
) -> Rule:
    """The rule for one max-pooling function: `with_indices`, the torch function that also returns
    the indices, picks the maxima on the real plane and every plane is gathered there.
    `return_indices_at` is the position of the function's `return_indices` flag; the *_with_indices
    functions return the indices whatever the flag says (`always_indices`)."""

    def rule(ctx: Context, func: Callable, args: tuple, kwargs: dict) -> Any:
        kw = dict(kwargs)
        want_indices = kw.pop("return_indices", False)
        arglist = list(args)
        if len(arglist) > return_indices_at:
            want_indices = arglist.pop(return_indices_at)
        if always_indices:
            want_indices = True
        x = arglist[0]
        p = x._planes
        values, indices = with_indices(p[0], *arglist[1:], **kw)
        flat = p.flatten(-spatial_dims)
        flat_indices = indices.flatten(-spatial_dims)
        idx = flat_indices.unsqueeze(0).expand(p.shape[0], *([-1] * flat_indices.dim()))
        out = flat.gather(-1, idx).reshape(p.shape[0], *values.shape)
        result = ctx.wrap(out)
        return (result, indices) if want_indices else result

    return rule


def _max_rule(ctx: Context, func: Callable, args: tuple, kwargs: dict) -> Any:
    """max / min of one tensor (over a dim or all of it): the real plane picks the element."""
    x = args[0]
    dim = arg(args, kwargs, 1, "dim")
    if isinstance(dim, LMDTensor) or (dim is not None and not isinstance(dim, int)):
        raise LMDRuleError(f"{op_name(func)} of two decomposed tensors: use torch.maximum")
    keepdim = arg(args, kwargs, 2, "keepdim", False)
    p = x._planes
    selector = torch.max if func in (torch.max, T.max) else torch.min
    if dim is None:
        flat = p.flatten(1)
        index = flat[0].argmax() if selector is torch.max else flat[0].argmin()
        return ctx.wrap(flat[:, index])
    real = selector(p[0], dim=dim, keepdim=True)
    idx = real.indices.unsqueeze(0).expand(p.shape[0], *real.indices.shape)
    out = p.gather(shift_dim(dim, p.dim() - 1), idx)
    if not keepdim:
        out = out.squeeze(shift_dim(dim, p.dim() - 1))
        indices = real.indices.squeeze(dim)
    else:
        indices = real.indices
    return (
        torch.return_types.max((ctx.wrap(out), indices))
        if selector is torch.max
        else torch.return_types.min((ctx.wrap(out), indices))
    )


def _maximum_rule(ctx: Context, func: Callable, args: tuple, kwargs: dict) -> LMDTensor:
    """torch.maximum / minimum: each element takes all planes of the operand that wins on the real plane."""
    a, b = args[0], arg(args, kwargs, 1, "other")
    like = a._planes if isinstance(a, LMDTensor) else b._planes
    shape = out_shape(a, b)
    pa = broadcast_planes(as_planes(ctx, a, like), shape)
    pb = broadcast_planes(as_planes(ctx, b, like), shape)
    pick_a = pa[0] >= pb[0] if func is torch.maximum else pa[0] <= pb[0]
    return ctx.wrap(torch.where(pick_a, pa, pb))


# --- the rule table ---------------------------------------------------------------------------

# element-wise activations (softmax: over a dim, linearised the same way)
ACTIVATIONS: list[Callable] = [
    F.relu,
    torch.relu,
    T.relu,
    F.relu6,
    F.leaky_relu,
    F.elu,
    F.selu,
    F.celu,
    F.gelu,
    F.silu,
    F.mish,
    F.softplus,
    F.sigmoid,
    torch.sigmoid,
    T.sigmoid,
    F.tanh,
    torch.tanh,
    T.tanh,
    F.hardswish,
    F.hardsigmoid,
    F.hardtanh,
    F.logsigmoid,
    F.softsign,
    F.tanhshrink,
    F.hardshrink,
    F.softshrink,
    F.rrelu,
    F.threshold,
    F.prelu,
    torch.prelu,
    torch.clamp,
    T.clamp,
    torch.clip,
    T.clip,
    torch.abs,
    T.abs,
    T.__abs__,
    torch.erf,
    T.erf,
    torch.exp,
    T.exp,
    *sorted(_INPLACE_ACTIVATIONS, key=id),
]
register_rule(ACTIVATIONS, _activation_rule)
register_rule([F.softmax, torch.softmax, T.softmax], _softmax_rule)
# normalisation
register_rule([F.batch_norm], _batch_norm_rule)
register_rule([F.instance_norm], _instance_norm_rule)
register_rule([F.layer_norm], _layer_norm_rule)
register_rule([F.group_norm], _group_norm_rule)
register_rule([F.rms_norm], _rms_norm_rule)
# max pooling: (the function, its *_with_indices twin that the rule runs, spatial dims, position of
# the return_indices flag; both functions take it at the same position)
_MAX_POOLS: list[tuple[Callable, Callable, int, int]] = [
    (F.max_pool1d, F.max_pool1d_with_indices, 1, 6),
    (F.max_pool2d, F.max_pool2d_with_indices, 2, 6),
    (F.max_pool3d, F.max_pool3d_with_indices, 3, 6),
    (F.adaptive_max_pool1d, F.adaptive_max_pool1d_with_indices, 1, 2),
    (F.adaptive_max_pool2d, F.adaptive_max_pool2d_with_indices, 2, 2),
    (F.adaptive_max_pool3d, F.adaptive_max_pool3d_with_indices, 3, 2),
]
for _pool, _with_indices, _dims, _flag_at in _MAX_POOLS:
    register_rule(_pool, _max_pool_rule(_with_indices, _dims, _flag_at, always_indices=False))
    register_rule(_with_indices, _max_pool_rule(_with_indices, _dims, _flag_at, always_indices=True))
# max / min over a dim or all elements, element-wise maximum / minimum of two values
register_rule([torch.max, T.max, torch.min, T.min], _max_rule)
register_rule([torch.maximum, torch.minimum], _maximum_rule)
