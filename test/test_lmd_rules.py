"""Each LMD rule against its explicit formula from the paper (eq. 9, 10, 11, App. B.3, C.1, C.2,
D.2), with randomised statistics so that no norm is trivially the identity."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ros2_lmd.lmd import RuleVariants, decompose

G = torch.Generator().manual_seed(1234)


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
