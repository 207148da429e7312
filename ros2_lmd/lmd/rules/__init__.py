"""The Layer-Wise Modality Decomposition rules, one module per family of ops (linear, nonlinear,
attention) with its rule table at the end. Importing this package registers every rule."""

from ros2_lmd.lmd.rules import attention, linear, nonlinear  # noqa: F401 (each one registers its rules)
