"""The trained default models shipped in ros2_lmd/models/weights: each loads and reproduces, on a
small fixed validation set, the IoU recorded when it was trained, with all sensors and with each
one zeroed (so a change to the models, the simulator or the geometry that silently breaks a
shipped model fails here)."""

from __future__ import annotations

import json

import pytest

from ros2_lmd.models.io import load_model
from ros2_lmd.models.registry import weights_path
from ros2_lmd.train import check_set_metrics

VARIANTS = ["compact_crl", "compact_cr", "compact_cl"]


@pytest.mark.parametrize("name", VARIANTS)
def test_shipped_model_reproduces_its_recorded_iou(name):
    record = json.loads(weights_path(name).with_suffix(".train.json").read_text())
    expected = record["check_set"]
    model = load_model(name)
    measured = check_set_metrics(model, frames=expected["frames"])
    # same scenes, same weights: equal up to float differences between machines
    assert measured["iou"] == pytest.approx(expected["iou"], abs=0.01)
    assert measured["iou"] > 0.05  # a model that detects nothing would also "reproduce" ~0
    for modality, iou in expected["iou_without"].items():
        assert measured["iou_without"][modality] == pytest.approx(iou, abs=0.01), modality
