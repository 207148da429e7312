"""The rule table of Layer-Wise Modality Decomposition: torch function -> rule. The rule modules
(ros2_lmd.lmd.rules) fill it when ros2_lmd.lmd is imported; users extend it with `register_rule`
(process-wide) or `RuleVariants(extra_rules=...)` (one decomposition)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ros2_lmd.lmd.tensor import Context

# A rule is `rule(ctx, func, args, kwargs)`: it is called instead of `func(*args, **kwargs)` when a
# decomposed tensor reaches `func`, and returns the op's result with decomposed tensors for the
# decomposed outputs. Module layers call torch.nn.functional, so one entry covers `nn.ReLU()` and
# `F.relu` inside a forward alike.
Rule = Callable[["Context", Callable, tuple, dict], Any]

_TABLE: dict[Callable, Rule] = {}
_attribute_rule: Rule | None = None  # see register_attribute_rule


def register_rule(funcs: Callable | Iterable[Callable], rule: Rule) -> None:
    """Register `rule` for one torch function or several (aliases such as torch.relu, F.relu,
    Tensor.relu are distinct objects: register each one that can be called)."""
    if callable(funcs) and not isinstance(funcs, (list, tuple, set)):
        funcs = [funcs]
    for func in funcs:
        _TABLE[func] = rule


def register_attribute_rule(rule: Rule) -> None:
    """Register the rule for reading any Tensor attribute (x.shape, x.T, ...). Torch reports such a
    read as a call of that attribute's `__get__` (a method-wrapper): one rule answers every attribute,
    instead of one table entry per attribute."""
    global _attribute_rule
    _attribute_rule = rule


def lookup(func: Callable) -> Rule | None:
    """The rule registered for `func`, or None."""
    rule = _TABLE.get(func)
    if rule is None and _is_attribute_read(func):
        return _attribute_rule
    return rule


def registered() -> dict[Callable, Rule]:
    """A copy of the table (attribute reads, answered by one rule, are not listed)."""
    return dict(_TABLE)


def _is_attribute_read(func: Callable) -> bool:
    return func.__class__.__name__ == "method-wrapper" and func.__name__ == "__get__"
