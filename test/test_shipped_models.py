"""The trained default models shipped in ros2_lmd/models/weights: each loads, reproduces the IoU
recorded at training time on a small fixed validation set, and uses every sensor (zeroing any one
modality lowers IoU)."""

from __future__ import annotations

import json

import pytest

from ros2_lmd.models.io import load_model
from ros2_lmd.models.registry import weights_path
from ros2_lmd.train import check_set_metrics

VARIANTS = ["compact_crl", "compact_cr", "compact_cl"]


@pytest.mark.parametrize("name", VARIANTS)
def test_shipped_model_reaches_its_recorded_iou_and_uses_every_sensor(name):
    record = json.loads(weights_path(name).with_suffix(".train.json").read_text())
    expected = record["check_set"]
    model = load_model(name)
    measured = check_set_metrics(model, frames=expected["frames"])
    # same scenes, same weights: equal up to float differences between machines
    assert measured["iou"] == pytest.approx(expected["iou"], abs=0.01)
    assert measured["iou"] > 0.3
    for modality, iou in measured["iou_without"].items():
        assert iou < measured["iou"], f"{name}: zeroing {modality} did not lower IoU"
