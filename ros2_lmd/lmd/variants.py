"""Which variant of the Layer-Wise Modality Decomposition rules to apply to each family of layers (paper
section 4.2.4 and App. C). The default is the paper's best: BatchNorm identity, LayerNorm-family ratio,
activation identity split, bias stream derived."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ros2_lmd.lmd.registry import Rule

BATCHNORM_RULES = ("identity", "uniform")
LAYERNORM_RULES = ("ratio", "identity", "uniform")
ACTIVATION_SPLITS = ("identity", "sum", "ratio")
BIAS_MODES = ("derived", "explicit")


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
    """

    batchnorm: str = "identity"
    layernorm: str = "ratio"
    activation_split: str = "identity"
    bias: str = "derived"
    split_eps: float = 1e-6
    extra_rules: Mapping[Callable, Rule] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("batchnorm", self.batchnorm, BATCHNORM_RULES),
            ("layernorm", self.layernorm, LAYERNORM_RULES),
            ("activation_split", self.activation_split, ACTIVATION_SPLITS),
            ("bias", self.bias, BIAS_MODES),
        ):
            if value not in allowed:
                raise ValueError(f"RuleVariants.{name} must be one of {allowed}, got {value!r}")
        if self.split_eps <= 0:
            raise ValueError(f"RuleVariants.split_eps must be > 0, got {self.split_eps}")
