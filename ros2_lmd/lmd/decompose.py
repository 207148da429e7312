"""`decompose`, the entry point of Layer-Wise Modality Decomposition: run a fusion function once on
decomposed inputs and return, for every output, the original value and its exact split into one
component per modality plus a bias component (paper eq. 8 and 14; App. F for M modalities)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ros2_lmd.lmd.tensor import Context, LMDRuleError, LMDTensor, ModuleScope
from ros2_lmd.lmd.variants import RuleVariants


@dataclass
class Decomposition:
    """One decomposed tensor: `total == sum(components.values()) + bias` (to float precision).

    `layers` maps recorded module names to the Decomposition (or structure of them) of that
    module's output. In derived-bias mode the bias is total minus the components, so
    `conservation_error` only shows rounding; use RuleVariants(bias="explicit") for an independent check.
    """

    total: torch.Tensor
    components: dict[str, torch.Tensor]
    bias: torch.Tensor
    layers: dict[str, Any] = field(default_factory=dict)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.components)

    @property
    def conservation_error(self) -> float:
        """max|total - sum(components) - bias| / max|total| (relative, in float64)."""
        if not self.total.numel():
            return 0.0
        return max(self.conservation_errors(batch_dim=None))

    def conservation_errors(self, batch_dim: int | None = 0) -> list[float]:
        """`conservation_error` of each sample along `batch_dim` (None: of the whole tensor)."""
        total = self.total.double()
        residual = total - self.bias.double()
        for component in self.components.values():
            residual = residual - component.double()
        if batch_dim is None:
            total, residual = total.reshape(1, -1), residual.reshape(1, -1)
        else:
            total, residual = (
                total.movedim(batch_dim, 0).flatten(1),
                residual.movedim(batch_dim, 0).flatten(1),
            )
        scale = total.abs().amax(1).clamp_min(torch.finfo(torch.float64).tiny)
        return (residual.abs().amax(1) / scale).cpu().tolist()

    def stack(self) -> torch.Tensor:
        """Components then bias stacked on a new leading dim: (M + 1, *total.shape)."""
        return torch.stack([*self.components.values(), self.bias])

    def stack_with_total(self) -> torch.Tensor:
        """Total, components, then bias on a new leading dim: (M + 2, *total.shape)."""
        return torch.stack([self.total, *self.components.values(), self.bias])


def decompose(
    fn: Callable[[dict[str, torch.Tensor]], Any],
    features: Mapping[str, torch.Tensor],
    rules: RuleVariants | None = None,
    record: Iterable[str] | None = None,
    module: nn.Module | None = None,
    linearize_at: Mapping[str, torch.Tensor] | None = None,
) -> Any:
    """Decompose `fn(features)` into per-modality components.

    fn: takes the dict of modality features (e.g. a fusion model's `fuse`) and returns a tensor, or a
        tuple/list/dict of tensors; the result has the same structure with Decompositions.
    features: modality name -> tensor (shapes may differ between modalities).
    rules: the LMD variant (default: the paper's best; see RuleVariants).
    record: names of sub-modules (as in `module.named_modules()`) whose outputs are kept as
        layer-wise decompositions in `.layers`. `module` defaults to fn itself or fn's owner.
    linearize_at: inputs that define the linearisation point (default: `features`). With it, the
        components are the linearised network (fixed at `linearize_at`) applied to `features`,
        which is what the paper's perturbation metrics need; the bias is then carried explicitly.
    """
    rules = rules or RuleVariants()
    if not features:
        raise ValueError("decompose: `features` is empty; give at least one modality")
    for name, value in features.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"decompose: features[{name!r}] is {type(value).__name__}, expected a Tensor")
        if isinstance(value, LMDTensor):
            raise TypeError(f"decompose: features[{name!r}] is already decomposed")
    if linearize_at is not None:
        if set(linearize_at) != set(features):
            raise ValueError(
                f"decompose: linearize_at has modalities {sorted(linearize_at)}, "
                f"features has {sorted(features)}"
            )
        for name in features:
            if linearize_at[name].shape != features[name].shape:
                raise ValueError(
                    f"decompose: linearize_at[{name!r}] has shape "
                    f"{tuple(linearize_at[name].shape)}, "
                    f"features has {tuple(features[name].shape)}"
                )
    owner = module or _owner(fn)
    _refuse_stateful_training(owner)
    explicit = rules.bias == "explicit" or linearize_at is not None
    scope, handles, splits = None, [], {rules.activation_split}
    if rules.per_module:
        scope_owner = _scope_owner(owner)
        scope = ModuleScope(base=rules)
        splits |= {v.activation_split for v in rules.resolve(scope_owner).values()}
        handles = _scope_hooks(scope_owner, rules, scope)
    try:
        replay = None
        if linearize_at is not None and splits != {"identity"}:
            # the split weights belong to the linearisation: take them from a pass at that point
            recorded: list = []
            at_point = Context(tuple(features), rules, explicit, split_record=recorded, scope=scope)
            fn(_decomposed_inputs(at_point, linearize_at, None))
            replay = iter(recorded)
        ctx = Context(
            modalities=tuple(features),
            variants=rules,
            explicit_bias=explicit,
            split_replay=replay,
            scope=scope,
        )
        inputs = _decomposed_inputs(ctx, features, linearize_at)
        layers: dict[str, Any] = {}
        handles += _record_hooks(fn, module, record, ctx, layers)
        output = fn(inputs)
    finally:
        for handle in handles:
            handle.remove()
    return _to_decompositions(output, ctx, layers)


def _decomposed_inputs(
    ctx: Context, features: Mapping[str, torch.Tensor], linearize_at: Mapping[str, torch.Tensor] | None
) -> dict[str, torch.Tensor]:
    """Input m: real plane = the linearisation point, stream m = the input, other streams zero
    (LMDTensors, handed to `fn` as the tensors it takes)."""
    inputs: dict[str, torch.Tensor] = {}
    for index, (name, value) in enumerate(features.items()):
        planes = value.new_zeros((ctx.num_planes, *value.shape))
        planes[0] = value if linearize_at is None else linearize_at[name]
        planes[1 + index] = value
        inputs[name] = ctx.wrap(planes)
    return inputs


def _owner(fn: Callable) -> nn.Module | None:
    owner = fn if isinstance(fn, nn.Module) else getattr(fn, "__self__", None)
    return owner if isinstance(owner, nn.Module) else None


def _scope_owner(owner: nn.Module | None) -> nn.Module:
    if owner is None:
        raise ValueError(
            "decompose: rules with per_module entries need the module whose sub-modules they name: "
            "pass module= (or decompose a bound method of the module)"
        )
    return owner


def _scope_hooks(owner: nn.Module, rules: RuleVariants, scope: ModuleScope) -> list:
    """Forward hooks on every sub-module that push its name and variants on `scope` while it runs.
    The closing hook runs even when the forward raises (always_call), and decompose removes every
    hook when it returns or raises, so the model is left as it was."""
    handles = []
    try:
        for name, sub in owner.named_modules():
            variants = rules.for_module(name, sub)

            def enter(_module, _args, name=name, variants=variants):
                if threading.get_ident() == scope.thread:
                    scope.stack.append((name, variants))

            def leave(_module, _args, _output, name=name):
                if threading.get_ident() == scope.thread and scope.stack and scope.stack[-1][0] == name:
                    scope.stack.pop()

            handles.append(sub.register_forward_pre_hook(enter))
            handles.append(sub.register_forward_hook(leave, always_call=True))
    except BaseException:
        for handle in handles:
            handle.remove()
        raise
    return handles


def _refuse_stateful_training(owner: nn.Module | None) -> None:
    """A norm layer in training mode updates its running statistics when called (before any rule
    could object), so it is refused before the pass: decompose never modifies the model."""
    if owner is None:
        return
    for name, sub in owner.named_modules():
        if (
            sub.training
            and isinstance(sub, nn.modules.batchnorm._NormBase)
            and getattr(sub, "track_running_stats", False)
        ):
            raise LMDRuleError(
                f"module {name or type(owner).__name__!r} ({type(sub).__name__}) is in "
                f"training mode, where batch_norm would use and update batch "
                f"statistics; call model.eval() before decomposing"
            )


def _record_hooks(fn, module, record, ctx, layers) -> list:
    if not record:
        return []
    owner = module or _owner(fn)
    if not isinstance(owner, nn.Module):
        raise ValueError("decompose(record=...) needs the module that owns the layers: pass module=")
    named = dict(owner.named_modules())
    record = list(record)
    for name in record:  # every name checked before any hook is placed
        if name not in named:
            close = [n for n in named if name.split(".")[-1] in n][:5]
            raise KeyError(
                f"decompose(record=...): no module named {name!r}" + (f"; similar: {close}" if close else "")
            )
    handles = []
    for name in record:

        def hook(_module, _inputs, output, name=name):
            # clone: later in-place ops (ReLU(inplace=True)) would overwrite the recorded planes
            layers[name] = _to_decompositions(output, ctx, {}, clone=True)

        handles.append(named[name].register_forward_hook(hook))
    return handles


def _to_decompositions(value: Any, ctx: Context, layers: dict, clone: bool = False) -> Any:
    if isinstance(value, LMDTensor):
        planes = value._planes.clone() if clone else value._planes
        total = planes[0]
        components = {m: planes[1 + i] for i, m in enumerate(ctx.modalities)}
        if ctx.explicit_bias:
            bias = planes[ctx.bias_index]
        else:
            bias = total - planes[ctx.mods].sum(0)
        return Decomposition(total=total, components=components, bias=bias, layers=layers)
    if isinstance(value, torch.Tensor):  # an output that no modality reaches: all bias
        total = value.clone() if clone else value
        return Decomposition(
            total=total,
            components={m: torch.zeros_like(total) for m in ctx.modalities},
            bias=total,
            layers=layers,
        )
    if isinstance(value, dict):
        return {k: _to_decompositions(v, ctx, layers, clone) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(_to_decompositions(v, ctx, layers, clone) for v in value)
    return value


__all__ = ["Decomposition", "decompose", "LMDRuleError"]
