"""Which variant of the Layer-Wise Modality Decomposition rules to apply to each family of layers (paper
section 4.2.4 and App. C), and, in the spirit of Zennit's composites, to each module: an ordered list
of (modules matched by type and/or name, variants they get), first match wins. The default is the
paper's best: BatchNorm identity, LayerNorm-family ratio, activation identity split, bias derived."""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from torch import nn

if TYPE_CHECKING:
    from ros2_lmd.lmd.registry import Rule

BATCHNORM_RULES = ("identity", "uniform")
LAYERNORM_RULES = ("ratio", "identity", "uniform")
ACTIVATION_SPLITS = ("identity", "sum", "ratio")
BIAS_MODES = ("derived", "explicit")

# Virtual type groups (as Zennit's `BatchNorm`, `Activation`): one entry covers a family of classes.
BATCHNORM_MODULES: tuple[type[nn.Module], ...] = (nn.modules.batchnorm._BatchNorm,)
INSTANCENORM_MODULES: tuple[type[nn.Module], ...] = (nn.modules.instancenorm._InstanceNorm,)
STATNORM_MODULES: tuple[type[nn.Module], ...] = (
    nn.modules.instancenorm._InstanceNorm,
    nn.LayerNorm,
    nn.GroupNorm,
)
ACTIVATION_MODULES: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.LeakyReLU,
    nn.GELU,
    nn.SiLU,
    nn.ELU,
    nn.Sigmoid,
    nn.Tanh,
    nn.Softplus,
)


@dataclass(frozen=True)
class ModuleMatch:
    """Which modules a per-module entry covers: instances of any of `types` (subclasses included)
    and/or modules whose qualified name (as in `named_modules()`) matches the fnmatch pattern `name`
    ("bev_compressor.*", "decoder.up?_skip.*"). Given both, both must hold; given neither, none match."""

    types: tuple[type, ...] = ()
    name: str | None = None

    def __call__(self, name: str, module: nn.Module) -> bool:
        if not self.types and self.name is None:
            return False
        if self.types and not isinstance(module, self.types):
            return False
        return self.name is None or fnmatch.fnmatchcase(name, self.name)


@dataclass(frozen=True)
class ModuleRule:
    """One entry of `RuleVariants.per_module`: the modules `match` covers get these variants instead
    of the decomposition's own (None: keep it). The bias mode and the extra rules stay global: they
    define the plane layout and the rule table of the whole pass."""

    match: ModuleMatch
    batchnorm: str | None = None
    layernorm: str | None = None
    activation_split: str | None = None
    split_eps: float | None = None

    def __post_init__(self) -> None:
        _check_choices(
            "ModuleRule",
            (
                ("batchnorm", self.batchnorm, BATCHNORM_RULES),
                ("layernorm", self.layernorm, LAYERNORM_RULES),
                ("activation_split", self.activation_split, ACTIVATION_SPLITS),
            ),
            allow_none=True,
        )
        if self.split_eps is not None and self.split_eps <= 0:
            raise ValueError(f"ModuleRule.split_eps must be > 0, got {self.split_eps}")

    def overrides(self) -> dict[str, object]:
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name != "match" and getattr(self, f.name) is not None
        }


@dataclass(frozen=True)
class RuleVariants:
    """The choice of LMD rule variants, one per family of layers (passed as `decompose(rules=...)`).

    batchnorm: BatchNorm (and any norm with fixed running statistics): `identity` keeps the shift
        in the bias stream (eq. 10, delta_b = 1), `uniform` spreads it equally over all streams.
    layernorm: LayerNorm, InstanceNorm, GroupNorm (statistics of the current input): `ratio` centres
        every stream on its own mean with the real variance fixed (eq. 11, App. B.3); `identity` and
        `uniform` freeze mean and variance like BatchNorm (section 4.2.4).
    activation_split: what happens to the bias stream at an activation: `identity` scales it like the
        others (eq. 9), `sum` (App. C.1) and `ratio` (App. C.2) hand it to the modalities.
    bias: `derived` computes the bias as total minus the modality streams (one stream fewer);
        `explicit` carries it as its own stream, so conservation is an independent check.
    split_eps: the epsilon of the ratio splitting rule.
    extra_rules: user rules keyed by torch function; they take precedence over the registry.
    per_module: ordered (ModuleRule, ...): an op runs under the variants of the innermost module
        being called (its first matching entry, else these variants); ops outside any module call
        get these. Needs the module (`decompose(module=...)` or a bound method of it).
    """

    batchnorm: str = "identity"
    layernorm: str = "ratio"
    activation_split: str = "identity"
    bias: str = "derived"
    split_eps: float = 1e-6
    extra_rules: Mapping[Callable, Rule] = field(default_factory=dict)
    per_module: tuple[ModuleRule, ...] = ()

    def __post_init__(self) -> None:
        _check_choices(
            "RuleVariants",
            (
                ("batchnorm", self.batchnorm, BATCHNORM_RULES),
                ("layernorm", self.layernorm, LAYERNORM_RULES),
                ("activation_split", self.activation_split, ACTIVATION_SPLITS),
                ("bias", self.bias, BIAS_MODES),
            ),
        )
        if self.split_eps <= 0:
            raise ValueError(f"RuleVariants.split_eps must be > 0, got {self.split_eps}")
        if not isinstance(self.per_module, tuple) or not all(
            isinstance(entry, ModuleRule) for entry in self.per_module
        ):
            raise TypeError("RuleVariants.per_module must be a tuple of ModuleRule")

    def for_module(self, name: str, module: nn.Module) -> RuleVariants:
        """The variants the ops of `module` (qualified name `name`) run under: the first matching
        entry's overrides on these variants, or these variants (without the per-module list)."""
        base = dataclasses.replace(self, per_module=()) if self.per_module else self
        for entry in self.per_module:
            if entry.match(name, module):
                return dataclasses.replace(base, **entry.overrides())  # type: ignore[arg-type]
        return base

    def resolve(self, module: nn.Module) -> dict[str, RuleVariants]:
        """Every sub-module of `module` by qualified name -> the variants its ops run under."""
        return {name: self.for_module(name, sub) for name, sub in module.named_modules()}


def _check_choices(owner: str, items: tuple, allow_none: bool = False) -> None:
    for name, value, allowed in items:
        if allow_none and value is None:
            continue
        if value not in allowed:
            raise ValueError(f"{owner}.{name} must be one of {allowed}, got {value!r}")
