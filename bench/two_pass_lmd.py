"""A paper-faithful two-pass LMD (section 4.3) used as the benchmark baseline: pass 1 runs the model
and caches the linearisation of every activation and norm layer (the cache grows with depth);
pass 2 runs the M + 1 streams (modalities and bias) batched along the batch dimension with the
cached constants. Supports the ops of ros2_lmd.lmd.reference_nets.SimpleBEVDecoder only."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode


def _arg(args, kwargs, index, name, default=None):
    return args[index] if len(args) > index else kwargs.get(name, default)


_ACTIVATIONS = {F.relu, torch.relu, torch.relu_, F.gelu, torch.sigmoid, F.silu}


class _RecordPass(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.cache: list[torch.Tensor] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _ACTIVATIONS:
            a = args[0].clone()
            out = func(*args, **kwargs)
            f0 = func(torch.zeros((), dtype=a.dtype, device=a.device))
            small = a.abs() <= torch.finfo(a.dtype).tiny
            self.cache.append(torch.where(small, torch.zeros_like(a), (out - f0) / torch.where(small, 1, a)))
            self.cache.append(f0)
            return out
        if func is F.instance_norm:
            x = args[0]
            self.cache.append(
                torch.rsqrt(x.flatten(2).var(-1, unbiased=False) + _arg(args, kwargs, 7, "eps", 1e-5))
            )
        return func(*args, **kwargs)


class _StreamPass(TorchFunctionMode):
    """Streams stacked on the batch dim: [modality 1, ..., modality M, bias], each of batch B."""

    def __init__(self, cache: list[torch.Tensor], streams: int) -> None:
        super().__init__()
        self.cache = iter(cache)
        self.streams = streams

    def _bias_rows(self, x: torch.Tensor) -> slice:
        b = x.shape[0] // self.streams
        return slice(x.shape[0] - b, x.shape[0])

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _ACTIVATIONS:
            c, f0 = next(self.cache), next(self.cache)
            x = args[0]
            out = x * c.repeat(self.streams, *([1] * (x.dim() - 1)))
            out[self._bias_rows(out)] += f0
            return out
        if func is torch.conv2d:
            bias = args[2] if len(args) > 2 else kwargs.get("bias")
            out = func(args[0], args[1], None, *args[3:], **{k: v for k, v in kwargs.items() if k != "bias"})
            if bias is not None:
                out[self._bias_rows(out)] += bias.view(1, -1, 1, 1)
            return out
        if func is F.batch_norm:  # identity rule: scale every stream, shift the bias stream
            x, mean, var = (
                args[0],
                _arg(args, kwargs, 1, "running_mean"),
                _arg(args, kwargs, 2, "running_var"),
            )
            weight, bias = _arg(args, kwargs, 3, "weight"), _arg(args, kwargs, 4, "bias")
            eps = _arg(args, kwargs, 7, "eps", 1e-5)
            scale = weight * torch.rsqrt(var + eps)
            out = x * scale.view(1, -1, 1, 1)
            out[self._bias_rows(out)] += (bias - mean * scale).view(1, -1, 1, 1)
            return out
        if func is F.instance_norm:  # ratio rule with the cached real variance
            x = args[0]
            weight, bias = _arg(args, kwargs, 3, "weight"), _arg(args, kwargs, 4, "bias")
            inv_std = next(self.cache).repeat(self.streams, 1)[..., None, None]
            out = (x - x.mean((2, 3), keepdim=True)) * inv_std
            if weight is not None:
                out = out * weight.view(1, -1, 1, 1)
            if bias is not None:
                out[self._bias_rows(out)] += bias.view(1, -1, 1, 1)
            return out
        return func(*args, **kwargs)


def two_pass_decompose(model, features: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    """Returns (real outputs, streams per output: tensor (M + 1, *shape))."""
    recorder = _RecordPass()
    with recorder:
        real = model(features)
    names = list(features)
    streams = len(names) + 1
    stacked = {}
    for i, m in enumerate(names):
        x = features[m]
        block = x.new_zeros((streams, *x.shape))
        block[i] = x
        stacked[m] = block.reshape(streams * x.shape[0], *x.shape[1:])
    with _StreamPass(recorder.cache, streams):
        out = model(stacked)
    return real, {k: v.reshape(streams, -1, *v.shape[1:]) for k, v in out.items()}
