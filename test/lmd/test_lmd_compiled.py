"""The compiled decomposition (lmd/compiled.py): traced and compiled once per input signature, equal
to eager within its stated tolerance, conserving, and falling back to eager (logged once) whenever
compiling fails or its result is wrong."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from support.tiny import build_tiny_model

from ros2_lmd.lmd import CompiledDecomposition, RuleVariants, decompose
from ros2_lmd.lmd.compiled import (
    COMPILE_CACHE_ENV,
    COMPILE_TOLERANCE,
    signature,
    use_persistent_compile_cache,
)
from ros2_lmd.lmd.reference_nets import SimpleBEVDecoder, randomise_norm_statistics
from ros2_lmd.monitor.pipeline import OUTPUT_KEY, Pipeline
from ros2_lmd.sim import simulate_drive

pytestmark = pytest.mark.slow  # test/conftest.py: tiers


def _decoder_and_features(batch: int = 1, seed: int = 0):
    torch.manual_seed(seed)
    channels = {"camera": 6, "radar": 3, "lidar": 4}
    model = randomise_norm_statistics(SimpleBEVDecoder(channels, latent=8)).eval()
    features = {m: torch.randn(batch, c, 16, 16) for m, c in channels.items()}
    return model, features


def _relative(got: torch.Tensor, expected: torch.Tensor, scale: torch.Tensor) -> float:
    return float((got.double() - expected.double()).abs().max() / scale.abs().max().double())


@pytest.mark.parametrize("bias", ["derived", "explicit"])
def test_compiled_matches_eager_and_conserves(bias):
    model, features = _decoder_and_features()
    rules = RuleVariants(bias=bias)
    compiled = CompiledDecomposition(model, ["segmentation"], rules)
    with torch.inference_mode():
        eager = decompose(model, features, rules=rules)["segmentation"]
        got = compiled(features)["segmentation"]
    graph = compiled.graphs[signature(features)]
    assert graph.call is not None, graph.reason
    assert compiled.eager_calls == 0
    assert graph.max_difference <= COMPILE_TOLERANCE
    assert _relative(got.total, eager.total, eager.total) <= COMPILE_TOLERANCE
    for m in features:
        assert _relative(got.components[m], eager.components[m], eager.total) <= COMPILE_TOLERANCE
    # with the bias carried through every compiled rule, conservation is a real check
    assert got.conservation_error <= 1e-5
    # and the real output is the network's
    with torch.inference_mode():
        assert _relative(got.total, model(features)["segmentation"], eager.total) <= COMPILE_TOLERANCE


def test_one_graph_per_signature_and_unprepared_signatures_run_eager():
    model, features = _decoder_and_features(batch=1)
    _, pair = _decoder_and_features(batch=2)
    compiled = CompiledDecomposition(model, ["segmentation"], build_on_demand=False, backend="eager")
    compiled.prepare(features)
    with torch.inference_mode():
        compiled(features)
        compiled(features)
        assert list(compiled.graphs) == [signature(features)] and compiled.eager_calls == 0
        got = compiled(pair)["segmentation"]  # batch 2 was never prepared: eager, counted
        expected = decompose(model, pair)["segmentation"]
    assert compiled.eager_calls == 1 and len(compiled.graphs) == 1
    assert torch.equal(got.total, expected.total)
    on_demand = CompiledDecomposition(model, ["segmentation"], backend="eager")
    with torch.inference_mode():
        on_demand(features)
        on_demand(pair)
    assert len(on_demand.graphs) == 2 and on_demand.eager_calls == 0


def test_the_thread_count_is_part_of_the_signature():
    _, features = _decoder_and_features()
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = signature(features)
        torch.set_num_threads(2)
        assert signature(features) != one
    finally:
        torch.set_num_threads(before)


class _DataDependent(torch.nn.Module):
    """Scales by a value read out of the data: a traced graph would freeze it, so it must not be
    compiled."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(5, 1, 1)

    def forward(self, features):
        x = torch.cat([features["camera"], features["radar"]], 1)
        scale = 2.0 if float(x.sum().item()) > 0 else -1.0
        return {"bev_logits": self.conv(x) * scale}


def test_data_dependent_control_flow_falls_back_to_eager_logged_once(caplog):
    model = _DataDependent().eval()
    positive = {"camera": torch.ones(1, 3, 4, 4), "radar": torch.ones(1, 2, 4, 4)}
    negative = {m: -x for m, x in positive.items()}
    compiled = CompiledDecomposition(model, ["bev_logits"], backend="eager")
    with caplog.at_level(logging.WARNING, logger="ros2_lmd.lmd.compiled"), torch.inference_mode():
        for features in (positive, negative, positive):
            got = compiled(features)["bev_logits"]
            expected = decompose(model, features)["bev_logits"]
            assert torch.allclose(got.total, expected.total)
            for m in features:
                assert torch.allclose(got.components[m], expected.components[m])
    graph = compiled.graphs[signature(positive)]
    assert graph.call is None and "_local_scalar_dense" in graph.reason
    assert compiled.eager_calls == 3
    warnings = [r for r in caplog.records if "runs eager" in r.getMessage()]
    assert len(warnings) == 1 and "camera (1, 3, 4, 4)" in warnings[0].getMessage()


def _wrong_backend(gm, example_inputs):
    """A compiler that returns a subtly wrong graph (every plane 1 % too large)."""

    def call(*args):
        return tuple(out * 1.01 for out in gm(*args))

    return call


def test_a_compiled_graph_that_differs_from_eager_is_not_used(caplog):
    model, features = _decoder_and_features()
    compiled = CompiledDecomposition(model, ["segmentation"], backend=_wrong_backend)
    with caplog.at_level(logging.WARNING, logger="ros2_lmd.lmd.compiled"), torch.inference_mode():
        got = compiled(features)["segmentation"]
        expected = decompose(model, features)["segmentation"]
    graph = compiled.graphs[signature(features)]
    assert graph.call is None and "output differs from eager by 1.00e-02" in graph.reason
    assert torch.equal(got.total, expected.total)
    assert any("differs from eager" in r.getMessage() for r in caplog.records)


def _swapping_backend(gm, example_inputs):
    """A compiler whose graph hands the first modality's component to the second and back: the
    real output is right, the decomposition wrong."""

    def call(*args):
        return tuple(out[[0, 2, 1, *range(3, out.shape[0])]] for out in gm(*args))

    return call


def test_a_compiled_graph_with_wrong_components_is_not_used():
    model, features = _decoder_and_features()
    compiled = CompiledDecomposition(model, ["segmentation"], backend=_swapping_backend)
    with torch.inference_mode():
        got = compiled(features)["segmentation"]
        expected = decompose(model, features)["segmentation"]
    graph = compiled.graphs[signature(features)]
    assert graph.call is None and graph.max_difference <= COMPILE_TOLERANCE
    assert graph.component_mismatch >= 0.4 and "of the compiled components differ" in graph.reason
    assert torch.equal(got.components["camera"], expected.components["camera"])


def test_compiled_pipeline_gives_the_eager_pipelines_alerts():
    """On real frames a few cells differ more than on random inputs: where a pre-activation is
    within rounding of zero, the activation rule's secant flips (eager at 1 and 2 threads differs the
    same way); so the bar is: same real output, same detections and alerts, components within the
    tolerance in at least 99 % of cells, conservation to float precision."""
    frames = [
        f.to_sensor_frame() for f in simulate_drive(3, duration_s=1.5, faults="camera:blackout@0.6-1.5")
    ]
    torch.manual_seed(0)
    eager = Pipeline(build_tiny_model())
    torch.manual_seed(0)
    compiled = Pipeline(build_tiny_model(), decomposition="compiled")
    assert compiled.warm_up(1) > 0
    assert compiled.decomposition_status == "compiled, batch 1: compiled"
    assert compiled.frames_processed == 0  # warming up changed no state
    for frame in frames:
        a, b = eager.process(frame), compiled.process(frame)
        scale = np.abs(a.fused).max()
        assert np.abs(a.fused - b.fused).max() <= COMPILE_TOLERANCE * scale
        for m in a.components:
            close = np.abs(a.components[m] - b.components[m]) <= COMPILE_TOLERANCE * scale
            assert close.mean() >= 0.99, (frame.frame_index, m, close.mean())
        assert b.conservation_error <= 1e-5
        assert [(d.cells, d.supporting) for d in a.detections] == [
            (d.cells, d.supporting) for d in b.detections
        ]
        assert [(x.kind, x.modality, x.sensor) for x in a.alerts] == [
            (x.kind, x.modality, x.sensor) for x in b.alerts
        ]
    assert compiled.compiled.eager_calls == 0
    assert eager.decomposition_status == "eager"


def _failing_backend(gm, example_inputs):
    raise RuntimeError("this backend compiles nothing")


def test_warm_up_runs_a_whole_frame_only_when_a_graph_is_left_eager(monkeypatch):
    """The warm-up runs the model and builds (and so runs) each graph; a whole blank frame after
    that would only repeat them. A graph left eager has not run: then the frame is run."""
    model = build_tiny_model()
    pipeline = Pipeline(model, decomposition="compiled", self_check_every=5)

    def compiled(rules, backend):
        return CompiledDecomposition(model.fuse, (OUTPUT_KEY,), rules, build_on_demand=False, backend=backend)

    pipeline.compiled = compiled(pipeline.rules, "eager")
    pipeline.compiled_checking = compiled(pipeline.checking_rules, "eager")
    computed = []
    original = pipeline.compute
    monkeypatch.setattr(pipeline, "compute", lambda frames: computed.append(len(frames)) or original(frames))
    pipeline.warm_up(2)
    assert computed == [] and len(pipeline.compiled.graphs) == len(pipeline.compiled_checking.graphs) == 1
    pipeline.compiled = compiled(pipeline.rules, _failing_backend)
    pipeline.warm_up(2)
    assert computed == [2] and pipeline.decomposition_status.startswith("compiled, batch 2: eager (")
    assert pipeline.frames_processed == 0


def test_pipelines_over_one_model_share_its_compiled_graphs():
    model = build_tiny_model()
    first = Pipeline(model, decomposition="compiled")
    first.warm_up(1)
    second = Pipeline(model, decomposition="compiled")
    assert second.compiled is first.compiled and len(second.compiled.graphs) == 1
    other_rules = Pipeline(model, rules=RuleVariants(bias="explicit"), decomposition="compiled")
    assert other_rules.compiled is not first.compiled and not other_rules.compiled.graphs


def test_compile_cache_is_kept_out_of_tmp_unless_the_user_chose_one(monkeypatch, tmp_path):
    monkeypatch.delenv(COMPILE_CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert use_persistent_compile_cache() == tmp_path / "xdg" / "ros2_lmd" / "torchinductor"
    assert os.environ[COMPILE_CACHE_ENV] == str(tmp_path / "xdg" / "ros2_lmd" / "torchinductor")
    monkeypatch.setenv(COMPILE_CACHE_ENV, str(tmp_path / "mine"))
    assert use_persistent_compile_cache() == tmp_path / "mine"


COMPILE_IN_A_FRESH_PROCESS = """
import torch
from ros2_lmd.lmd import CompiledDecomposition
from ros2_lmd.lmd.compiled import signature
from ros2_lmd.lmd.reference_nets import SimpleBEVDecoder
torch.manual_seed(0)
model = SimpleBEVDecoder({"camera": 2, "lidar": 2}, latent=4).eval()
features = {m: torch.randn(1, 2, 8, 8) for m in ("camera", "lidar")}
compiled = CompiledDecomposition(model, ["segmentation"])
with torch.inference_mode():
    compiled(features)
assert compiled.graphs[signature(features)].call is not None
"""


def test_a_compile_writes_its_kernels_into_the_persistent_cache(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != COMPILE_CACHE_ENV}
    env["XDG_CACHE_HOME"] = str(tmp_path)
    subprocess.run([sys.executable, "-c", COMPILE_IN_A_FRESH_PROCESS], env=env, check=True, timeout=600)
    written = [p for p in (tmp_path / "ros2_lmd" / "torchinductor").rglob("*") if p.is_file()]
    assert written, "inductor wrote nothing into $XDG_CACHE_HOME/ros2_lmd/torchinductor"


def test_inductors_own_default_in_the_variable_counts_as_not_chosen(monkeypatch, tmp_path):
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    monkeypatch.setenv(COMPILE_CACHE_ENV, default_cache_dir())  # what importing inductor writes
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert use_persistent_compile_cache() == tmp_path / "ros2_lmd" / "torchinductor"
