"""The monitor: SensorFrame -> FrameReport (model, LMD, detections, per-modality shares, alerts).
No ROS imports: the node and the replay tools are thin adapters around `Pipeline`."""

from ros2_lmd.monitor.alerts import AlertConfig, AlertEngine
from ros2_lmd.monitor.report import Alert, Detection, FrameReport

__all__ = ["AlertConfig", "AlertEngine", "Alert", "Detection", "FrameReport", "Pipeline"]


def __getattr__(name):  # Pipeline imports torch and the models: load it only when asked for
    if name == "Pipeline":
        from ros2_lmd.monitor.pipeline import Pipeline

        return Pipeline
    raise AttributeError(name)
