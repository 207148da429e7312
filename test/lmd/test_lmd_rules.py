"""Each LMD rule against its explicit formula from the paper (eq. 9, 10, 11, App. B.3, C.1, C.2,
D.2), with randomised statistics so that no norm is trivially the identity."""

from __future__ import annotations

import zlib

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ros2_lmd.lmd import LMDRuleError, RuleVariants, decompose

G = torch.Generator().manual_seed(1234)


@pytest.fixture(autouse=True)
def _deterministic_draws(request):
    """Each test draws from G as if it ran alone (torch's global RNG: test/conftest.py): results
    depend neither on the order of tests nor on a second run of this file in the same process."""
    G.manual_seed(zlib.crc32(request.node.name.encode()))


def randn(*shape):
    return torch.randn(*shape, generator=G, dtype=torch.float64)


def two_modalities(shape=(2, 4, 5, 5)):
    """Inputs and a constant offset b, so that the layer input is A = h_c + h_r + h_b with h_b = b."""
    return {"camera": randn(*shape), "radar": randn(*shape)}, randn(*shape) * 0.5


# --- activations: eq. 9 with f(0) routed to the bias ---------------------------------------------

ACTIVATIONS = {
    "relu": F.relu,
    "leaky_relu": lambda x: F.leaky_relu(x, 0.2),
    "elu": F.elu,
    "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "silu": F.silu,
    "mish": F.mish,
    "softplus": F.softplus,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "hardswish": F.hardswish,
    "hardsigmoid": F.hardsigmoid,
    "relu6": F.relu6,
    "nn.ReLU": nn.ReLU(),
    "nn.GELU": nn.GELU(),
    "nn.Sigmoid": nn.Sigmoid(),
    "Tensor.relu": torch.Tensor.relu,
    "clamp": lambda x: x.clamp(-0.5, 0.7),
}
INPLACE = {
    "relu_": torch.relu_,
    "nn.ReLU(inplace)": nn.ReLU(inplace=True),
    "leaky_relu(inplace)": lambda x: F.leaky_relu(x, 0.1, inplace=True),
    "hardtanh_": F.hardtanh_,
    "sigmoid_": torch.Tensor.sigmoid_,
    "tanh_": torch.Tensor.tanh_,
    "nn.ReLU6(inplace)": nn.ReLU6(inplace=True),
    "silu(inplace)": lambda x: F.silu(x, inplace=True),
    "elu_": F.elu_,
}


def reference_activation(f, features, b):
    A = features["camera"] + features["radar"] + b
    out = f(A.clone())
    f0 = f(torch.zeros(1)).item()
    c = (out - f0) / A
    return out, c, f0


@pytest.mark.parametrize("name", list(ACTIVATIONS) + list(INPLACE))
@pytest.mark.parametrize("bias_mode", ["derived", "explicit"])
def test_activation_secant_rule(name, bias_mode):
    f = ACTIVATIONS.get(name) or INPLACE[name]
    features, b = two_modalities()
    dec = decompose(lambda x: f(x["camera"] + x["radar"] + b), features, rules=RuleVariants(bias=bias_mode))
    out, c, f0 = reference_activation(f, features, b)
    assert torch.allclose(dec.total, out, atol=1e-12)
    for m in features:
        assert torch.allclose(dec.components[m], c * features[m], atol=1e-9)
    assert torch.allclose(dec.bias, c * b + f0, atol=1e-9)
    assert dec.conservation_error < 1e-12


def test_activation_at_exact_zero_uses_the_derivative():
    h = torch.tensor([1.0, -2.0, 0.5])
    features = {"camera": h, "radar": -h}  # A == 0 exactly
    for f, slope in ((torch.sigmoid, 0.25), (F.gelu, 0.5), (F.softplus, 0.5), (F.relu, 0.0)):
        dec = decompose(
            lambda x, f=f: f(x["camera"] + x["radar"]), features, rules=RuleVariants(bias="explicit")
        )
        assert torch.allclose(dec.components["camera"], slope * h)
        assert torch.allclose(dec.bias, f(torch.zeros(3)))
        assert torch.isfinite(dec.components["radar"]).all()


# --- bias splitting at activations, App. C -------------------------------------------------------


def paper_sum_rule(hc, hr, hb, c):
    """App. C.1 for camera and radar, written out as in the paper."""
    cam = ((hc < 0) & (hr > 0) & (hb < 0)) | ((hc > 0) & (hr < 0) & (hb > 0))
    rad = ((hc < 0) & (hr > 0) & (hb > 0)) | ((hc > 0) & (hr < 0) & (hb < 0))
    out_c = torch.where(cam, c * (hc + hb), c * hc)
    out_r = torch.where(rad, c * (hr + hb), c * hr)
    out_b = torch.where(cam | rad, torch.zeros_like(hb), c * hb)
    return out_c, out_r, out_b


def paper_ratio_rule(hc, hr, hb, c, eps):
    """App. C.2 for camera and radar, written out as in the paper."""
    cond1 = ((hc > 0) & (hr > 0) & (hb > 0)) | ((hc < 0) & (hr < 0) & (hb < 0))
    cond2 = ((hc > 0) & (hr > 0) & (hb < 0)) | ((hc < 0) & (hr < 0) & (hb > 0))
    alpha = hr.abs() / (hc.abs() + hr.abs() + eps)
    out_c = torch.where(cond1, c * (hc + (1 - alpha) * hb), torch.where(cond2, c * (hc + alpha * hb), c * hc))
    out_r = torch.where(cond1, c * (hr + alpha * hb), torch.where(cond2, c * (hr + (1 - alpha) * hb), c * hr))
    out_b = torch.where(cond1 | cond2, torch.zeros_like(hb), c * hb)
    return out_c, out_r, out_b


@pytest.mark.parametrize("split", ["sum", "ratio"])
@pytest.mark.parametrize("f", [F.relu, F.gelu, torch.tanh], ids=["relu", "gelu", "tanh"])
def test_bias_split_rules_match_paper_for_two_modalities(split, f):
    features, b = two_modalities((4000,))
    eps = 1e-6
    dec = decompose(
        lambda x: f(x["camera"] + x["radar"] + b),
        features,
        rules=RuleVariants(activation_split=split, bias="explicit", split_eps=eps),
    )
    hc, hr = features["camera"], features["radar"]
    A = hc + hr + b
    c = (f(A) - f(torch.zeros(1))) / A
    ref = paper_sum_rule(hc, hr, b, c) if split == "sum" else paper_ratio_rule(hc, hr, b, c, eps)
    tol = 1e-12
    assert torch.allclose(dec.components["camera"], ref[0], atol=tol)
    assert torch.allclose(dec.components["radar"], ref[1], atol=tol)
    f0 = f(torch.zeros(1))
    assert torch.allclose(dec.bias, ref[2] + f0, atol=tol)
    assert dec.conservation_error < 1e-12
    # the rule must actually fire on a good part of the neurons, or this test proves nothing
    moved = (dec.bias - f0 - c * b).abs() > 1e-9
    assert moved.float().mean() > 0.2


@pytest.mark.parametrize("split", ["sum", "ratio"])
def test_bias_split_generalises_to_three_modalities(split):
    x = {m: randn(3000) for m in ("camera", "radar", "lidar")}
    b = randn(3000)
    dec = decompose(
        lambda f: F.relu(f["camera"] + f["radar"] + f["lidar"] + b),
        x,
        rules=RuleVariants(activation_split=split, bias="explicit"),
    )
    A = sum(x.values()) + b
    c = F.relu(A) / A
    handed = sum(dec.components[m] - c * x[m] for m in x)  # bias handed to the modalities
    assert torch.allclose(handed + dec.bias, c * b, atol=1e-10)
    signs = torch.stack([x[m].sign() for m in x])
    if split == "ratio":
        all_agree = (signs == b.sign()).all(0)
        assert torch.allclose(
            dec.bias[all_agree], torch.zeros(int(all_agree.sum()), dtype=torch.float64), atol=1e-12
        )
        weights = torch.stack([x[m].abs() for m in x])
        weights = weights / (weights.sum(0) + 1e-6)
        weights[0] = 1 - weights[1:].sum(0)  # eps goes to the first modality, as in the paper
        for i, m in enumerate(x):
            expected = c * (x[m] + weights[i] * b)
            assert torch.allclose(dec.components[m][all_agree], expected[all_agree], atol=1e-10)
    else:
        same = signs == b.sign()
        unique = (same.sum(0) == 1) & ((signs == -b.sign()).sum(0) == 2)
        for i, m in enumerate(x):
            mine = unique & same[i]
            assert torch.allclose(dec.components[m][mine], (c * (x[m] + b))[mine], atol=1e-12)
        assert unique.any()


# --- normalisation: eq. 10, eq. 11, App. B.3, section 4.2.4 ---------------------------------------


def _random_bn(channels=4):
    bn = nn.BatchNorm2d(channels).eval().double()
    with torch.no_grad():
        bn.running_mean.copy_(randn(channels))
        bn.running_var.copy_(torch.rand(channels, generator=G, dtype=torch.float64) + 0.5)
        bn.weight.copy_(randn(channels))
        bn.bias.copy_(randn(channels))
    return bn


@pytest.mark.parametrize("rule", ["identity", "uniform"])
def test_batchnorm_rules(rule):
    bn = _random_bn()
    features, b = two_modalities()
    dec = decompose(
        lambda x: bn(x["camera"] + x["radar"] + b),
        features,
        rules=RuleVariants(batchnorm=rule, bias="explicit"),
    )
    scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).view(1, -1, 1, 1)
    shift = (bn.bias - bn.running_mean * bn.weight / torch.sqrt(bn.running_var + bn.eps)).view(1, -1, 1, 1)
    if rule == "identity":  # eq. 10 with delta_c = delta_r = 0, delta_b = 1
        for m in features:
            assert torch.allclose(dec.components[m], scale * features[m], atol=1e-12)
        assert torch.allclose(dec.bias, scale * b + shift, atol=1e-12)
    else:  # delta_m = 1 / 3 for every stream
        for m in features:
            assert torch.allclose(dec.components[m], scale * features[m] + shift / 3, atol=1e-12)
        assert torch.allclose(dec.bias, scale * b + shift / 3, atol=1e-12)
    assert torch.allclose(dec.total, bn(features["camera"] + features["radar"] + b), atol=1e-12)


def _norm_cases():
    ln = nn.LayerNorm(6).double()
    inorm = nn.InstanceNorm2d(4, affine=True).double()
    gn = nn.GroupNorm(2, 4).double()
    with torch.no_grad():
        for layer in (ln, inorm, gn):
            layer.weight.copy_(randn(*layer.weight.shape))
            layer.bias.copy_(randn(*layer.bias.shape))
    return {
        # name: (layer, input shape, dims of the statistics as a grouping function, per-channel view)
        "layernorm": (ln, (3, 5, 6), lambda t: t.reshape(3, 5, 6), lambda p: p),
        "instancenorm": (inorm, (2, 4, 5, 5), lambda t: t.reshape(2, 4, 25), lambda p: p.view(1, -1, 1, 1)),
        "groupnorm": (gn, (2, 4, 3, 3), lambda t: t.reshape(2, 2, 18), lambda p: p.view(1, -1, 1, 1)),
    }


@pytest.mark.parametrize("case", ["layernorm", "instancenorm", "groupnorm"])
@pytest.mark.parametrize("rule", ["ratio", "identity", "uniform"])
def test_statistics_norm_rules(case, rule):
    layer, shape, grouped, channel = _norm_cases()[case]
    features = {"camera": randn(*shape) + 0.7, "radar": randn(*shape) * 2}
    b = randn(*shape) * 0.5 + 0.3
    dec = decompose(
        lambda x: layer(x["camera"] + x["radar"] + b),
        features,
        rules=RuleVariants(layernorm=rule, bias="explicit"),
    )
    A = features["camera"] + features["radar"] + b
    mean = grouped(A).mean(-1, keepdim=True)
    std = torch.sqrt(grouped(A).var(-1, unbiased=False, keepdim=True) + layer.eps)
    gamma, beta = channel(layer.weight), channel(layer.bias)

    def normalise(t, centre):
        g = grouped(t)
        return ((g - centre(g)) / std).reshape(shape)

    own_mean = lambda g: g.mean(-1, keepdim=True)  # noqa: E731
    frozen_mean = lambda g: mean  # noqa: E731
    no_mean = lambda g: 0  # noqa: E731
    if rule == "ratio":  # eq. 11: each stream centred on its own mean, real variance
        expected = {m: gamma * normalise(features[m], own_mean) for m in features}
        expected_bias = gamma * normalise(b, own_mean) + beta
    elif rule == "identity":  # statistics frozen, the centring and beta in the bias stream
        expected = {m: gamma * normalise(features[m], no_mean) for m in features}
        expected_bias = gamma * normalise(b, frozen_mean) + beta
    else:  # uniform: the constant part shared equally by the three streams
        constant = (gamma * normalise(torch.zeros(shape, dtype=torch.float64), frozen_mean) + beta) / 3
        expected = {m: gamma * normalise(features[m], no_mean) + constant for m in features}
        expected_bias = gamma * normalise(b, no_mean) + constant
    for m in features:
        assert torch.allclose(dec.components[m], expected[m], atol=1e-10)
    assert torch.allclose(dec.bias, expected_bias, atol=1e-10)
    assert torch.allclose(dec.total, layer(A), atol=1e-10)


def test_rms_norm_holds_the_real_rms_fixed():
    norm = nn.RMSNorm(6).double()
    with torch.no_grad():
        norm.weight.copy_(randn(6))
    features = {"camera": randn(3, 6), "radar": randn(3, 6)}
    dec = decompose(lambda x: norm(x["camera"] + x["radar"]), features)
    A = features["camera"] + features["radar"]
    rms = torch.sqrt(A.pow(2).mean(-1, keepdim=True) + torch.finfo(A.dtype).eps)
    for m in features:
        assert torch.allclose(dec.components[m], features[m] / rms * norm.weight, atol=1e-12)


# --- attention, App. D.2 -------------------------------------------------------------------------


def test_product_of_two_decomposed_tensors_keeps_same_modality_terms():
    x = {"camera": randn(5), "radar": randn(5)}
    a_const, b_const = randn(5), randn(5)
    dec = decompose(
        lambda f: (f["camera"] + f["radar"] + a_const) * (2 * f["camera"] - f["radar"] + b_const),
        x,
        rules=RuleVariants(bias="explicit"),
    )
    c, r = x["camera"], x["radar"]
    assert torch.allclose(dec.components["camera"], c * 2 * c)
    assert torch.allclose(dec.components["radar"], r * -r)
    # every cross term and every term with a constant is bias
    assert torch.allclose(
        dec.bias, c * (-r) + c * b_const + r * 2 * c + r * b_const + a_const * (2 * c - r + b_const)
    )


def test_softmax_is_linearised_as_an_activation():
    x = {"camera": randn(3, 7), "radar": randn(3, 7)}
    dec = decompose(lambda f: torch.softmax(f["camera"] + f["radar"], dim=-1), x)
    A = x["camera"] + x["radar"]
    c = torch.softmax(A, -1) / A
    for m in x:
        assert torch.allclose(dec.components[m], c * x[m], atol=1e-12)


def test_attention_conserves_and_matches_modules():
    mha = nn.MultiheadAttention(8, 2, batch_first=True).eval().double()
    x = {"camera": randn(2, 4, 8), "radar": randn(2, 3, 8)}

    def fn(f):
        tokens = torch.cat([f["camera"], f["radar"]], dim=1)
        out, weights = mha(tokens, tokens, tokens)
        causal = F.scaled_dot_product_attention(out, tokens, tokens, is_causal=True)
        return out, weights, causal

    with torch.no_grad():
        dec = decompose(fn, x, rules=RuleVariants(bias="explicit"))
        tokens = torch.cat([x["camera"], x["radar"]], 1)
        ref_out, ref_w = mha(tokens, tokens, tokens)
        ref_causal = F.scaled_dot_product_attention(ref_out, tokens, tokens, is_causal=True)
    for d, ref in zip(dec, (ref_out, ref_w, ref_causal)):
        assert torch.allclose(d.total, ref, atol=1e-10)
        assert d.conservation_error < 1e-9


# --- linear and structural ops: component m = op(x_m), constants only in the bias ----------------

x4 = randn(2, 3, 6, 6)
W = {
    "c311": randn(3, 1, 1),
    "64": randn(6, 4),
    "56": randn(5, 6),
    "62": randn(6, 2),
    "433": randn(4, 3, 3),
    "3233": randn(3, 2, 3, 3),
    "21222": randn(2, 1, 2, 2, 2),
    "4333": randn(4, 3, 3, 3),
    "grid": torch.rand(2, 4, 4, 2, generator=G, dtype=torch.float64) * 2 - 1,
}
LINEAR_OPS = {
    "view": lambda t: t.view(2, -1),
    "reshape": lambda t: torch.reshape(t, (6, 36)),
    "permute": lambda t: t.permute(0, 2, 3, 1),
    "transpose": lambda t: t.transpose(1, 3),
    "flatten": lambda t: torch.flatten(t, 1),
    "unsqueeze": lambda t: t.unsqueeze(-1),
    "squeeze": lambda t: t[:, :1].squeeze(1),
    "T": lambda t: t[0, 0].T,
    "mT": lambda t: t.mT,
    "getitem_basic": lambda t: t[:, 1:, ::2, -1],
    "getitem_advanced": lambda t: t[:, [0, 2], :, torch.tensor([1, 3])],
    "getitem_mask": lambda t: t[:, :, torch.arange(6) > 2],
    "select": lambda t: t.select(1, 2),
    "cat": lambda t: torch.cat([t, 2 * t], 1),
    "stack": lambda t: torch.stack([t, -t], -1),
    "split": lambda t: torch.split(t, 2, dim=1)[1],
    # the same ops with their arguments by keyword and dims counted from the end (x4: 2 x 3 x 6 x 6)
    "split_keywords_negative_dim": lambda t: torch.split(t, split_size_or_sections=[2, 4], dim=-1)[1],
    "split_method_sections": lambda t: t.split([1, 5], -2)[0],
    "chunk_keywords_negative_dim": lambda t: torch.chunk(t, chunks=2, dim=-3)[1],
    "unbind_keyword_negative_dim": lambda t: torch.unbind(t, dim=-1)[4],
    "squeeze_keyword_negative_dim": lambda t: t[..., :1].squeeze(dim=-1),
    "squeeze_every_size_one_dim": lambda t: t[:, :1, :, :1].squeeze(),
    "squeeze_dims_tuple": lambda t: t[:, :1, :, :1].squeeze((1, 3)),
    "dropout_eval_keywords": lambda t: F.dropout(t, p=0.3, training=False),
    "dropout_training_p0": lambda t: F.dropout(t, 0.0, True),
    "chunk": lambda t: t.chunk(3, dim=2)[2],
    "unbind": lambda t: t.unbind(0)[1],
    "expand": lambda t: t[:, :1].expand(2, 5, 6, 6),
    "repeat": lambda t: t.repeat(1, 2, 1, 1),
    "flip": lambda t: torch.flip(t, (2,)),
    "roll": lambda t: torch.roll(t, 2, 3),
    "gather": lambda t: t.gather(3, torch.zeros(2, 3, 6, 2, dtype=torch.long)),
    "nearest": lambda t: F.interpolate(t, scale_factor=2, mode="nearest"),
    "bilinear": lambda t: F.interpolate(t, size=(9, 5), mode="bilinear", align_corners=True),
    "bicubic": lambda t: F.interpolate(t, scale_factor=1.5, mode="bicubic"),
    "pad": lambda t: F.pad(t, (1, 2, 0, 1)),
    "pad_reflect": lambda t: F.pad(t, (1, 1, 2, 2), mode="reflect"),
    "avg_pool": lambda t: F.avg_pool2d(t, 2),
    "adaptive_avg": lambda t: F.adaptive_avg_pool2d(t, (2, 3)),
    "mean": lambda t: t.mean((2, 3)),
    "sum": lambda t: torch.sum(t, dim=-1, keepdim=True),
    "sum_all": lambda t: t.sum(),
    "mul_const": lambda t: t * W["c311"],
    "div_const": lambda t: t / 4.0,
    "neg": lambda t: -t,
    "sub": lambda t: t - 2 * t,
    "matmul": lambda t: t @ W["64"],
    "rmatmul": lambda t: W["56"] @ t,
    "einsum": lambda t: torch.einsum("bchw,wk->bchk", t, W["62"]),
    "conv1d": lambda t: F.conv1d(t.flatten(2), W["433"]),
    "conv_transpose2d": lambda t: F.conv_transpose2d(t, W["3233"], stride=2),
    "conv3d": lambda t: F.conv3d(t.unsqueeze(1), W["21222"]),
    "unbatched_conv2d": lambda t: F.conv2d(t[0], W["4333"], padding=1),
    "linear": lambda t: F.linear(t, W["56"]),
    "pixel_shuffle": lambda t: F.pixel_shuffle(t[:, :1].repeat(1, 4, 1, 1), 2),
    "grid_sample": lambda t: F.grid_sample(t, W["grid"], align_corners=False),
    "dropout_eval": lambda t: F.dropout(t, 0.3, training=False),
    "contiguous": lambda t: t.permute(0, 2, 1, 3).contiguous(),
    "to": lambda t: t.to(torch.float64),
    "clone": lambda t: t.clone(),
    "inplace_add": lambda t: t.clone().add_(t),
}


@pytest.mark.parametrize("name", list(LINEAR_OPS))
def test_linear_op_applies_to_each_stream(name):
    op = LINEAR_OPS[name]
    features = {"camera": x4, "radar": randn(*x4.shape)}
    dec = decompose(lambda f: op(f["camera"] + 3 * f["radar"]), features, rules=RuleVariants(bias="explicit"))
    assert torch.allclose(dec.components["camera"], op(features["camera"]), atol=1e-10)
    assert torch.allclose(dec.components["radar"], op(3 * features["radar"]), atol=1e-10)
    assert dec.bias.abs().max().item() < 1e-10
    assert torch.allclose(dec.total, op(features["camera"] + 3 * features["radar"]), atol=1e-10)


def test_parameter_biases_and_pad_values_go_to_the_bias_stream_only():
    conv = nn.Conv2d(3, 4, 3, padding=1).double()
    lin = nn.Linear(6, 2).double()
    features = {"camera": x4, "radar": randn(*x4.shape)}

    def fn(f):
        y = conv(f["camera"] + f["radar"])
        y = F.pad(y, (1, 1), value=0.25)
        return lin(y[..., :6]) + 1.5

    dec = decompose(fn, features, rules=RuleVariants(bias="explicit"))
    for m in features:
        alone = F.pad(F.conv2d(features[m], conv.weight, None, padding=1), (1, 1))
        assert torch.allclose(dec.components[m], F.linear(alone[..., :6], lin.weight), atol=1e-10)
    zeros = {m: torch.zeros_like(v) for m, v in features.items()}
    assert torch.allclose(dec.bias, fn(zeros), atol=1e-10)


def test_max_pool_and_max_take_the_selection_from_the_real_activation():
    features = {"camera": randn(2, 3, 6, 6), "radar": randn(2, 3, 6, 6)}

    def fn(f):
        s = f["camera"] + f["radar"]
        pooled, idx = F.max_pool2d(s, 2, return_indices=True)
        return (
            F.max_pool2d(s, 3, stride=2, padding=1),
            pooled,
            torch.max(s, dim=1).values,
            F.adaptive_max_pool2d(s, 2),
        )

    decs = decompose(fn, features)
    A = features["camera"] + features["radar"]
    _, idx = F.max_pool2d(A, 2, return_indices=True)
    pick = lambda t: t.flatten(2).gather(2, idx.flatten(2)).view(idx.shape)  # noqa: E731
    for m in features:
        assert torch.allclose(decs[1].components[m], pick(features[m]))
        arg = A.argmax(1, keepdim=True)
        assert torch.allclose(decs[2].components[m], features[m].gather(1, arg).squeeze(1))
    for d in decs:
        assert d.conservation_error < 1e-12


def test_where_with_a_mask_from_the_real_value():
    features = {"camera": randn(50), "radar": randn(50)}
    dec = decompose(
        lambda f: torch.where((f["camera"] + f["radar"]) > 0, f["camera"] + f["radar"], 0.5), features
    )
    mask = (features["camera"] + features["radar"]) > 0
    zero = torch.zeros((), dtype=torch.float64)
    assert torch.allclose(dec.components["camera"], torch.where(mask, features["camera"], zero))
    assert torch.allclose(dec.bias, torch.where(mask, zero, zero + 0.5))


def test_dropout_defaults_to_training_and_is_refused():
    # F.dropout's `training` defaults to True: a random mask has no decomposition
    with pytest.raises(LMDRuleError, match="dropout"):
        decompose(lambda f: F.dropout(f["camera"] + f["radar"], 0.3), {"camera": x4, "radar": x4})
    with pytest.raises(LMDRuleError, match="dropout"):
        decompose(lambda f: F.dropout(f["camera"] + f["radar"], p=0.3), {"camera": x4, "radar": x4})


def test_where_with_keywords_and_the_decomposed_tensor_second():
    features = {"camera": randn(40), "radar": randn(40)}
    const = randn(40)
    mask = (features["camera"] - features["radar"]) > 0
    zero = torch.zeros((), dtype=torch.float64)
    for call in (
        lambda m, a, b: torch.where(m, input=a, other=b),
        lambda m, a, b: torch.where(m, a, b),
    ):
        # the constant as `input`, the decomposed sum as `other`
        dec = decompose(
            lambda f, call=call: call((f["camera"] - f["radar"]) > 0, const, f["camera"] + 2 * f["radar"]),
            features,
            rules=RuleVariants(bias="explicit"),
        )
        assert torch.allclose(dec.components["camera"], torch.where(mask, zero, features["camera"]))
        assert torch.allclose(dec.components["radar"], torch.where(mask, zero, 2 * features["radar"]))
        assert torch.allclose(dec.bias, torch.where(mask, const, zero))
        assert dec.components["camera"].dtype == torch.float64


def test_masked_fill_with_keywords():
    features = {"camera": randn(4, 5), "radar": randn(4, 5)}
    mask = features["camera"] > 0.3
    dec = decompose(
        lambda f: (f["camera"] + f["radar"]).masked_fill(mask=mask, value=-1.5),
        features,
        rules=RuleVariants(bias="explicit"),
    )
    zero = torch.zeros((), dtype=torch.float64)
    for m in features:
        assert torch.allclose(dec.components[m], torch.where(mask, zero, features[m]))
    assert torch.allclose(dec.bias, torch.where(mask, zero - 1.5, zero))


@pytest.mark.parametrize("keywords", [False, True])
def test_rms_norm_over_several_trailing_dims_with_its_eps(keywords):
    features = {"camera": randn(2, 3, 4), "radar": randn(2, 3, 4)}
    weight, eps = randn(3, 4), 0.25
    if keywords:
        fn = lambda f: F.rms_norm(f["camera"] + f["radar"], normalized_shape=(3, 4), weight=weight, eps=eps)  # noqa: E731
    else:
        fn = lambda f: F.rms_norm(f["camera"] + f["radar"], [3, 4], weight, eps)  # noqa: E731
    dec = decompose(fn, features, rules=RuleVariants(bias="explicit"))
    A = features["camera"] + features["radar"]
    rms = torch.sqrt(A.pow(2).mean((-2, -1), keepdim=True) + eps)
    for m in features:
        assert torch.allclose(dec.components[m], features[m] / rms * weight, atol=1e-12)
    assert dec.bias.abs().max().item() < 1e-12
    assert torch.allclose(dec.total, A / rms * weight, atol=1e-12)  # the real plane: weight and eps too


def test_where_broadcasts_to_a_condition_larger_than_both_values():
    features = {"camera": randn(5), "radar": randn(5)}
    cond = torch.rand(4, 5, generator=torch.Generator().manual_seed(3)) > 0.5
    dec = decompose(
        lambda f: torch.where(cond, f["camera"] + f["radar"], 0.75),
        features,
        rules=RuleVariants(bias="explicit"),
    )
    zero = torch.zeros((), dtype=torch.float64)
    assert dec.total.shape == (4, 5)
    for m in features:
        assert torch.allclose(dec.components[m], torch.where(cond, features[m], zero))
    assert torch.allclose(dec.bias, torch.where(cond, zero, zero + 0.75))


def test_op_names_in_error_messages():
    from ros2_lmd.lmd.tensor import op_name

    t = torch.zeros(2)
    assert [
        op_name(f)
        for f in (
            torch.conv2d,
            F.conv2d,
            torch.Tensor.add,
            torch.Tensor.__add__,
            F.relu,
            F.linear,
            torch.Tensor.shape.__get__,
            t.__add__,
            len,
            torch.fliplr,
        )
    ] == [
        "torch.conv2d",
        "torch.conv2d",
        "Tensor.add",
        "Tensor.__add__",
        "torch.nn.functional.relu",
        "torch.linear",
        "Tensor.shape (attribute)",
        "Tensor.__add__",
        "builtins.len",
        "torch.fliplr",
    ]


# --- masks, selections, bilinear einsum, frozen InstanceNorm: each against an explicit formula ---
# (a local generator per test, so these draws do not depend on which tests ran before)

EXPLICIT = RuleVariants(bias="explicit")


def _close(a, b, atol=1e-12):
    """Absolute closeness only: in float64 a relative tolerance would hide small scale errors."""
    return torch.allclose(a, b, rtol=0, atol=atol)


def _gen(seed):
    g = torch.Generator().manual_seed(seed)
    return lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64)


def _linearised_softmax_weights(scores, masked):
    """c of the softmax linearised as an activation (App. D.2): softmax(S) / S on the real scores;
    masked positions have softmax exactly 0, so they carry nothing (c = 0)."""
    p = torch.softmax(scores.masked_fill(masked, float("-inf")), dim=-1)
    return torch.where(masked, torch.zeros_like(p), p / scores.masked_fill(masked, 1.0)), p


def _attention_components(q, k, v, scale, masked, additive=None):
    """Components of softmax(q k^T * scale + mask) v by the paper's rules, from the streams:
    q, k, v map 'real' and each modality to its stream. Same-modality products stay with the
    modality (bilinear rule); the mask is a constant (bias); softmax scales every stream by c."""
    real_scores = q["real"] @ k["real"].transpose(-2, -1) * scale
    if additive is not None:
        real_scores = real_scores + additive
    c, p = _linearised_softmax_weights(real_scores, masked)
    comps = {}
    for m in q:
        if m == "real":
            continue
        weights_m = c * (q[m] @ k[m].transpose(-2, -1) * scale)
        comps[m] = weights_m @ v[m]
    return comps, p @ v["real"], p


SDPA_MASKS = {
    "bool": lambda rand, L, S: (torch.arange(L * S).reshape(L, S) % 3 != 1) | (torch.arange(S) == 0),
    "float": lambda rand, L, S: torch.where(
        torch.arange(S) == 4, torch.tensor(float("-inf"), dtype=torch.float64), rand(2, 1, L, S)
    ),
    "causal": None,
}


@pytest.mark.parametrize("mask_kind", list(SDPA_MASKS))
def test_sdpa_masks_are_constants_and_components_follow_the_bilinear_rule(mask_kind):
    rand = _gen(11)
    B, H, L, S, D = 2, 2, 4, 6, 3
    x = {"camera": rand(B, H, S, D), "radar": rand(B, H, S, D)}
    q0, v0 = rand(B, H, L, D), rand(B, H, S, D)  # modality-independent offsets: bias only

    def qkv(f):
        q = (f["camera"] + f["radar"])[..., :L, :] + q0
        k = 2 * f["camera"] - f["radar"]
        v = f["camera"] + 0.5 * f["radar"] + v0
        return q, k, v

    mask = None if mask_kind == "causal" else SDPA_MASKS[mask_kind](rand, L, S)
    kwargs = {"is_causal": True} if mask_kind == "causal" else {"attn_mask": mask}
    dec = decompose(lambda f: F.scaled_dot_product_attention(*qkv(f), **kwargs), x, rules=EXPLICIT)

    scale = 1 / D**0.5
    if mask_kind == "causal":  # row i attends to keys 0..i (top-left aligned, as torch documents)
        masked, additive = torch.arange(S)[None, :] > torch.arange(L)[:, None], None
    elif mask_kind == "bool":  # True = takes part in attention
        masked, additive = ~mask, None
    else:  # float: added to the scores; -inf masks
        masked, additive = torch.isinf(mask).expand(B, H, L, S), mask.masked_fill(torch.isinf(mask), 0.0)
    q, k, v = qkv(x)
    streams = {
        "real": (q, k, v),
        "camera": (x["camera"][..., :L, :], 2 * x["camera"], x["camera"]),
        "radar": (x["radar"][..., :L, :], -x["radar"], 0.5 * x["radar"]),
    }
    comps, total, _ = _attention_components(
        {m: s[0] for m, s in streams.items()},
        {m: s[1] for m, s in streams.items()},
        {m: s[2] for m, s in streams.items()},
        scale,
        masked,
        additive,
    )
    assert masked.any() and not masked.all(-1).any()  # the mask bites, and no row is fully masked
    assert _close(dec.total, F.scaled_dot_product_attention(q, k, v, **kwargs), atol=1e-12)
    assert _close(dec.total, total, atol=1e-12)
    for m in x:
        assert _close(dec.components[m], comps[m], atol=1e-12), m
    assert dec.conservation_error < 1e-12


def _split_heads(t, heads):  # (B, N, E) -> (B, heads, N, E / heads)
    B, N, E = t.shape
    return t.reshape(B, N, heads, E // heads).transpose(1, 2)


def _merge_heads(t):  # (B, heads, N, hd) -> (B, N, heads * hd)
    B, h, N, hd = t.shape
    return t.transpose(1, 2).reshape(B, N, h * hd)


def _mha_case(seed=5):
    torch.manual_seed(seed)  # layer initialisation
    mha = nn.MultiheadAttention(8, 2, batch_first=True).eval().double()
    rand = _gen(seed)
    with torch.no_grad():
        mha.in_proj_bias.copy_(rand(24))  # non-zero projection biases: they must land in the bias
        mha.out_proj.bias.copy_(rand(8))
    x = {"camera": rand(3, 3, 8), "radar": rand(3, 4, 8)}  # batch 3 != 2 heads: a swapped layout shows
    return mha, x


def _mha_reference(mha, x, masked, additive):
    """Per-modality components of nn.MultiheadAttention(tokens, tokens, tokens) with tokens =
    cat(camera, radar), from its weights: in-projection biases and the mask are constants."""
    heads, E = mha.num_heads, mha.embed_dim
    wq, wk, wv = mha.in_proj_weight.chunk(3)
    bq, bk, bv = mha.in_proj_bias.chunk(3)
    tokens = torch.cat([x["camera"], x["radar"]], 1)
    own = {
        "camera": torch.cat([x["camera"], torch.zeros_like(x["radar"])], 1),
        "radar": torch.cat([torch.zeros_like(x["camera"]), x["radar"]], 1),
    }
    q = {"real": F.linear(tokens, wq, bq)} | {m: F.linear(t, wq) for m, t in own.items()}
    k = {"real": F.linear(tokens, wk, bk)} | {m: F.linear(t, wk) for m, t in own.items()}
    v = {"real": F.linear(tokens, wv, bv)} | {m: F.linear(t, wv) for m, t in own.items()}
    q, k, v = ({m: _split_heads(t, heads) for m, t in d.items()} for d in (q, k, v))
    comps, total, weights = _attention_components(q, k, v, 1 / (E // heads) ** 0.5, masked, additive)
    comps = {m: F.linear(_merge_heads(c), mha.out_proj.weight) for m, c in comps.items()}
    return comps, F.linear(_merge_heads(total), mha.out_proj.weight, mha.out_proj.bias), weights


MHA_MASKS = {
    # key_padding_mask (B, S), True = ignore that key
    "key_padding": lambda N: {
        "key_padding_mask": torch.tensor([[False] * 6 + [True], [True] + [False] * 6, [False] * 7])
    },
    # attn_mask (L, S), boolean: True = NOT allowed to attend (nn.MultiheadAttention's convention)
    "attn_bool": lambda N: {"attn_mask": torch.arange(N)[None, :] > torch.arange(N)[:, None] + 1},
    # attn_mask (B * heads, L, S), float: added
    "attn_float_3d": lambda N: {"attn_mask": _gen(3)(6, N, N)},
    # the causal hint with its float mask (-inf above the diagonal), as nn.Transformer passes it
    "causal_hint": lambda N: {
        "attn_mask": nn.Transformer.generate_square_subsequent_mask(N, dtype=torch.float64),
        "is_causal": True,
    },
    "both": lambda N: {
        "attn_mask": torch.arange(N)[None, :] > torch.arange(N)[:, None] + 1,
        "key_padding_mask": torch.tensor([[False] * 6 + [True], [False] * 7, [False, True] + [False] * 5]),
    },
}


@pytest.mark.parametrize("case", list(MHA_MASKS))
def test_multihead_attention_masks_against_explicit_formula(case):
    mha, x = _mha_case()
    N = 7
    masks = MHA_MASKS[case](N)

    def fn(f):
        tokens = torch.cat([f["camera"], f["radar"]], 1)
        return mha(tokens, tokens, tokens, **masks)

    with torch.no_grad():
        out, weights = decompose(fn, x, rules=EXPLICIT)
        ref_out, ref_weights = fn(x)
    masked = torch.zeros(3, 2, N, N, dtype=torch.bool)
    additive = None
    if "key_padding_mask" in masks:
        masked = masked | masks["key_padding_mask"][:, None, None, :]
    attn = masks.get("attn_mask")
    if attn is not None and attn.dtype == torch.bool:
        masked = masked | attn
    elif attn is not None:
        additive = attn.reshape(3, 2, N, N) if attn.dim() == 3 else attn  # (B * heads) is batch-major
        masked = masked | torch.isinf(additive)
        additive = additive.masked_fill(torch.isinf(additive), 0.0)
    comps, total, ref_w = _mha_reference(mha, x, masked, additive)
    assert _close(out.total, ref_out, atol=1e-12)  # torch's own module
    assert _close(out.total, total, atol=1e-12)
    assert _close(weights.total, ref_weights, atol=1e-12)
    assert _close(weights.total, ref_w.mean(1), atol=1e-12)
    for m in x:
        assert _close(out.components[m], comps[m], atol=1e-12), m
    assert out.conservation_error < 1e-12 and weights.conservation_error < 1e-12


def test_functional_multi_head_attention_with_a_boolean_attn_mask():
    mha, x = _mha_case()
    N = 7
    mask = torch.arange(N)[None, :] > torch.arange(N)[:, None] + 1  # True: not allowed

    def fn(f):
        t = torch.cat([f["camera"], f["radar"]], 1).transpose(0, 1)  # (L, B, E)
        out, _ = F.multi_head_attention_forward(
            t, t, t, 8, 2, mha.in_proj_weight, mha.in_proj_bias, None, None, False, 0.0,
            mha.out_proj.weight, mha.out_proj.bias, training=False, attn_mask=mask,
        )  # fmt: skip
        return out

    with torch.no_grad():
        dec = decompose(fn, x, rules=EXPLICIT)
        assert _close(dec.total, fn(x), atol=1e-12)


def test_multihead_attention_with_a_float_key_padding_mask():
    mha, x = _mha_case()
    padding = torch.zeros(3, 7, dtype=torch.float64)
    padding[0, 6], padding[1, 2] = -2.0, 1.5  # added to the scores of those keys

    def fn(f):
        tokens = torch.cat([f["camera"], f["radar"]], 1)
        return mha(tokens, tokens, tokens, key_padding_mask=padding)[0]

    with torch.no_grad():
        dec = decompose(fn, x, rules=EXPLICIT)
        assert _close(dec.total, fn(x), atol=1e-12)


@pytest.mark.parametrize(
    "fill",
    ["method", "inplace", "function", "tensor_value", "broadcast_mask"],
)
def test_masked_fill_value_goes_to_the_bias_and_masked_components_vanish(fill):
    rand = _gen(21)
    x = {"camera": rand(3, 5), "radar": rand(3, 5)}
    b = rand(3, 5)
    mask = torch.rand(3, 5, generator=torch.Generator().manual_seed(2)) > 0.5
    value = 2.5

    def fill_in_place(t):
        t.masked_fill_(mask, value)
        return t  # the tensor itself, not masked_fill_'s return value

    fills = {
        "method": lambda t: t.masked_fill(mask, value),
        "inplace": fill_in_place,
        "function": lambda t: torch.masked_fill(t, mask, value),
        "tensor_value": lambda t: t.masked_fill(mask, torch.tensor(value, dtype=torch.float64)),
        "broadcast_mask": lambda t: t.masked_fill(mask[0], value),
    }
    op = fills[fill]
    where = mask[0].expand(3, 5) if fill == "broadcast_mask" else mask
    dec = decompose(lambda f: op(f["camera"] - 2 * f["radar"] + b), x, rules=EXPLICIT)
    zero = torch.zeros((), dtype=torch.float64)
    assert _close(dec.components["camera"], torch.where(where, zero, x["camera"]), atol=1e-15)
    assert _close(dec.components["radar"], torch.where(where, zero, -2 * x["radar"]), atol=1e-15)
    assert _close(dec.bias, torch.where(where, zero + value, b), atol=1e-15)
    assert torch.equal(dec.total, (x["camera"] - 2 * x["radar"] + b).masked_fill(where, value))
    assert dec.conservation_error < 1e-15


def test_masked_fill_refuses_a_decomposed_value():
    from ros2_lmd.lmd import LMDRuleError

    x = {"camera": torch.randn(4), "radar": torch.randn(4)}
    with pytest.raises(LMDRuleError, match="masked_fill"):
        decompose(lambda f: f["camera"].masked_fill(f["camera"] > 0, f["radar"].sum()), x)


def _jvp_components(fn, x):
    """For a piecewise-linear, positively homogeneous fn (no constants: f(0) = 0), LMD's component m
    is the Jacobian at x applied to x_m (the paper's identity rules are exact there)."""
    out = {}
    for m in x:
        tangent = {k: (v if k == m else torch.zeros_like(v)) for k, v in x.items()}
        out[m] = torch.func.jvp(fn, (x,), (tangent,))[1]
    return out


@pytest.mark.parametrize("op", [torch.maximum, torch.minimum], ids=["maximum", "minimum"])
def test_maximum_minimum_take_every_stream_of_the_winner(op):
    rand = _gen(31)
    x = {"camera": rand(4, 6), "radar": rand(4, 6)}

    def fn(f):  # both operands decomposed, one broadcast
        return op(f["camera"] - 2 * f["radar"], (0.5 * f["camera"] + f["radar"])[:1])

    dec = decompose(fn, x, rules=EXPLICIT)
    a, b = x["camera"] - 2 * x["radar"], (0.5 * x["camera"] + x["radar"])[:1]
    a_wins = a > b if op is torch.maximum else a < b
    assert 0 < a_wins.float().mean() < 1
    expected = {
        "camera": torch.where(a_wins, x["camera"], 0.5 * x["camera"][:1]),
        "radar": torch.where(a_wins, -2 * x["radar"], x["radar"][:1]),
    }
    jvp = _jvp_components(fn, x)
    for m in x:
        assert _close(dec.components[m], expected[m], atol=1e-15), m
        assert _close(dec.components[m], jvp[m], atol=1e-12), m
    assert _close(dec.bias, torch.zeros_like(dec.bias), atol=1e-15)
    assert torch.equal(dec.total, op(a, b))

    # a constant operand: where it wins the element is all bias (a ReLU-like clip at c)
    c = torch.full((6,), 0.3, dtype=torch.float64)
    b0 = rand(4, 6)
    dec = decompose(lambda f: op(c, f["camera"] + f["radar"] + b0), x, rules=EXPLICIT)
    s = x["camera"] + x["radar"] + b0
    x_wins = s > c if op is torch.maximum else s < c
    assert 0 < x_wins.float().mean() < 1
    for m in x:
        assert _close(dec.components[m], torch.where(x_wins, x[m], 0.0), atol=1e-15), m
    assert _close(dec.bias, torch.where(x_wins, b0, c), atol=1e-15)
    assert dec.conservation_error < 1e-15


@pytest.mark.parametrize("which", ["max", "min"])
@pytest.mark.parametrize("dim,keepdim", [(1, False), (-1, True), (0, False), (None, False)])
def test_max_min_over_a_dim_gather_every_stream_at_the_real_extremum(which, dim, keepdim):
    rand = _gen(41)
    x = {"camera": rand(3, 5, 4), "radar": rand(3, 5, 4)}
    b = rand(3, 5, 4)
    torch_op, tensor_op = (torch.max, torch.Tensor.max) if which == "max" else (torch.min, torch.Tensor.min)

    def call(t, op):
        return op(t) if dim is None else op(t, dim=dim, keepdim=keepdim)

    s = x["camera"] - x["radar"] + b
    if dim is None:
        index = s.flatten().argmax() if which == "max" else s.flatten().argmin()
        pick = lambda t: t.flatten()[index]  # noqa: E731
    else:
        index = (s.argmax if which == "max" else s.argmin)(dim, keepdim=True)
        pick = lambda t: t.gather(dim, index) if keepdim else t.gather(dim, index).squeeze(dim)  # noqa: E731
    for op in (torch_op, tensor_op):
        out = decompose(lambda f, op=op: call(f["camera"] - f["radar"] + b, op), x, rules=EXPLICIT)
        dec = out if dim is None else out[0]
        assert torch.equal(dec.total, pick(s))
        assert torch.equal(dec.components["camera"], pick(x["camera"]))
        assert torch.equal(dec.components["radar"], pick(-x["radar"]))
        assert torch.equal(dec.bias, pick(b))
        if dim is not None:  # the indices are torch's, a plain (all-bias) output
            assert torch.equal(out[1].total, call(s, torch_op).indices)
    # and the JVP oracle on the bias-free part
    fn = lambda f: call(f["camera"] - f["radar"], torch_op)  # noqa: E731
    dec = decompose(fn, x)
    dec = dec if dim is None else dec[0]
    jvp = _jvp_components(lambda f: fn(f) if dim is None else fn(f).values, x)
    for m in x:
        assert _close(dec.components[m], jvp[m], atol=1e-15), m


@pytest.mark.parametrize("form", ["operands", "list"])
def test_einsum_of_two_decomposed_operands_follows_the_bilinear_rule(form):
    rand = _gen(51)
    x = {"camera": rand(2, 3, 4), "radar": rand(2, 3, 4), "lidar": rand(2, 3, 4)}
    a0, b0 = rand(2, 3, 4), rand(2, 5, 4)
    Wb = rand(3, 5)
    eq = "bij,bkj->bik"

    def operands(f):
        a = f["camera"] + 2 * f["radar"] + a0
        bb = torch.einsum("bij,ik->bkj", f["camera"] - f["lidar"], Wb) + b0  # one decomposed operand
        return a, bb

    def fn(f):
        a, bb = operands(f)
        return torch.einsum(eq, a, bb) if form == "operands" else torch.einsum(eq, [a, bb])

    dec = decompose(fn, x, rules=EXPLICIT)
    e = lambda p, q: torch.einsum(eq, p, q)  # noqa: E731
    # the streams of each operand, written out
    a_m = {"camera": x["camera"], "radar": 2 * x["radar"], "lidar": torch.zeros_like(x["lidar"])}
    lift = lambda t: torch.einsum("bij,ik->bkj", t, Wb)  # noqa: E731
    b_m = {"camera": lift(x["camera"]), "radar": torch.zeros(2, 5, 4, dtype=torch.float64)}
    b_m["lidar"] = lift(-x["lidar"])
    # App. D.2: modality m keeps only a_m (x) b_m; every cross term and every term with a constant
    cross = sum(e(a_m[i], b_m[j]) for i in x for j in x if i != j)
    expected_bias = cross + e(a0, sum(b_m.values()) + b0) + e(sum(a_m.values()), b0)
    assert _close(dec.components["camera"], e(x["camera"], lift(x["camera"])), atol=1e-12)
    assert _close(dec.components["radar"], torch.zeros(2, 3, 5, dtype=torch.float64), atol=1e-15)
    assert _close(dec.components["lidar"], torch.zeros(2, 3, 5, dtype=torch.float64), atol=1e-15)
    assert _close(dec.bias, expected_bias, atol=1e-12)
    a, bb = operands(x)
    assert _close(dec.total, e(a, bb), atol=1e-12)
    assert dec.conservation_error < 1e-12


def test_einsum_with_two_decomposed_among_three_operands_is_refused():
    from ros2_lmd.lmd import LMDRuleError

    x = {"camera": torch.randn(3, 3), "radar": torch.randn(3, 3)}
    with pytest.raises(LMDRuleError, match="einsum"):
        decompose(lambda f: torch.einsum("ij,jk,kl->il", f["camera"], torch.eye(3), f["radar"]), x)


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
@pytest.mark.parametrize("rule", ["identity", "uniform"])
def test_instance_norm_with_running_statistics_in_eval_is_a_fixed_affine_map(rule, affine):
    """InstanceNorm(track_running_stats=True).eval() normalises with the running statistics, like
    BatchNorm: y = (x - running_mean) / sqrt(running_var + eps) * w + b, split as eq. 10."""
    rand = _gen(61)
    norm = nn.InstanceNorm2d(4, affine=affine, track_running_stats=True).double().eval()
    with torch.no_grad():
        norm.running_mean.copy_(rand(4) + 1.0)  # a clearly non-zero shift, of both signs
        norm.running_var.copy_(
            torch.rand(4, generator=torch.Generator().manual_seed(6), dtype=torch.float64) + 0.5
        )
        if affine:
            norm.weight.copy_(rand(4))
            norm.bias.copy_(rand(4))
    x = {"camera": rand(2, 4, 3, 3) + 0.7, "radar": rand(2, 4, 3, 3) * 2}
    b = rand(2, 4, 3, 3)
    before = {k: v.clone() for k, v in norm.state_dict().items()}
    dec = decompose(
        lambda f: norm(f["camera"] + f["radar"] + b), x, rules=RuleVariants(batchnorm=rule, bias="explicit")
    )
    w = norm.weight if affine else torch.ones(4, dtype=torch.float64)
    beta = norm.bias if affine else torch.zeros(4, dtype=torch.float64)
    view = lambda p: p.detach().view(1, -1, 1, 1)  # noqa: E731
    scale = view(w / torch.sqrt(norm.running_var + norm.eps))
    shift = view(beta - norm.running_mean * w / torch.sqrt(norm.running_var + norm.eps))
    A = x["camera"] + x["radar"] + b
    assert _close(dec.total, (A - view(norm.running_mean)) * scale + view(beta), atol=1e-12)
    share = shift / 3 if rule == "uniform" else 0.0  # section 4.2.4: each of the M + 1 streams
    for m in x:
        assert _close(dec.components[m], scale * x[m] + share, atol=1e-12), m
    assert _close(dec.bias, scale * b + (share if rule == "uniform" else shift), atol=1e-12)
    assert dec.conservation_error < 1e-12
    for key, value in norm.state_dict().items():  # nothing learnt from the decomposed pass
        assert torch.equal(value, before[key]), key


def test_multihead_attention_with_separate_key_and_value_sizes():
    """kdim / vdim != embed_dim: separate projection weights (use_separate_proj_weight)."""
    torch.manual_seed(8)  # layer initialisation (the global RNG is restored after the test)
    mha = nn.MultiheadAttention(8, 2, kdim=5, vdim=6, batch_first=True).eval().double()
    rand = _gen(8)
    with torch.no_grad():
        mha.in_proj_bias.copy_(rand(24))
    x = {"camera": rand(3, 7, 8), "radar": rand(3, 7, 8)}
    b0 = rand(3, 7, 8)

    def qkv(t):
        return t, t[..., :5] * 2, t[..., 2:]

    def fn(f):
        return mha(*qkv(f["camera"] + f["radar"] + b0), need_weights=False)[0]

    with torch.no_grad():
        dec = decompose(fn, x, rules=EXPLICIT)
        ref = fn(x)
        bq, bk, bv = mha.in_proj_bias.chunk(3)
        weights = (mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight)
        real = [
            F.linear(t, w, b) for t, w, b in zip(qkv(x["camera"] + x["radar"] + b0), weights, (bq, bk, bv))
        ]
        streams = {m: [F.linear(t, w) for t, w in zip(qkv(x[m]), weights)] for m in x}
        q, k, v = (
            {"real": _split_heads(real[i], 2)} | {m: _split_heads(streams[m][i], 2) for m in x}
            for i in range(3)
        )
        masked = torch.zeros(3, 2, 7, 7, dtype=torch.bool)
        comps, total, _ = _attention_components(q, k, v, 1 / 2, masked)
    assert _close(dec.total, ref)
    assert _close(F.linear(_merge_heads(total), mha.out_proj.weight, mha.out_proj.bias), ref)
    for m in x:
        assert _close(dec.components[m], F.linear(_merge_heads(comps[m]), mha.out_proj.weight)), m
    assert dec.conservation_error < 1e-12


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda t: F.scaled_dot_product_attention(t, t, t, dropout_p=0.1), "dropout"),
        (lambda t: F.scaled_dot_product_attention(t, t, t, enable_gqa=True), "enable_gqa"),
        (lambda t: nn.MultiheadAttention(4, 1, add_bias_kv=True).double()(t[0], t[0], t[0]), "bias_k"),
        (
            lambda t: nn.MultiheadAttention(4, 1, add_zero_attn=True).double()(t[0], t[0], t[0]),
            "add_zero_attn",
        ),
        (lambda t: nn.MultiheadAttention(4, 1, dropout=0.5).double().train()(t[0], t[0], t[0]), "dropout"),
    ],
    ids=["sdpa_dropout", "sdpa_gqa", "mha_bias_kv", "mha_zero_attn", "mha_train_dropout"],
)
def test_attention_variants_without_a_rule_are_refused(call, match):
    from ros2_lmd.lmd import LMDRuleError

    with pytest.raises(LMDRuleError, match=match):
        decompose(
            lambda f: call(f["camera"] + f["radar"]), {"camera": _gen(9)(2, 3, 4), "radar": _gen(10)(2, 3, 4)}
        )


def test_single_parameter_prelu_follows_the_secant_rule():
    prelu = nn.PReLU(init=0.2).double()
    rand = _gen(71)
    x = {"camera": rand(2, 4, 3, 3), "radar": rand(2, 4, 3, 3)}
    b = rand(2, 4, 3, 3)
    with torch.no_grad():
        dec = decompose(lambda f: prelu(f["camera"] + f["radar"] + b), x, rules=EXPLICIT)
    A = x["camera"] + x["radar"] + b
    c = torch.where(A > 0, 1.0, 0.2)  # eq. 9: (f(A) - f(0)) / A, exactly the slope for PReLU
    for m in x:
        assert _close(dec.components[m], c * x[m]), m
    assert _close(dec.bias, c * b)


def test_per_channel_prelu_follows_the_secant_rule():
    prelu = nn.PReLU(num_parameters=4).double()
    with torch.no_grad():
        prelu.weight.copy_(torch.tensor([0.05, 0.1, 0.2, 0.4], dtype=torch.float64))
    rand = _gen(72)
    x = {"camera": rand(2, 4, 3, 3), "radar": rand(2, 4, 3, 3)}
    with torch.no_grad():
        dec = decompose(lambda f: prelu(f["camera"] + f["radar"]), x, rules=EXPLICIT)
    A = x["camera"] + x["radar"]
    c = torch.where(A > 0, 1.0, prelu.weight.detach().view(1, -1, 1, 1))
    for m in x:
        assert _close(dec.components[m], c * x[m]), m


def _in_place(op):
    def run(t):
        t = t.clone()
        op(t)
        return t  # the tensor itself, not the op's return value

    return run


AFFINE_OPS = {
    # constants on either side, in place or not, with alpha: all affine in the inputs
    "rsub_scalar": lambda s, u: 1.5 - s,
    "sub_tensor_first": lambda s, u: torch.sub(torch.full((6,), 0.25, dtype=torch.float64), s),
    "rsub_alpha": lambda s, u: torch.rsub(s, 3.0, alpha=2),
    "add_alpha": lambda s, u: torch.add(s, u, alpha=2),
    "sub_alpha": lambda s, u: torch.sub(s, u, alpha=0.5),
    "add_const_alpha": lambda s, u: torch.add(s, torch.ones(6, dtype=torch.float64), alpha=-3),
    "iadd_const": lambda s, u: _in_place(lambda t: t.__iadd__(0.7))(s),
    "isub_tensor": lambda s, u: _in_place(lambda t: t.sub_(torch.arange(6.0, dtype=torch.float64)))(s),
    "iadd_broadcast": lambda s, u: _in_place(lambda t: t.add_(u[:1]))(s),
    "isub_decomposed": lambda s, u: _in_place(lambda t: t.sub_(u))(s),
    "iadd_alpha": lambda s, u: _in_place(lambda t: t.add_(u, alpha=-2))(s),
    "imul": lambda s, u: _in_place(lambda t: t.mul_(3.0))(s),
    "idiv": lambda s, u: _in_place(lambda t: t.__itruediv__(4.0))(s),
    "mul_broadcast_up": lambda s, u: (
        s[0] * torch.linspace(-1, 1, 2 * 4 * 6, dtype=torch.float64).view(2, 4, 6)
    ),
    "div_then_add": lambda s, u: (s + 1) / 2,
    "squeeze_all": lambda s, u: s[:1, :1].squeeze(),
    "flatten_scalar": lambda s, u: (s.sum() + 2).flatten(),
    "rmatmul_plain_first": lambda s, u: torch.linspace(0, 1, 12, dtype=torch.float64).view(3, 4) @ s,
}


@pytest.mark.parametrize("name", list(AFFINE_OPS))
def test_affine_ops_with_constants_split_into_linear_streams_and_a_constant_bias(name):
    """For a function affine in its inputs, LMD is exact and needs no linearisation: component m is
    fn(x_m alone) - fn(0) and the bias is fn(0)."""
    rand = _gen(81)
    x = {"camera": rand(4, 6), "radar": rand(4, 6)}
    b = rand(4, 6)
    op = AFFINE_OPS[name]

    def fn(f):
        s = f["camera"] + 2 * f["radar"] + b
        return op(s, f["camera"] - f["radar"])

    dec = decompose(fn, x, rules=EXPLICIT)
    zeros = {m: torch.zeros_like(v) for m, v in x.items()}
    at_zero = fn(zeros)
    assert _close(dec.total, fn(x))
    assert _close(dec.bias, at_zero)
    for m in x:
        alone = dict(zeros, **{m: x[m]})
        assert _close(dec.components[m], fn(alone) - at_zero), m
    assert dec.conservation_error < 1e-12
