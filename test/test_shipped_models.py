"""The trained default models shipped in ros2_lmd/models/weights (and the modality dropout that
trained them): each loads and reproduces, on a small fixed validation set, the IoU recorded when it
was trained, with all sensors and with each one zeroed, and every sensor is used (so a change to the
models, the simulator or the geometry that silently breaks a shipped model fails here)."""

from __future__ import annotations

import json

import pytest

from ros2_lmd.models.io import load_model
from ros2_lmd.models.registry import weights_path
from ros2_lmd.models.training import check_set_metrics

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
        # every sensor is used: losing any one of them costs IoU
        assert measured["iou_without"][modality] < measured["iou"], modality


def test_modality_dropout_draws_every_proper_subset_evenly():
    # p = 0.5: half of the samples keep every sensor, the other half one of the 2^3 - 2 non-empty
    # proper subsets, each equally likely (1/12 of all samples); a sensor absent before stays absent
    import torch

    from ros2_lmd.models.training import modality_dropout

    present = torch.ones(60_000, 3)
    present[:6, 1] = 0.0
    kept = modality_dropout(present, 0.5, torch.Generator().manual_seed(0))
    assert not kept[:6, 1].any()
    patterns, counts = torch.unique(kept[6:], dim=0, return_counts=True)
    share = dict(zip(map(tuple, patterns.int().tolist()), (counts / counts.sum()).tolist()))
    assert (0, 0, 0) not in share and len(share) == 7
    assert share.pop((1, 1, 1)) == pytest.approx(0.5, abs=0.01)
    for subset, fraction in share.items():
        assert fraction == pytest.approx(1 / 12, abs=0.006), subset
