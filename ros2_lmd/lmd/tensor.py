"""The core of Layer-Wise Modality Decomposition: LMDTensor, a torch.Tensor whose data is the real
activation and which carries the component streams, so that one pass through the unmodified model
computes both; and Context, what every rule knows about the decomposition in progress."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from ros2_lmd.errors import LMDError
from ros2_lmd.lmd.registry import lookup
from ros2_lmd.lmd.variants import RuleVariants


class LMDRuleError(LMDError, RuntimeError):
    """An op reached a decomposed tensor and no rule covers it (or its use is unsupported)."""


@dataclass
class ModuleScope:
    """The modules being called in a decomposition with per-module rules, innermost last, each with
    the variants its ops run under. Module hooks push and pop it (decompose.py); only the thread
    that runs the decomposition does, so a model shared with other threads does not disturb it."""

    base: RuleVariants
    thread: int = field(default_factory=threading.get_ident)
    stack: list[tuple[str, RuleVariants]] = field(default_factory=list)

    @property
    def active(self) -> RuleVariants:
        return self.stack[-1][1] if self.stack else self.base

    @property
    def module_name(self) -> str | None:
        """Qualified name of the innermost module being called (None: outside every module)."""
        return self.stack[-1][0] if self.stack else None


@dataclass(frozen=True)
class Context:
    """What every rule needs to know about the decomposition in progress.

    Layout: every decomposed value owns one plain tensor `planes` of shape (P, *shape) where plane 0
    is the real activation (the linearisation point), planes 1..M are the modality streams in the
    order of the `features` dict, and, in explicit-bias mode, plane M+1 is the bias stream. Keeping
    all planes in one tensor lets a conv/linear rule run them as one batched call.
    """

    modalities: tuple[str, ...]
    variants: RuleVariants
    explicit_bias: bool
    # Bias-splitting weights (App. C) are part of the linearisation: a pass that decomposes other
    # inputs at a fixed linearisation point replays the weights recorded at that point, in call order.
    split_record: list | None = None
    split_replay: Iterator | None = None
    # With per-module rules: the modules being called (the rules ask for `rules`, never for this).
    scope: ModuleScope | None = None

    @property
    def rules(self) -> RuleVariants:
        """The variants of the op now running: its module's under per-module rules, else `variants`."""
        return self.scope.active if self.scope is not None else self.variants

    @property
    def num_modalities(self) -> int:
        return len(self.modalities)

    @property
    def num_planes(self) -> int:
        return 1 + self.num_modalities + int(self.explicit_bias)

    @property
    def mods(self) -> slice:
        """Slice of the modality planes."""
        return slice(1, 1 + self.num_modalities)

    @property
    def bias_index(self) -> int | None:
        return 1 + self.num_modalities if self.explicit_bias else None

    def streams(self) -> slice:
        """Slice of every component stream (modalities and, if carried, bias)."""
        return slice(1, self.num_planes)

    def wrap(self, planes: torch.Tensor) -> LMDTensor:
        if planes.shape[0] != self.num_planes:
            raise AssertionError(f"internal: {planes.shape[0]} planes, expected {self.num_planes}")
        out = planes[0].as_subclass(LMDTensor)
        out._planes = planes
        out._ctx = self
        return out

    def planes_of_constant(self, value: Any, like: torch.Tensor) -> torch.Tensor:
        """Planes for a value that does not depend on any modality: it is all bias."""
        value = torch.as_tensor(value, dtype=like.dtype, device=like.device)
        planes = torch.zeros((self.num_planes, *value.shape), dtype=like.dtype, device=like.device)
        planes[0] = value
        if self.explicit_bias:
            planes[self.bias_index] = value
        return planes

    def add_constant_(self, planes: torch.Tensor, value: Any) -> torch.Tensor:
        """Add a modality-independent term in place: it belongs to the real value and the bias."""
        planes[0] += value
        if self.explicit_bias:
            planes[self.bias_index] += value
        return planes

    def bias_stream(self, planes: torch.Tensor) -> torch.Tensor:
        """The bias component of a value: carried, or derived as real minus the modality streams."""
        if self.explicit_bias:
            return planes[self.bias_index]
        return planes[0] - planes[self.mods].sum(0)


class LMDTensor(torch.Tensor):
    """A real activation that also carries its decomposition: `_planes` (layout: see Context).
    Every torch function that reaches it is answered by a rule (see ros2_lmd/lmd/registry.py)."""

    _planes: torch.Tensor
    _ctx: Context

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        ctx = _find_context(args, kwargs)
        rule = ctx.rules.extra_rules.get(func) if ctx.rules.extra_rules else None
        if rule is None:
            rule = lookup(func)
        if rule is None:
            where = ctx.scope.module_name if ctx.scope is not None else None
            raise LMDRuleError(_no_rule_message(func) + (f" (in module {where!r})" if where else ""))
        return rule(ctx, func, args, kwargs)

    # Printing stays cheap (no plane contents). The ignore: mypy 2.4 rejects every typed override of
    # torch.Tensor's untyped keyword-only `__repr__(self, *, tensor_contents=None)`, this same one.
    def __repr__(self, *, tensor_contents: Any = None) -> str:  # type: ignore[override]
        return f"LMDTensor(real={self._planes[0]!r}, planes={self._planes.shape[0]})"


def _find_context(args, kwargs) -> Context:
    for value in list(args) + list(kwargs.values()):
        if isinstance(value, LMDTensor):
            return value._ctx
        if isinstance(value, (list, tuple)):
            for item in value:
                if isinstance(item, LMDTensor):
                    return item._ctx
    raise AssertionError("internal: __torch_function__ called without an LMDTensor argument")


def op_name(func: Callable) -> str:
    """The name of a torch function in error messages (torch.conv2d, Tensor.add, ...)."""
    owner = getattr(func, "__self__", None)
    if func.__class__.__name__ == "method-wrapper" and owner is not None:
        return f"Tensor.{getattr(owner, '__name__', '?')} (attribute)"
    module = getattr(func, "__module__", None) or ""
    qual = str(getattr(func, "__qualname__", None) or getattr(func, "__name__", repr(func)))
    if module.startswith("torch._C") or not module:
        module = "torch"
    for prefix in ("_VariableFunctionsClass.", "_nn."):
        if qual.startswith(prefix):
            qual = qual[len(prefix) :]
    if qual.startswith("TensorBase."):
        qual = "Tensor." + qual[len("TensorBase.") :]
    return f"{module}.{qual}" if not qual.startswith("Tensor.") else qual


def _no_rule_message(func: Callable) -> str:
    name = op_name(func)
    return (
        f"LMD has no rule for {name}, which was called on a decomposed tensor. Passing it through "
        f"would give wrong components, so decomposition stops here. If the op is linear in its tensor "
        f"argument, register it with `ros2_lmd.lmd.register_rule(<the function>, "
        f"ros2_lmd.lmd.linear_rule)`; otherwise write a rule (see ros2_lmd/lmd/registry.py) and pass "
        f"it with `RuleVariants(extra_rules={{<the function>: rule}})`."
    )
