"""The trained default models shipped in ros2_lmd/models/weights (and the modality dropout that
trained them): each loads and reproduces, on a small fixed validation set, the IoU recorded when it
was trained, with all sensors and with each one zeroed, and every sensor is used (so a change to the
models, the simulator or the geometry that silently breaks a shipped model fails here)."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
import torch

from ros2_lmd.models.io import load_model
from ros2_lmd.models.registry import weights_path
from ros2_lmd.training import VAL_SEED_BASE, batch_inputs, build_dataset, simulated_sample

VARIANTS = ["compact_crl", "compact_cr", "compact_cl"]
# A cell's prediction can only differ from the training machine's if its logit is within float
# noise of the threshold (logit 0). Measured here: the fusion in float32 vs float64 differs by at most
# 2e-5 logits, 1 vs 2 torch threads by 4e-6 (logits up to ~10). DELTA is 50x the former.
DELTA = 1e-3


@pytest.fixture(scope="module")
def scenes():
    """The simulated validation scenes, made once for the three models (same seeds, same sizes)."""
    return functools.lru_cache(maxsize=None)(simulated_sample)


def numpy_iou(logits: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    """IoU of (sigmoid(logit) >= 0.5, i.e. logit >= 0) against truth, summed over all frames, and
    the range it could take if any cell within DELTA of the threshold were predicted the other way:
    such a cell that is true can only move the intersection (by 1), one that is not true only the
    union; the extremes turn every such cell against (or for) the IoU."""
    predicted = logits >= 0.0
    intersection = int(np.logical_and(predicted, truth).sum())
    union = int(np.logical_or(predicted, truth).sum())
    near = np.abs(logits) < DELTA
    count = lambda mask: int((near & mask).sum())  # noqa: E731
    true_on, true_off = count(truth & predicted), count(truth & ~predicted)
    false_on, false_off = count(~truth & predicted), count(~truth & ~predicted)
    low = (intersection - true_on) / (union + false_off)
    high = (intersection + true_off) / (union - false_on)
    return intersection / union, low, high


def within(value: float, low: float, high: float) -> bool:
    return low - 1e-12 <= value <= high + 1e-12


@pytest.mark.parametrize("name", VARIANTS)
def test_shipped_model_reproduces_its_recorded_iou(name, scenes):
    record = json.loads(weights_path(name).with_suffix(".train.json").read_text())
    expected = record["check_set"]
    model = load_model(name).eval()
    frames = expected["frames"]
    data = build_dataset(model, range(VAL_SEED_BASE, VAL_SEED_BASE + frames), scenes, progress=False)
    inputs, target = batch_inputs(data, torch.arange(frames))
    truth = target.numpy() >= 0.5
    with torch.no_grad():
        features = model.encode(inputs)
        measured = {None: numpy_iou(model.fuse(features)["bev_logits"].numpy(), truth)}
        for m in model.modalities:  # a lost sensor: its features zeroed (the LMD reference input)
            zeroed = {k: (torch.zeros_like(v) if k == m else v) for k, v in features.items()}
            measured[m] = numpy_iou(model.fuse(zeroed)["bev_logits"].numpy(), truth)
    iou, low, high = measured[None]
    # same scenes, same weights: equal up to predictions within float noise of the threshold
    assert within(expected["iou"], low, high), (expected["iou"], iou, low, high)
    assert high - low < 0.005  # the noise band itself is narrow: this is a real check
    assert iou > 0.05  # a model that detects nothing would also "reproduce" ~0
    assert set(expected["iou_without"]) == set(model.modalities)
    for modality, recorded in expected["iou_without"].items():
        without, low, high = measured[modality]
        assert within(recorded, low, high), (modality, recorded, without, low, high)
        # every sensor is used: losing any one of them costs IoU
        assert without < iou, modality


def test_modality_dropout_draws_every_proper_subset_evenly():
    # p = 0.5: half of the samples keep every sensor, the other half one of the 2^3 - 2 non-empty
    # proper subsets, each equally likely (1/12 of all samples); a sensor absent before stays absent
    from ros2_lmd.training import modality_dropout

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
