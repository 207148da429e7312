"""Sensor corruptions from the published robustness taxonomies (Dong et al., CVPR 2023; MultiCorrupt;
RoboBEV/nuScenes-C; Robo3D), as pure functions on one sensor's payload or message stream, seeded by
a numpy Generator: `replay.corrupt` applies them to any rosbag2 (`ros2-lmd corrupt`), and the same
functions apply to a model's inputs. `registry.KINDS` lists every kind with its severities 1 to 5;
docs/corruptions.md shows them."""

from ros2_lmd.corrupt.registry import DEFAULT_SEVERITY, KINDS, SEVERITIES, Corruption, kind_for

__all__ = ["DEFAULT_SEVERITY", "KINDS", "SEVERITIES", "Corruption", "kind_for"]
