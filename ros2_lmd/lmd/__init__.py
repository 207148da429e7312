"""Layer-Wise Modality Decomposition for PyTorch (paper: shared/paper/lmd-paper.txt).

`decompose(fn, {"camera": f_cam, "radar": f_rad})` runs `fn` once and splits every output into one
component per modality plus a bias, exactly: total == sum(components) + bias. Torch only: nothing
here knows about sensors, BEV or ROS.
"""

from ros2_lmd.lmd.decompose import Decomposition, decompose
from ros2_lmd.lmd.ops_linear import linear_rule
from ros2_lmd.lmd.registry import register_rule, registered
from ros2_lmd.lmd.rules import Rules
from ros2_lmd.lmd.tensor import Context, LMDRuleError, LMDTensor

__all__ = ["decompose", "Decomposition", "Rules", "register_rule", "registered", "linear_rule",
           "LMDRuleError", "LMDTensor", "Context"]
