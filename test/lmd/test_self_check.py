"""The decomposition self-check can fail: with the derived bias, conservation holds by construction,
so the pipeline re-decomposes due frames with an explicit bias stream; a deliberately wrong rule
(modality streams scaled by 1.5 at every ReLU) must show there, while the derived conservation
error still looks perfect."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from support.tiny import build_tiny_model

from ros2_lmd.lmd import RuleVariants, registered
from ros2_lmd.monitor.pipeline import Pipeline
from ros2_lmd.sim import simulate_drive


@pytest.fixture(scope="module")
def model_and_frames():
    model = build_tiny_model()
    frames = [f.to_sensor_frame() for f in simulate_drive(2, duration_s=0.6)]
    for i, frame in enumerate(frames):
        frame.frame_index = i
    return model, frames


def _scaled_relu(ctx, func, args, kwargs):
    """The real ReLU rule, then every modality stream scaled by 1.5: a plausible bug."""
    out = registered()[F.relu](ctx, func, args, kwargs)
    planes = out._planes.clone()
    planes[ctx.mods] *= 1.5
    return ctx.wrap(planes)


def test_a_correct_decomposition_passes_on_the_due_frames_only(model_and_frames):
    model, frames = model_and_frames
    pipeline = Pipeline(model, self_check_every=3)
    reports = pipeline.process_batch(frames)
    errors = [r.decomposition_error for r in reports]
    assert [not math.isnan(e) for e in errors] == [i % 3 == 0 for i in range(len(frames))]
    assert max(e for e in errors if not math.isnan(e)) < 1e-4
    assert "self_check" in reports[0].timings_ms


def test_a_wrong_rule_is_flagged_while_derived_conservation_looks_perfect(model_and_frames):
    model, frames = model_and_frames
    wrong = RuleVariants(extra_rules={F.relu: _scaled_relu})
    pipeline = Pipeline(model, rules=wrong, self_check_every=2)
    reports = [pipeline.process(frame) for frame in frames[:4]]
    # frames 1 and 3: the derived bias, conservation holds by construction: blind
    assert all(r.conservation_error < 1e-5 for r in reports[1::2])
    # frames 0 and 2, checked: decomposed with the bias carried, the wrong rule shows
    assert all(r.decomposition_error > 1e-2 for r in reports[0::2])
    assert all(r.conservation_error == r.decomposition_error for r in reports[0::2])


def test_checked_frames_are_decomposed_once_with_the_components_of_the_derived_bias(model_and_frames):
    """A due frame runs one decomposition with the bias as its own stream (not a second one): its
    components are those of the derived-bias decomposition, its bias the carried stream."""
    model, frames = model_and_frames
    checked = Pipeline(model, self_check_every=1).process(frames[0])
    plain = Pipeline(model, self_check_every=0).process(frames[0])
    scale = np.abs(plain.fused).max()
    for name in plain.components:
        np.testing.assert_allclose(checked.components[name], plain.components[name], atol=1e-5 * scale)
    assert checked.decomposition_error < 1e-4 and math.isnan(plain.decomposition_error)


def test_self_check_off_reports_nothing_and_costs_nothing(model_and_frames):
    model, frames = model_and_frames
    reports = Pipeline(model, self_check_every=0).process_batch(frames[:2])
    assert all(math.isnan(r.decomposition_error) for r in reports)
    with pytest.raises(ValueError, match="self_check_every"):
        Pipeline(model, self_check_every=-1)


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs CUDA: bootstrap with LMD_TORCH=cuda on a GPU"
)
def test_the_gpu_pipeline_matches_the_cpu_one(model_and_frames):
    model, frames = model_and_frames
    cpu = Pipeline(copy.deepcopy(model), device="cpu", self_check_every=1).process_batch(frames[:3])
    gpu = Pipeline(copy.deepcopy(model), device="cuda", self_check_every=1).process_batch(frames[:3])
    for a, b in zip(cpu, gpu):
        np.testing.assert_allclose(a.fused, b.fused, atol=1e-4)
        for name in a.components:
            np.testing.assert_allclose(a.components[name], b.components[name], atol=1e-4)
        assert b.decomposition_error < 1e-4 and b.conservation_error < 1e-5
        assert [k.kind for k in a.alerts] == [k.kind for k in b.alerts]
