"""End-to-end properties of the LMD engine: conservation (eq. 8), total unchanged, separation
(eq. 14), the Jacobian oracle for piecewise-linear nets, and the API's promises (model untouched,
inference_mode, records, loud failure on unknown ops)."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ros2_lmd.lmd import Decomposition, LMDRuleError, RuleVariants, decompose, register_rule
from ros2_lmd.lmd.reference_nets import (
    LayerNormMLP,
    PiecewiseLinearNet,
    SimpleBEVDecoder,
    TransformerFusion,
    randomise_norm_statistics,
)

VARIANTS = [
    RuleVariants(),
    RuleVariants(bias="explicit"),
    RuleVariants(batchnorm="uniform", layernorm="identity", bias="explicit"),
    RuleVariants(batchnorm="identity", layernorm="identity"),
    RuleVariants(batchnorm="identity", layernorm="uniform", bias="explicit"),
    RuleVariants(activation_split="sum", bias="explicit"),
    RuleVariants(activation_split="ratio", bias="explicit"),
    RuleVariants(activation_split="ratio"),
]


def _bev(dtype=torch.float32, three=False, seed=0):
    torch.manual_seed(seed)  # layer initialisation
    g = torch.Generator().manual_seed(seed)
    channels = {"camera": 6, "radar": 3, "lidar": 4} if three else {"camera": 6, "radar": 3}
    model = randomise_norm_statistics(SimpleBEVDecoder(channels, latent=16), g).eval().to(dtype)
    features = {m: torch.randn(2, c, 16, 16, generator=g, dtype=dtype) for m, c in channels.items()}
    return model, features


def _mlp(dtype=torch.float32, seed=1):
    torch.manual_seed(seed)  # layer initialisation
    g = torch.Generator().manual_seed(seed)
    sizes = {"camera": 10, "radar": 5, "lidar": 7}
    model = randomise_norm_statistics(LayerNormMLP(sizes), g).eval().to(dtype)
    return model, {m: torch.randn(3, n, generator=g, dtype=dtype) for m, n in sizes.items()}


def _transformer(dtype=torch.float32, seed=2):
    torch.manual_seed(seed)  # layer initialisation
    g = torch.Generator().manual_seed(seed)
    sizes = {"camera": 8, "radar": 5}
    model = randomise_norm_statistics(TransformerFusion(sizes), g).eval().to(dtype)
    tokens = {"camera": 4, "radar": 3}
    return model, {m: torch.randn(2, tokens[m], n, generator=g, dtype=dtype) for m, n in sizes.items()}


NETS = {
    "bev": _bev,
    "bev3": lambda dtype=torch.float32: _bev(dtype, three=True),
    "mlp": _mlp,
    "transformer": _transformer,
}


def _decs(out):
    return out.values() if isinstance(out, dict) else [out]


@pytest.mark.parametrize("net", list(NETS))
@pytest.mark.parametrize(
    "rules", VARIANTS, ids=lambda r: f"{r.batchnorm}-{r.layernorm}-{r.activation_split}-{r.bias}"
)
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)], ids=["f32", "f64"])
def test_conservation_and_total(net, rules, dtype, tol):
    model, features = NETS[net](dtype=dtype)
    with torch.no_grad():
        plain = model(features)
        out = decompose(model, features, rules=rules)
    plain_list = list(plain.values()) if isinstance(plain, dict) else [plain]
    for dec, ref in zip(_decs(out), plain_list):
        # The default rules must meet the bound as stated. Other variants (frozen LayerNorm
        # statistics, bias splitting) and attention's explicit cross-term bias can produce streams
        # much larger than their sum, so float rounding there scales with the streams.
        streams = max(float(c.abs().max()) for c in [*dec.components.values(), dec.bias])
        default = (rules.batchnorm, rules.layernorm, rules.activation_split) == (
            "identity",
            "ratio",
            "identity",
        ) and (rules.bias == "derived" or net != "transformer")
        amplification = 1.0 if default else max(1.0, streams / float(ref.abs().max()))
        assert dec.conservation_error <= tol * amplification
        scale = ref.abs().max().item()
        assert (dec.total - ref).abs().max().item() <= 1e-6 * max(scale, 1.0) * (
            1 if dtype == torch.float32 else 1e-6
        )
        # an independent check of eq. 8, summing the streams ourselves
        summed = sum(dec.components.values()) + dec.bias
        assert torch.allclose(summed, ref, rtol=0, atol=tol * max(scale, 1.0) * 10)


@pytest.mark.parametrize("net", list(NETS))
@pytest.mark.parametrize(
    "rules", VARIANTS[:7], ids=lambda r: f"{r.batchnorm}-{r.layernorm}-{r.activation_split}"
)
def test_separation_with_fixed_linearisation(net, rules):
    """Eq. 14: with the linearisation fixed at the clean input, replacing modality m's input
    leaves every other component unchanged (R_p/C = 1.00, MSE 0.00) and changes component m."""
    model, clean = NETS[net](dtype=torch.float64)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        base = decompose(model, clean, rules=rules, linearize_at=clean)
        for perturbed_modality in clean:
            perturbed = dict(clean)
            perturbed[perturbed_modality] = torch.randn(
                clean[perturbed_modality].shape, generator=g, dtype=torch.float64
            )
            out = decompose(model, perturbed, rules=rules, linearize_at=clean)
            for dec_p, dec_c in zip(_decs(out), _decs(base)):
                for m in clean:
                    diff = (dec_p.components[m] - dec_c.components[m]).abs().max().item()
                    if m == perturbed_modality:
                        assert diff > 1e-6, f"{m} component did not react to its own perturbation"
                    else:
                        assert diff <= 1e-9, f"{m} component changed when {perturbed_modality} changed"
                if net != "transformer":  # attention's cross-modal products live in the bias
                    assert torch.allclose(dec_p.bias, dec_c.bias, atol=1e-9)


def test_linearize_at_the_input_itself_matches_plain_decomposition():
    model, features = _bev(torch.float64)
    with torch.no_grad():
        a = decompose(model, features, rules=RuleVariants(bias="explicit"))
        b = decompose(model, features, linearize_at=features)
    for key in a:
        for m in features:
            assert torch.allclose(a[key].components[m], b[key].components[m], atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_components_equal_jacobian_vector_products(seed):
    """Oracle: for piecewise-linear nets with identity rules, component m = J(x) x_m, i.e. the jvp
    of fn at the input along the direction that is x_m in modality m and zero elsewhere."""
    g = torch.Generator().manual_seed(seed)
    channels = {"camera": 4, "radar": 2, "lidar": 3}
    model = randomise_norm_statistics(PiecewiseLinearNet(channels), g).eval().double()
    features = {m: torch.randn(2, c, 8, 8, generator=g, dtype=torch.float64) for m, c in channels.items()}
    dec = decompose(model, features)
    for m in channels:
        tangent = {k: (v if k == m else torch.zeros_like(v)) for k, v in features.items()}
        _, jvp = torch.func.jvp(model, (features,), (tangent,))
        assert torch.allclose(dec.components[m], jvp, atol=1e-5, rtol=0)
        assert (dec.components[m] - jvp).abs().max().item() < 1e-10


def test_zero_input_gives_exactly_zero_component():
    model, features = _bev()
    features["radar"] = torch.zeros_like(features["radar"])
    with torch.no_grad():
        out = decompose(model, features, rules=RuleVariants(activation_split="identity"))
    for dec in out.values():
        assert torch.count_nonzero(dec.components["radar"]) == 0
        assert torch.count_nonzero(dec.components["camera"]) > 0


def test_bias_free_linear_model_component_is_model_on_that_modality_alone():
    g = torch.Generator().manual_seed(3)
    convs = nn.ModuleDict(
        {
            "camera": nn.Conv2d(3, 4, 3, padding=1, bias=False),
            "radar": nn.Conv2d(2, 4, 3, padding=1, bias=False),
        }
    )
    head = nn.Linear(4, 2, bias=False)

    def fn(f):
        x = convs["camera"](f["camera"]) + convs["radar"](f["radar"])
        x = F.avg_pool2d(x, 2)
        return head(x.flatten(2).transpose(1, 2)).sum(1)

    features = {"camera": torch.randn(2, 3, 8, 8, generator=g), "radar": torch.randn(2, 2, 8, 8, generator=g)}
    with torch.no_grad():
        dec = decompose(fn, features)
        for m in features:
            alone = {k: (v if k == m else torch.zeros_like(v)) for k, v in features.items()}
            assert torch.allclose(dec.components[m], fn(alone), atol=1e-6)
        assert dec.bias.abs().max().item() < 1e-6


@pytest.mark.parametrize("net", list(NETS))
def test_explicit_and_derived_bias_agree(net):
    model, features = NETS[net](dtype=torch.float64)
    with torch.no_grad():
        derived = decompose(model, features)
        explicit = decompose(model, features, rules=RuleVariants(bias="explicit"))
    for a, b in zip(_decs(derived), _decs(explicit)):
        assert torch.allclose(a.bias, b.bias, atol=1e-10)
        for m in features:
            assert torch.allclose(a.components[m], b.components[m], atol=1e-12)


def _state(model):
    return {
        k: v.detach().clone() for k, v in itertools.chain(model.named_parameters(), model.named_buffers())
    }


def test_model_is_never_modified_even_after_an_error():
    model, features = _bev()
    model.train()  # BatchNorm in training mode has no rule: decompose must fail loudly...
    before = _state(model)
    hooks_before = sum(len(m._forward_hooks) for m in model.modules())
    with pytest.raises(LMDRuleError, match="eval"):
        decompose(model, features, record=["layer1"])
    after = _state(model)
    assert before.keys() == after.keys()
    for key in before:  # ...and leave running statistics untouched
        assert torch.equal(before[key], after[key]), key
    assert sum(len(m._forward_hooks) for m in model.modules()) == hooks_before
    model.eval()
    decompose(model, features)
    for key, value in _state(model).items():
        assert torch.equal(before[key], value), key


def test_batch_norm_rule_refuses_batch_statistics():
    # Through a plain function the module guard cannot look inside, but the rule still refuses.
    # (nn.BatchNorm2d itself counts the call in num_batches_tracked before F.batch_norm runs: pass
    # the model, or module=, to have decompose refuse before anything runs.)
    with pytest.raises(LMDRuleError, match="batch_norm"):
        decompose(
            lambda f: F.batch_norm(f["camera"], None, None, training=True), {"camera": torch.randn(4, 3)}
        )


def test_instance_norm_rule_does_not_update_running_stats():
    norm = nn.InstanceNorm2d(4, affine=True, track_running_stats=True).train()
    before = norm.running_mean.clone()
    out = decompose(
        lambda f: F.instance_norm(
            f["camera"], norm.running_mean, norm.running_var, norm.weight, norm.bias, True
        ),
        {"camera": torch.randn(2, 4, 5, 5) + 3.0},
    )
    assert torch.equal(norm.running_mean, before)
    assert out.conservation_error < 1e-5


def test_unknown_op_raises_naming_it():
    def fn(f):
        return torch.erfinv(torch.tanh(f["camera"]) * 0.5)

    with pytest.raises(LMDRuleError, match=r"torch\.erfinv.*register_rule"):
        decompose(fn, {"camera": torch.randn(3)})


def test_lp_pooling_is_not_taken_for_a_linear_op():
    # (sum x^p)^(1/p) pooled stream by stream would not sum to the pooled total.
    with pytest.raises(LMDRuleError, match="lp_pool2d"):
        decompose(
            lambda f: F.lp_pool2d(f["camera"] + f["lidar"], 2.0, 2),
            {"camera": torch.rand(1, 1, 4, 4), "lidar": torch.rand(1, 1, 4, 4)},
        )


def test_per_sample_conservation_errors_match_the_formula():
    total = torch.tensor([[4.0, -2.0], [1.0, 0.5]])
    components = {
        "camera": torch.tensor([[1.0, -1.0], [0.5, 0.0]]),
        "lidar": torch.tensor([[2.0, -1.0], [0.25, 0.5]]),
    }
    bias = torch.tensor([[0.5, 0.0], [0.0, 0.0]])  # sample 0 off by 0.5 at one cell, sample 1 by 0.25
    dec = Decomposition(total, components, bias)
    assert dec.conservation_errors(batch_dim=0) == [0.5 / 4.0, 0.25 / 1.0]
    assert dec.conservation_errors(batch_dim=1) == [0.5 / 4.0, 0.0 / 2.0]
    assert dec.conservation_error == 0.5 / 4.0  # the whole tensor: max residual / max |total|


@pytest.fixture
def scratch_registry(monkeypatch):
    """register_rule is process-wide: give the test a copy of the table, restored afterwards."""
    from ros2_lmd.lmd import registry

    monkeypatch.setattr(registry, "_TABLE", dict(registry._TABLE))


def test_registered_rule_is_used(scratch_registry):
    from ros2_lmd.lmd import linear_rule

    def fn(f):
        return torch.fliplr(f["camera"]) * 2 + f["radar"]

    with pytest.raises(LMDRuleError, match="fliplr"):
        decompose(fn, {"camera": torch.randn(2, 3), "radar": torch.randn(2, 3)})
    register_rule(torch.fliplr, linear_rule)
    dec = decompose(fn, {"camera": torch.ones(2, 3), "radar": torch.zeros(2, 3)})
    assert torch.allclose(dec.components["camera"], torch.full((2, 3), 2.0))


def test_extra_rules_take_precedence():
    from ros2_lmd.lmd import linear_rule

    calls = []

    def counting_rule(ctx, func, args, kwargs):
        calls.append(func)
        return linear_rule(ctx, func, args, kwargs)

    dec = decompose(
        lambda f: torch.flip(f["camera"], (0,)),
        {"camera": torch.arange(3.0)},
        rules=RuleVariants(extra_rules={torch.flip: counting_rule}),
    )
    assert calls == [torch.flip]
    assert torch.equal(dec.components["camera"], torch.tensor([2.0, 1.0, 0.0]))


def test_works_under_inference_mode_and_records_layers():
    model, features = _bev()
    with torch.inference_mode():
        out = decompose(model, features, record=["compressor", "layer1", "up"])
        plain = model(features)
    seg = out["segmentation"]
    assert torch.allclose(seg.total, plain["segmentation"], atol=1e-5)
    assert set(seg.layers) == {"compressor", "layer1", "up"}
    for name, layer in seg.layers.items():
        assert layer.conservation_error < 1e-5, name
        assert set(layer.components) == {"camera", "radar"}
    # the recorded block output is not overwritten by the in-place ReLU that follows it
    with torch.no_grad():
        stacked = torch.cat([features["camera"], features["radar"]], 1)
        direct = model.layer1(model.stem(model.compressor(stacked)))
    assert torch.allclose(seg.layers["layer1"].total, direct, atol=1e-5)


def test_record_unknown_module_names_it():
    model, features = _bev()
    with pytest.raises(KeyError, match="layer9"):
        decompose(model, features, record=["layer9"])


def test_output_structures_are_kept():
    f = {"camera": torch.randn(4), "radar": torch.randn(4)}
    out = decompose(lambda x: (x["camera"] + x["radar"], [x["camera"] * 2, {"a": x["radar"]}], 3), f)
    assert isinstance(out, tuple) and out[2] == 3
    assert torch.allclose(out[1][0].components["camera"], 2 * f["camera"])
    assert torch.equal(out[1][1]["a"].components["camera"], torch.zeros(4))


def test_output_that_no_modality_reaches_is_all_bias():
    const = torch.randn(3)
    dec = decompose(lambda f: const, {"camera": torch.randn(3)})
    assert torch.equal(dec.bias, const) and torch.equal(dec.components["camera"], torch.zeros(3))


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="empty"):
        decompose(lambda f: f, {})
    with pytest.raises(TypeError, match="radar"):
        decompose(lambda f: f, {"radar": [1.0, 2.0]})
    with pytest.raises(ValueError, match="camera"):
        decompose(lambda f: f["camera"], {"camera": torch.zeros(3)}, linearize_at={"camera": torch.zeros(4)})
    with pytest.raises(ValueError, match="layernorm"):
        RuleVariants(layernorm="median")


def test_training_dropout_is_refused_eval_dropout_is_identity():
    drop = nn.Dropout(0.5)
    x = {"camera": torch.randn(10)}
    with pytest.raises(LMDRuleError, match="dropout"):
        decompose(lambda f: drop.train()(f["camera"]), x)
    dec = decompose(lambda f: drop.eval()(f["camera"]), x)
    assert torch.equal(dec.components["camera"], x["camera"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_matches_cpu():
    model, features = _bev()
    with torch.no_grad():
        cpu = decompose(model, features)
        gpu = decompose(model.cuda(), {k: v.cuda() for k, v in features.items()})
    for key in cpu:
        assert gpu[key].conservation_error < 1e-5
        for m in features:
            assert torch.allclose(cpu[key].components[m], gpu[key].components[m].cpu(), atol=1e-4)
