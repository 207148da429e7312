"""Layer-Wise Modality Decomposition for PyTorch. `decompose(fn, {"camera": f_cam, "radar": f_rad})`
runs `fn` once and splits every output exactly into one component per modality plus a bias:
total == sum(components) + bias. Torch only: nothing here knows about sensors, BEV or ROS."""

# Layers, each importing only those above it: the core (variants, registry, tensor), the rules,
# which fill the registry on import, and decompose.
from ros2_lmd.lmd.compiled import CompiledDecomposition
from ros2_lmd.lmd.decompose import Decomposition, decompose
from ros2_lmd.lmd.registry import register_rule, registered
from ros2_lmd.lmd.rules.common import arg as op_argument
from ros2_lmd.lmd.rules.linear import linear_rule
from ros2_lmd.lmd.rules.nonlinear import ACTIVATIONS, value_and_slope_at_zero
from ros2_lmd.lmd.tensor import Context, LMDRuleError, LMDTensor
from ros2_lmd.lmd.variants import (
    ACTIVATION_MODULES,
    BATCHNORM_MODULES,
    INSTANCENORM_MODULES,
    STATNORM_MODULES,
    ModuleMatch,
    ModuleRule,
    RuleVariants,
)

__all__ = [
    "decompose",
    "Decomposition",
    "CompiledDecomposition",
    "RuleVariants",
    # rule choice per module (RuleVariants.per_module) and the virtual type groups to match by
    "ModuleMatch",
    "ModuleRule",
    "ACTIVATION_MODULES",
    "BATCHNORM_MODULES",
    "INSTANCENORM_MODULES",
    "STATNORM_MODULES",
    "register_rule",
    "registered",
    "linear_rule",
    "LMDRuleError",
    "LMDTensor",
    "Context",
    # for code that linearises a network itself (eval/frozen.py, the paper's baselines): the ops the
    # activation rule covers, an activation's value and slope at 0, and reading an op's arguments
    "ACTIVATIONS",
    "value_and_slope_at_zero",
    "op_argument",
]
