"""The rule table: torch function -> rule. A rule is `rule(ctx, func, args, kwargs)` and returns the
op's result with decomposed tensors for decomposed outputs. Module layers call torch.nn.functional,
so one table covers `nn.ReLU()` and `F.relu` inside a forward alike.

Users extend it with `register_rule(fn, rule)` (process-wide) or `Rules(extra_rules=...)` (one
decomposition). Ops that are linear in their one tensor argument can use `linear_rule`.
"""

from __future__ import annotations

import threading
from typing import Callable, Iterable

_TABLE: dict[Callable, Callable] = {}
_LOADED = False
_LOADING = threading.Lock()  # decompositions may start in several threads at once (the node)


def register_rule(funcs: Callable | Iterable[Callable], rule: Callable) -> None:
    """Register `rule` for one torch function or several (aliases such as torch.relu, F.relu,
    Tensor.relu are distinct objects: register each one that can be called)."""
    if callable(funcs) and not isinstance(funcs, (list, tuple, set)):
        funcs = [funcs]
    for func in funcs:
        _TABLE[func] = rule


def lookup(func: Callable) -> Callable | None:
    _ensure_loaded()
    return _TABLE.get(func)


def registered() -> dict[Callable, Callable]:
    _ensure_loaded()
    return dict(_TABLE)


def _ensure_loaded() -> None:
    global _LOADED
    if _LOADED:
        return
    with _LOADING:
        if not _LOADED:
            # Importing the op modules fills the table; the flag is set once it is full.
            from ros2_lmd.lmd import ops_attention, ops_linear, ops_nonlinear  # noqa: F401
            _LOADED = True
