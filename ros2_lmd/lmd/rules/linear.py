"""Layer-Wise Modality Decomposition rules for ops linear in the decomposed value: structural ops,
conv/linear, average pooling, interpolation, arithmetic, where/masked_fill. A linear op applies to
every plane; parameter biases and other modality-independent constants go to the real value and bias."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from ros2_lmd.lmd.registry import register_attribute_rule, register_rule
from ros2_lmd.lmd.rules.common import arg, as_planes, bilinear, broadcast_planes, out_shape, shift_dim
from ros2_lmd.lmd.tensor import Context, LMDRuleError, LMDTensor, op_name

T = torch.Tensor


def _wrap_tree(ctx: Context, value: Any) -> Any:
    """Wrap plane tensors (leading plane dim) in a (possibly nested) result back into LMDTensors."""
    if isinstance(value, torch.Tensor):
        return ctx.wrap(value)
    if isinstance(value, (tuple, list)):
        return type(value)(_wrap_tree(ctx, v) for v in value)
    return value


def _only_decomposed_arg(func: Callable, args: tuple, kwargs: dict) -> int:
    """Index of the single decomposed positional argument; the others must be constants."""
    found = [i for i, a in enumerate(args) if isinstance(a, LMDTensor)]
    if any(isinstance(v, LMDTensor) for v in kwargs.values()) or len(found) != 1:
        raise LMDRuleError(
            f"{op_name(func)}: LMD treats this op as linear in one decomposed argument, but got "
            f"decomposed arguments at positions {found} (kwargs: "
            f"{[k for k, v in kwargs.items() if isinstance(v, LMDTensor)]})"
        )
    return found[0]


def linear_rule(ctx: Context, func: Callable, args: tuple, kwargs: dict) -> Any:
    """Generic rule for ops linear and homogeneous in their one decomposed argument: vmap over the
    plane dimension, so any such op (indexing, flip, gather, grid_sample ...) works unchanged."""
    index = _only_decomposed_arg(func, args, kwargs)
    planes = args[index]._planes

    def per_plane(plane: T) -> Any:
        call_args = list(args)
        call_args[index] = plane
        return func(*call_args, **kwargs)

    return _wrap_tree(ctx, torch.vmap(per_plane)(planes))


def planewise_rule(ctx: Context, func: Callable, args: tuple, kwargs: dict) -> LMDTensor:
    """Ops indifferent to a leading dimension (dtype/device moves, clone, contiguous)."""
    index = _only_decomposed_arg(func, args, kwargs)
    call_args = list(args)
    call_args[index] = args[index]._planes
    return ctx.wrap(func(*call_args, **kwargs))


def real_rule(ctx: Context, func: Callable, args: tuple, kwargs: dict) -> Any:
    """Metadata and comparisons: answered from the real activation (the linearisation point), never
    carrying components. Results are plain values (shape, dtype, boolean masks, indices)."""
    return func(*_real_tree(args), **{k: _real_tree(v) for k, v in kwargs.items()})


def _real_tree(value: Any) -> Any:
    if isinstance(value, LMDTensor):
        return value._planes[0]
    if isinstance(value, (tuple, list)):
        return type(value)(_real_tree(v) for v in value)
    return value


def attribute_rule(ctx: Context, func: Callable, args: tuple, kwargs: dict) -> Any:
    """Tensor attributes: x.T and x.mT move the planes; x.data, x.grad, x.H ... have no rule and
    raise; the rest (x.shape, x.dtype ...) are read from the real value."""
    name = getattr(getattr(func, "__self__", None), "__name__", "")
    x = args[0]
    if name in ("T", "mT"):
        p = x._planes
        n = p.dim() - 1
        if name == "T":
            return ctx.wrap(p.permute(0, *range(n, 0, -1)))
        return ctx.wrap(p.transpose(-1, -2))
    if name in ("data", "grad", "real", "imag", "H", "mH", "_base"):
        raise LMDRuleError(f"Tensor.{name} on a decomposed tensor has no LMD rule")
    return func(x._planes[0])


# --- structural ops with an explicit plane-dim shift (hot paths; vmap would also work) ----------


def _shape_args(args: tuple) -> tuple:
    if len(args) == 1 and isinstance(args[0], (tuple, list, torch.Size)):
        return tuple(args[0])
    return tuple(args)


def _view_rule(ctx: Context, func: Callable, args: tuple, kwargs: dict) -> Any:
    x, shape = args[0], _shape_args(args[1:]) or tuple(kwargs.get("shape", kwargs.get("size", ())))
    if any(not isinstance(s, int) for s in shape):  # view(dtype) and friends
        return linear_rule(ctx, func, args, kwargs)
    p = x._planes
    return ctx.wrap(p.view(p.shape[0], *shape) if func is T.view else p.reshape(p.shape[0], *shape))


def _permute_rule(ctx: Context, func: Callable, args: tuple, kwargs: dict) -> LMDTensor:
    x = args[0]
    dims = _shape_args(args[1:]) or tuple(kwargs["dims"])
    p = x._planes
    n = p.dim() - 1
    return ctx.wrap(p.permute(0, *(shift_dim(d, n) for d in dims)))


def _transpose_rule(ctx: Context, func: Callable, args: tuple, kwargs: dict) -> LMDTensor:
    x = args[0]
    d0, d1 = arg(args, kwargs, 1, "dim0"), arg(args, kwargs, 2, "dim1")
    p = x._planes
    n = p.dim() - 1
    return ctx.wrap(p.transpose(shift_dim(d0, n), shift_dim(d1, n)))


def _flatten_rule(ctx: Context, func: Callable, args: tuple, kwargs: dict) -> LMDTensor:
    x = args[0]
    p = x._planes
    n = p.dim() - 1
    if n == 0:
        return ctx.wrap(p.reshape(p.shape[0], 1))
    start, end = arg(args, kwargs, 1, "start_dim", 0), arg(args, kwargs, 2, "end_dim", -1)
    return ctx.wrap(p.flatten(shift_dim(start, n), shift_dim(end, n)))


def _unsqueeze_rule(ctx: Context, func: Callable, args: tuple, kwargs: dict) -> LMDTensor:
    x, d = args[0], arg(args, kwargs, 1, "dim")
    p = x._planes
    return ctx.wrap(p.unsqueeze((d % p.dim()) + 1))


def _squeeze_rule(ctx: Context, func: Callable, args: tuple, kwargs: dict) -> LMDTensor:
    x, d = args[0], arg(args, kwargs, 1, "dim")
    p = x._planes
    n = p.dim() - 1
    if d is None:
        keep = [s for s in p.shape[1:] if s != 1]
        return ctx.wrap(p.reshape(p.shape[0], *keep))
    dims = d if isinstance(d, (tuple, list)) else (d,)
    return ctx.wrap(p.squeeze(tuple(shift_dim(i, n) for i in dims)))


def _contiguous_rule(ctx: Context, func: Callable, args: tuple, kwargs: dict) -> LMDTensor:
    return ctx.wrap(args[0]._planes.contiguous())


def _reduce_rule(ctx: Context, func: Callable, args: tuple, kwargs: dict) -> LMDTensor:
    """sum / mean over dims: linear. Explicit dim shift avoids reducing over the plane dim."""
    x = args[0]
    dim = arg(args, kwargs, 1, "dim")
    keepdim = arg(args, kwargs, 2, "keepdim", False)
    dtype = kwargs.get("dtype")
    p = x._planes
    n = p.dim() - 1
    if dim is None or (isinstance(dim, (tuple, list)) and len(dim) == 0):
        dims = tuple(range(1, n + 1))
    else:
        dims = tuple(shift_dim(d, n) for d in (dim if isinstance(dim, (tuple, list)) else (dim,)))
    reducer = torch.sum if func in (torch.sum, T.sum) else torch.mean
    if not dims:
        return ctx.wrap(p.clone())
    return ctx.wrap(reducer(p, dim=dims, keepdim=bool(keepdim), dtype=dtype))


def _first_planes(values) -> T:
    return next(v._planes for v in values if isinstance(v, LMDTensor))


def _cat_rule(ctx: Context, func: Callable, args: tuple, kwargs: dict) -> LMDTensor:
    tensors = arg(args, kwargs, 0, "tensors")
    dim = arg(args, kwargs, 1, "dim", 0)
    like = _first_planes(tensors)
    plist = [as_planes(ctx, t, like) for t in tensors]
    if func in (torch.stack,):
        n = like.dim() - 1
        return ctx.wrap(torch.stack(plist, dim=(dim % (n + 1)) + 1))
    n = like.dim() - 1
    return ctx.wrap(torch.cat(plist, dim=shift_dim(dim, n)))


def _split_rule(ctx: Context, func: Callable, args: tuple, kwargs: dict) -> Any:
    x = args[0]
    p = x._planes
    n = p.dim() - 1
    if func in (torch.unbind, T.unbind):
        dim = arg(args, kwargs, 1, "dim", 0)
        return tuple(ctx.wrap(q) for q in p.unbind(shift_dim(dim, n)))
    size = arg(args, kwargs, 1, "split_size_or_sections", kwargs.get("split_size", kwargs.get("chunks")))
    dim = arg(args, kwargs, 2, "dim", 0)
    if func in (torch.chunk, T.chunk):
        parts = p.chunk(size, shift_dim(dim, n))
    else:
        parts = p.split(size, shift_dim(dim, n))
    return tuple(ctx.wrap(q) for q in parts)


def _getitem_rule(ctx: Context, func: Callable, args: tuple, kwargs: dict) -> Any:
    x, index = args[0], args[1]
    items = index if isinstance(index, tuple) else (index,)
    if any(isinstance(i, LMDTensor) for i in items):
        raise LMDRuleError(
            "indexing with a decomposed tensor has no LMD rule (use a plain index "
            "computed from the real value, e.g. `idx = x.argmax(...)`)"
        )
    advanced = [
        k
        for k, i in enumerate(items)
        if isinstance(i, (torch.Tensor, list))
        or (hasattr(i, "__array__") and not isinstance(i, (int, slice)))
    ]
    # Prefixing a full slice keeps numpy's indexing semantics unless advanced indices are separated
    # by basic ones (then the advanced dims would move in front of the plane dim).
    if not advanced or advanced == list(range(advanced[0], advanced[-1] + 1)):
        return ctx.wrap(x._planes[(slice(None),) + items])
    return linear_rule(ctx, func, args, kwargs)


# --- conv / linear / pooling: batch-preserving ops run on the planes folded into the batch ---------


def _fold_call(p: T, spatial_dims: int, call: Callable[[T], T]) -> T:
    """Run a batch-preserving op once over all planes. x batched (B, C, *spatial): fold planes into
    the batch; x unbatched (C, *spatial): the plane dim is the batch."""
    x_ndim = p.dim() - 1
    if x_ndim == spatial_dims + 1:
        return call(p)
    if x_ndim != spatial_dims + 2:
        raise LMDRuleError(f"unexpected input rank {x_ndim} for a {spatial_dims}-d op")
    P, B = p.shape[0], p.shape[1]
    out = call(p.reshape(P * B, *p.shape[2:]))
    return out.reshape(P, B, *out.shape[1:])


def _channel_view(vector: T, out_ndim: int) -> T:
    """Reshape a per-channel vector to broadcast over (P, B, C, *spatial) or (P, C, *spatial)."""
    shape = [1] * out_ndim
    shape[2 if out_ndim >= 3 else 1] = -1
    return vector.reshape(shape)


def _conv_rule(spatial_dims: int) -> Callable:
    def rule(ctx: Context, func: Callable, args: tuple, kwargs: dict) -> Any:
        x, weight = args[0], arg(args, kwargs, 1, "weight")
        bias = arg(args, kwargs, 2, "bias")
        if not isinstance(x, LMDTensor) or isinstance(weight, LMDTensor) or isinstance(bias, LMDTensor):
            raise LMDRuleError(f"{op_name(func)}: only the input may be decomposed (not weight/bias)")
        rest = list(args[3:])
        kw = {k: v for k, v in kwargs.items() if k not in ("weight", "bias")}
        p = x._planes
        out = _fold_call(p, spatial_dims, lambda q: func(q, weight, None, *rest, **kw))
        if bias is not None:
            batched = p.dim() - 1 == spatial_dims + 2
            view = [1] * (out.dim() - 1)
            view[1 if batched else 0] = -1
            ctx.add_constant_(out, bias.reshape(view))
        return ctx.wrap(out)

    return rule


def _linear_layer_rule(ctx: Context, func: Callable, args: tuple, kwargs: dict) -> LMDTensor:
    x, weight, bias = args[0], arg(args, kwargs, 1, "weight"), arg(args, kwargs, 2, "bias")
    if not isinstance(x, LMDTensor) or isinstance(weight, LMDTensor) or isinstance(bias, LMDTensor):
        raise LMDRuleError("F.linear: only the input may be decomposed (not weight/bias)")
    out = F.linear(x._planes, weight)  # acts on the last dim: the plane dim is just another batch dim
    if bias is not None:
        ctx.add_constant_(out, bias)
    return ctx.wrap(out)


def _batched_rule(spatial_dims: int | None) -> Callable:
    """Pooling / interpolation / pixel shuffle: linear, batch-preserving."""

    def rule(ctx: Context, func: Callable, args: tuple, kwargs: dict) -> Any:
        index = _only_decomposed_arg(func, args, kwargs)
        if index != 0:
            return linear_rule(ctx, func, args, kwargs)
        p = args[0]._planes
        dims = spatial_dims if spatial_dims is not None else p.dim() - 3
        return ctx.wrap(_fold_call(p, dims, lambda q: func(q, *args[1:], **kwargs)))

    return rule


def _pad_rule(ctx: Context, func: Callable, args: tuple, kwargs: dict) -> LMDTensor:
    x, pad = args[0], arg(args, kwargs, 1, "pad")
    mode = arg(args, kwargs, 2, "mode", "constant")
    value = arg(args, kwargs, 3, "value", None)
    p = x._planes
    if mode == "constant":
        out = F.pad(p, pad, mode="constant", value=0.0)
        if value:  # a non-zero pad value is a modality-independent constant: real and bias only
            mask = F.pad(torch.zeros_like(p[0]), pad, mode="constant", value=1.0)
            ctx.add_constant_(out, mask * value)
        return ctx.wrap(out)
    return ctx.wrap(_fold_call(p, len(pad) // 2, lambda q: F.pad(q, pad, mode=mode)))


def _dropout_rule(ctx: Context, func: Callable, args: tuple, kwargs: dict) -> Any:
    p_drop = arg(args, kwargs, 1, "p", 0.5)
    training = arg(args, kwargs, 2, "training", True)
    if training and p_drop > 0:
        raise LMDRuleError(
            f"{op_name(func)} in training mode is random and has no LMD rule: "
            f"call model.eval() before decomposing"
        )
    return args[0]


# --- arithmetic --------------------------------------------------------------------------------


def _add(ctx: Context, a: Any, b: Any, sign: float) -> T:
    """a + sign * b, either operand decomposed or constant."""
    shape = out_shape(a, b)
    if isinstance(a, LMDTensor) and isinstance(b, LMDTensor):
        return broadcast_planes(a._planes, shape) + sign * broadcast_planes(b._planes, shape)
    if isinstance(a, LMDTensor):
        out = broadcast_planes(a._planes, shape).clone()
        return ctx.add_constant_(out, b if sign == 1 else sign * b)
    out = sign * broadcast_planes(b._planes, shape)
    return ctx.add_constant_(out, a)


def _mul_const(ctx: Context, x: LMDTensor, c: Any, divide: bool) -> T:
    p = x._planes
    if isinstance(c, torch.Tensor) and c.dim() > p.dim() - 1:
        p = broadcast_planes(p, out_shape(x, c))
    return p / c if divide else p * c


_ADD: set[Callable] = {torch.add, T.add, T.__add__, T.__radd__, T.add_, T.__iadd__}
_SUB: set[Callable] = {torch.sub, torch.subtract, T.sub, T.subtract, T.__sub__, T.sub_, T.__isub__}
_RSUB: set[Callable] = {T.__rsub__, torch.rsub}
_MUL: set[Callable] = {
    torch.mul,
    torch.multiply,
    T.mul,
    T.multiply,
    T.__mul__,
    T.__rmul__,
    T.mul_,
    T.__imul__,
}
_DIV: set[Callable] = {
    torch.div,
    torch.divide,
    torch.true_divide,
    T.div,
    T.divide,
    T.true_divide,
    T.__truediv__,
    T.div_,
    T.__itruediv__,
}
_RDIV: set[Callable] = {T.__rtruediv__}
_INPLACE = {T.add_, T.__iadd__, T.sub_, T.__isub__, T.mul_, T.__imul__, T.div_, T.__itruediv__}


def _inplace_add(ctx: Context, func: Callable, a: Any, b: Any, alpha: Any) -> bool:
    """`a += b` / `a -= b` straight into a's planes (a residual `out += identity`): no new planes.
    False where the fast path does not apply (then the generic rule runs)."""
    if func not in (T.add_, T.__iadd__, T.sub_, T.__isub__) or not isinstance(a, LMDTensor):
        return False
    sign = -alpha if func in (T.sub_, T.__isub__) else alpha
    if isinstance(b, LMDTensor):
        if out_shape(a, b) != a._planes.shape[1:]:
            return False
        a._planes.add_(broadcast_planes(b._planes, a._planes.shape[1:]), alpha=sign)
        return True
    ctx.add_constant_(a._planes, b * sign if sign != 1 else b)
    return True


def _arith_rule(ctx: Context, func: Callable, args: tuple, kwargs: dict) -> Any:
    a, b = args[0], arg(args, kwargs, 1, "other")
    alpha = kwargs.get("alpha", 1)
    if _inplace_add(ctx, func, a, b, alpha):
        return a
    if func in _ADD:
        out = _add(ctx, a, b, 1) if alpha == 1 else _add(ctx, a, _scale(b, alpha), 1)
    elif func in _SUB:
        out = _add(ctx, a, _scale(b, alpha), -1)
    elif func in _RSUB:  # rsub(a, b) = b - alpha * a
        out = _add(ctx, b, _scale(a, alpha), -1)
    elif func in _MUL:
        if isinstance(a, LMDTensor) and isinstance(b, LMDTensor):
            out = bilinear(ctx, torch.mul, a, b)
        else:
            x, c = (a, b) if isinstance(a, LMDTensor) else (b, a)
            out = _mul_const(ctx, x, c, divide=False)
    elif func in _DIV:
        if isinstance(b, LMDTensor) or kwargs.get("rounding_mode"):
            raise LMDRuleError(
                f"{op_name(func)}: division by a decomposed tensor (or rounding "
                f"division) is not linear and has no LMD rule"
            )
        out = _mul_const(ctx, a, b, divide=True)
    elif func in _RDIV:
        raise LMDRuleError("dividing by a decomposed tensor is not linear and has no LMD rule")
    else:
        raise AssertionError(f"internal: arithmetic rule registered for {op_name(func)}")
    if func in _INPLACE:
        return _write_inplace(ctx, a, out)
    return ctx.wrap(out)


def _scale(value: Any, alpha: Any) -> Any:
    if alpha == 1:
        return value
    if isinstance(value, LMDTensor):
        return value._ctx.wrap(value._planes * alpha)
    return value * alpha


def _write_inplace(ctx: Context, target: Any, new_planes: T) -> Any:
    if not isinstance(target, LMDTensor):
        raise LMDRuleError(
            "an in-place op on a plain tensor with a decomposed operand cannot keep "
            "the decomposition; write it out of place"
        )
    if new_planes.shape != target._planes.shape:
        raise LMDRuleError(
            f"in-place op would change shape {tuple(target._planes.shape[1:])} -> "
            f"{tuple(new_planes.shape[1:])}"
        )
    target._planes.copy_(new_planes)
    return target


def _neg_rule(ctx: Context, func: Callable, args: tuple, kwargs: dict) -> LMDTensor:
    return ctx.wrap(-args[0]._planes)


def _pos_rule(ctx: Context, func: Callable, args: tuple, kwargs: dict) -> Any:
    return args[0]


def _matmul_rule(ctx: Context, func: Callable, args: tuple, kwargs: dict) -> LMDTensor:
    a, b = args[0], arg(args, kwargs, 1, "other", kwargs.get("mat2"))
    if func is T.__rmatmul__:
        a, b = b, a
    if isinstance(a, LMDTensor) and isinstance(b, LMDTensor):
        return ctx.wrap(bilinear(ctx, torch.matmul, a, b))
    if isinstance(a, LMDTensor):
        return ctx.wrap(torch.vmap(lambda q: torch.matmul(q, b))(a._planes))
    return ctx.wrap(torch.vmap(lambda q: torch.matmul(a, q))(b._planes))


def _einsum_rule(ctx: Context, func: Callable, args: tuple, kwargs: dict) -> LMDTensor:
    equation, operands = args[0], args[1:]
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    decomposed = [i for i, o in enumerate(operands) if isinstance(o, LMDTensor)]
    if len(decomposed) == 2 and len(operands) == 2:
        return ctx.wrap(bilinear(ctx, lambda x, y: torch.einsum(equation, x, y), *operands))
    if len(decomposed) != 1:
        raise LMDRuleError("einsum: LMD supports one decomposed operand, or exactly two operands")
    i = decomposed[0]

    def per_plane(q: T) -> T:
        ops = list(operands)
        ops[i] = q
        return torch.einsum(equation, *ops)

    return ctx.wrap(torch.vmap(per_plane)(operands[i]._planes))


# --- selections with a plain condition (computed from the real value) --------------------------


def _where_rule(ctx: Context, func: Callable, args: tuple, kwargs: dict) -> LMDTensor:
    cond, a, b = args[0], arg(args, kwargs, 1, "input"), arg(args, kwargs, 2, "other")
    if isinstance(cond, LMDTensor):
        raise LMDRuleError("torch.where with a decomposed condition: compare the real value first")
    like = a._planes if isinstance(a, LMDTensor) else b._planes
    shape = torch.broadcast_shapes(torch.as_tensor(cond).shape, out_shape(a, b))
    pa = broadcast_planes(as_planes(ctx, a, like), shape)
    pb = broadcast_planes(as_planes(ctx, b, like), shape)
    return ctx.wrap(torch.where(cond, pa, pb))


def _masked_fill_rule(ctx: Context, func: Callable, args: tuple, kwargs: dict) -> Any:
    x, mask, value = args[0], arg(args, kwargs, 1, "mask"), arg(args, kwargs, 2, "value")
    if isinstance(mask, LMDTensor) or isinstance(value, LMDTensor):
        raise LMDRuleError("masked_fill: the mask and value must be plain (computed from the real value)")
    p = x._planes
    fill_value = torch.as_tensor(value, dtype=p.dtype, device=p.device).expand(p.shape[1:])
    fill = ctx.planes_of_constant(fill_value, p)
    out = torch.where(mask, fill, p)
    if func is T.masked_fill_:
        return _write_inplace(ctx, x, out)
    return ctx.wrap(out)


# --- the rule table ---------------------------------------------------------------------------

# metadata: answered from the real value, no components
_METADATA: list[Callable] = [
    T.size,
    T.dim,
    T.numel,
    T.nelement,
    T.ndimension,
    T.stride,
    T.is_contiguous,
    T.element_size,
    T.__len__,
    T.data_ptr,
    T.storage_offset,
    T.is_floating_point,
    T.is_complex,
    T.get_device,
    T.__format__,
    T.__bool__,
    T.item,
    T.tolist,
    T.__int__,
    T.__float__,
    T.__index__,
    T.numpy,
    T.__hash__,
    T.__array__,
    torch.numel,
    T.untyped_storage,
    T.is_set_to,
    # comparisons and index selections: the real value decides (the linearisation point)
    torch.gt,
    torch.lt,
    torch.ge,
    torch.le,
    torch.eq,
    torch.ne,
    torch.greater,
    torch.less,
    T.gt,
    T.lt,
    T.ge,
    T.le,
    T.eq,
    T.ne,
    T.__gt__,
    T.__lt__,
    T.__ge__,
    T.__le__,
    T.__eq__,
    T.__ne__,
    torch.isnan,
    torch.isfinite,
    torch.isinf,
    T.isnan,
    T.isfinite,
    T.isinf,
    torch.argmax,
    torch.argmin,
    T.argmax,
    T.argmin,
    torch.argsort,
    T.argsort,
    torch.sign,
    T.sign,
    torch.equal,
    torch.allclose,
    torch.isclose,
    T.allclose,
]

register_rule(_METADATA, real_rule)
register_attribute_rule(attribute_rule)  # x.shape, x.T, ...
# structural ops
register_rule([T.view, T.reshape, torch.reshape], _view_rule)
register_rule([T.permute, torch.permute], _permute_rule)
register_rule([T.transpose, torch.transpose, T.swapaxes, torch.swapaxes], _transpose_rule)
register_rule([T.flatten, torch.flatten], _flatten_rule)
register_rule([T.unsqueeze, torch.unsqueeze], _unsqueeze_rule)
register_rule([T.squeeze, torch.squeeze], _squeeze_rule)
register_rule([T.contiguous], _contiguous_rule)
register_rule([T.sum, torch.sum, T.mean, torch.mean], _reduce_rule)
register_rule([torch.cat, torch.concat, torch.concatenate, torch.stack], _cat_rule)
register_rule([torch.split, T.split, torch.chunk, T.chunk, torch.unbind, T.unbind], _split_rule)
register_rule([T.__getitem__], _getitem_rule)
# any other op linear in one decomposed argument, run per plane with vmap
register_rule(
    [
        T.view_as,
        T.reshape_as,
        T.expand,
        T.expand_as,
        T.repeat,
        T.t,
        torch.t,
        T.narrow,
        torch.narrow,
        T.select,
        torch.select,
        T.index_select,
        torch.index_select,
        T.gather,
        torch.gather,
        T.roll,
        torch.roll,
        T.flip,
        torch.flip,
        T.movedim,
        torch.movedim,
        T.unflatten,
        torch.unflatten,
        T.tile,
        torch.tile,
        T.repeat_interleave,
        torch.repeat_interleave,
        torch.rot90,
        T.rot90,
        F.grid_sample,
        T.diagonal,
        torch.diagonal,
        T.unfold,
        torch.tril,
        torch.triu,
        T.tril,
        T.triu,
        torch.cumsum,
        T.cumsum,
        torch.diff,
        T.diff,
        torch.trace,
        T.narrow_copy,
    ],
    linear_rule,
)
register_rule(
    [
        T.clone,
        torch.clone,
        T.detach,
        torch.detach,
        T.to,
        T.float,
        T.double,
        T.half,
        T.bfloat16,
        T.cpu,
        T.cuda,
        T.type_as,
        T.requires_grad_,
    ],
    planewise_rule,
)
# conv / linear / pooling / interpolation / padding / dropout
register_rule([torch.conv1d, torch.conv_transpose1d], _conv_rule(1))
register_rule([torch.conv2d, torch.conv_transpose2d], _conv_rule(2))
register_rule([torch.conv3d, torch.conv_transpose3d], _conv_rule(3))
register_rule([F.linear], _linear_layer_rule)
register_rule([F.avg_pool1d, F.adaptive_avg_pool1d], _batched_rule(1))
# (Lp pooling, (sum x^p)^(1/p), is not linear: it has no rule and raises, like every op without one.)
register_rule([F.avg_pool2d, F.adaptive_avg_pool2d], _batched_rule(2))
register_rule([F.avg_pool3d, F.adaptive_avg_pool3d], _batched_rule(3))
register_rule(
    [F.interpolate, F.upsample, F.upsample_bilinear, F.upsample_nearest, F.unfold, F.fold],
    _batched_rule(None),
)
register_rule([torch.pixel_shuffle, torch.pixel_unshuffle], planewise_rule)
register_rule([F.pad], _pad_rule)
register_rule(
    [F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout, F.feature_alpha_dropout],
    _dropout_rule,
)
# arithmetic
register_rule(list(_ADD | _SUB | _RSUB | _MUL | _DIV | _RDIV), _arith_rule)
register_rule([torch.neg, torch.negative, T.neg, T.negative, T.__neg__], _neg_rule)
register_rule([T.__pos__, torch.positive, T.positive], _pos_rule)
register_rule(
    [torch.matmul, T.matmul, T.__matmul__, T.__rmatmul__, torch.mm, T.mm, torch.bmm, T.bmm, torch.mv, T.mv],
    _matmul_rule,
)
register_rule([torch.einsum], _einsum_rule)
# selections with a plain condition
register_rule([torch.where], _where_rule)
register_rule([T.masked_fill, T.masked_fill_, torch.masked_fill], _masked_fill_rule)
