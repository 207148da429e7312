"""Rule choice per module (RuleVariants.per_module): matching by type and name, first match wins,
each norm against its explicit formula under the rule its entry names, the rest untouched, and the
hooks that track the running module always removed."""

from __future__ import annotations

import dataclasses
import threading

import pytest
import torch
from torch import nn

from ros2_lmd.lmd import (
    BATCHNORM_MODULES,
    INSTANCENORM_MODULES,
    ModuleMatch,
    ModuleRule,
    RuleVariants,
    decompose,
)
from ros2_lmd.lmd.compiled import shared_compiled

EPS = 1e-5


class TwoNorms(nn.Module):
    """x -> conv (with bias: a constant reaches both norms) -> `first` IN -> conv -> `second` IN."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(7)
        self.conv_a = nn.Conv2d(3, 4, 3, padding=1).double()
        self.first = nn.InstanceNorm2d(4, eps=EPS, affine=True).double()
        # 3 x 3 with zero padding: the borders keep the streams entering `second` off zero mean
        # (after a 1 x 1 conv they would be centred, and ratio and identity would agree there)
        self.conv_b = nn.Conv2d(4, 4, 3, padding=1).double()
        self.second = nn.InstanceNorm2d(4, eps=EPS, affine=True).double()
        for parameter in self.parameters():
            parameter.data = torch.randn(parameter.shape, generator=generator, dtype=torch.float64)

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        x = features["camera"] + features["radar"]
        return self.second(self.conv_b(self.first(self.conv_a(x))))


def instance_norm_streams(
    streams: list[torch.Tensor], norm: nn.InstanceNorm2d, rule: str
) -> list[torch.Tensor]:
    """The InstanceNorm rules written out for the streams [modalities..., bias] of one input (App.
    B.3, eq. 11; section 4.2.4): the real statistics fix the scale; ratio centres every stream on its
    own mean, identity keeps each stream and gives the centring -mu/sigma to the bias."""
    real = sum(streams)
    mean = real.mean((2, 3), keepdim=True)
    inv_std = 1 / torch.sqrt(real.var((2, 3), unbiased=False, keepdim=True) + norm.eps)
    gamma, beta = norm.weight.view(1, -1, 1, 1), norm.bias.view(1, -1, 1, 1)
    if rule == "ratio":
        out = [(s - s.mean((2, 3), keepdim=True)) * inv_std * gamma for s in streams]
    else:
        out = [s * inv_std * gamma for s in streams]
        out[-1] = out[-1] - mean * inv_std * gamma
    out[-1] = out[-1] + beta
    return out


def oracle(net: TwoNorms, features: dict[str, torch.Tensor], first: str, second: str) -> list[torch.Tensor]:
    """Streams (camera, radar, bias) of `net` by hand: the convs are linear, their bias goes to the
    bias stream; `first` and `second` are the rules of the two norms."""
    streams = [nn.functional.conv2d(features[m], net.conv_a.weight, padding=1) for m in ("camera", "radar")]
    streams.append(net.conv_a.bias.view(1, -1, 1, 1).expand(1, 4, 6, 6).clone())
    streams = instance_norm_streams(streams, net.first, first)
    streams = [nn.functional.conv2d(s, net.conv_b.weight, padding=1) for s in streams[:2]] + [
        nn.functional.conv2d(streams[2], net.conv_b.weight, net.conv_b.bias, padding=1)
    ]
    return instance_norm_streams(streams, net.second, second)


@pytest.fixture()
def net_and_features():
    generator = torch.Generator().manual_seed(11)
    features = {
        m: torch.randn(1, 3, 6, 6, generator=generator, dtype=torch.float64) for m in ("camera", "radar")
    }
    return TwoNorms().eval(), features


def by_name(name: str, **overrides) -> ModuleRule:
    return ModuleRule(ModuleMatch(name=name), **overrides)


@pytest.mark.parametrize(
    "base, entries, first, second",
    [
        ("ratio", (), "ratio", "ratio"),
        ("identity", (), "identity", "identity"),
        ("ratio", (by_name("second", layernorm="identity"),), "ratio", "identity"),
        ("identity", (by_name("first", layernorm="ratio"),), "ratio", "identity"),
        # by type: every InstanceNorm, then a name entry after it never fires (first match wins)
        (
            "ratio",
            (
                ModuleRule(ModuleMatch(INSTANCENORM_MODULES), layernorm="identity"),
                by_name("first", layernorm="ratio"),
            ),
            "identity",
            "identity",
        ),
        # type and name together: both must hold
        (
            "ratio",
            (ModuleRule(ModuleMatch(INSTANCENORM_MODULES, "sec*"), layernorm="identity"),),
            "ratio",
            "identity",
        ),
        (
            "ratio",
            (ModuleRule(ModuleMatch(BATCHNORM_MODULES, "second"), layernorm="identity"),),
            "ratio",
            "ratio",
        ),
    ],
)
def test_each_norm_follows_the_rule_its_entry_names(net_and_features, base, entries, first, second):
    net, features = net_and_features
    rules = RuleVariants(layernorm=base, bias="explicit", per_module=entries)
    with torch.no_grad():
        result = decompose(net, features, rules=rules)
        expected = oracle(net, features, first, second)
    got = [result.components["camera"], result.components["radar"], result.bias]
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-10)
    assert result.conservation_error < 1e-12


def test_an_entry_changes_only_the_modules_it_names(net_and_features):
    net, features = net_and_features
    base = RuleVariants(bias="explicit")
    changed = dataclasses.replace(base, per_module=(by_name("second", layernorm="identity"),))
    with torch.no_grad():
        before = decompose(net, features, rules=base, record=["first", "conv_b", "second"])
        after = decompose(net, features, rules=changed, record=["first", "conv_b", "second"])
    for name in ("first", "conv_b"):  # upstream of `second`: bit for bit the same
        assert torch.equal(before.layers[name].stack(), after.layers[name].stack()), name
    assert not torch.allclose(before.layers["second"].stack(), after.layers["second"].stack())
    torch.testing.assert_close(before.total, after.total, rtol=0, atol=0)


def test_match_by_type_name_and_both():
    norm, conv = nn.InstanceNorm2d(2), nn.Conv2d(1, 1, 1)
    assert ModuleMatch(INSTANCENORM_MODULES)("anything", norm)
    assert not ModuleMatch(INSTANCENORM_MODULES)("anything", conv)
    assert ModuleMatch(name="decoder.*")("decoder.up3_skip.upsample_layer.2", conv)
    assert not ModuleMatch(name="decoder.*")("bev_compressor.1", norm)
    assert ModuleMatch(INSTANCENORM_MODULES, "bev_*")("bev_compressor.1", norm)
    assert not ModuleMatch(INSTANCENORM_MODULES, "bev_*")("bev_compressor.0", conv)
    assert not ModuleMatch()("x", norm)  # an empty matcher matches nothing


def test_resolve_lists_every_module_under_its_first_matching_entry():
    net = TwoNorms()
    rules = RuleVariants(
        batchnorm="uniform",
        per_module=(by_name("first", layernorm="identity"), by_name("f*", layernorm="uniform")),
    )
    resolved = rules.resolve(net)
    assert set(resolved) == {"", "conv_a", "first", "conv_b", "second"}
    assert resolved["first"].layernorm == "identity" and resolved["second"].layernorm == "ratio"
    assert {v.batchnorm for v in resolved.values()} == {"uniform"}  # global fields kept
    assert all(v.per_module == () for v in resolved.values())


def test_bad_entries_are_refused():
    with pytest.raises(ValueError, match="ModuleRule.layernorm must be one of"):
        by_name("x", layernorm="ratios")
    with pytest.raises(TypeError, match="per_module must be a tuple of ModuleRule"):
        RuleVariants(per_module=[by_name("x", layernorm="identity")])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="need the module"):
        decompose(
            lambda f: f["camera"] * 2,
            {"camera": torch.ones(2)},
            rules=RuleVariants(per_module=(by_name("x"),)),
        )


def no_hooks(net: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())


def test_hooks_are_removed_after_success_and_after_an_error(net_and_features):
    net, features = net_and_features
    rules = RuleVariants(per_module=(by_name("second", layernorm="identity"),))
    with torch.no_grad():
        decompose(net, features, rules=rules)
    assert no_hooks(net)

    class Fails(nn.Module):
        def forward(self, x):
            raise RuntimeError("inside the module")

    net.conv_b = Fails()
    with pytest.raises(RuntimeError, match="inside the module"), torch.no_grad():
        decompose(net, features, rules=rules)
    assert no_hooks(net)
    with pytest.raises(KeyError), torch.no_grad():  # a bad record= name: nothing placed is left
        decompose(net, features, rules=rules, record=["first", "no_such_module"])
    assert no_hooks(net)


def test_another_thread_using_the_model_does_not_enter_the_scope(net_and_features):
    """A worker thread calling the shared model while a decomposition runs elsewhere must not push
    onto that decomposition's scope (the hooks only act in the decomposing thread)."""
    net, features = net_and_features
    rules = RuleVariants(bias="explicit", per_module=(by_name("second", layernorm="identity"),))
    seen: list[int] = []

    class Probe(nn.Module):
        def forward(self, x):
            worker = threading.Thread(target=lambda: seen.append(int(net.first(x.detach().clone()).numel())))
            worker.start()
            worker.join()
            return x

    net.conv_b = nn.Sequential(Probe(), net.conv_b)
    with torch.no_grad():
        result = decompose(net, features, rules=rules)
        expected = oracle_with(net, features)
    assert seen and result.conservation_error < 1e-12
    torch.testing.assert_close(result.bias, expected, rtol=1e-10, atol=1e-10)


def oracle_with(net: TwoNorms, features) -> torch.Tensor:
    """The bias stream of TwoNorms with a pass-through inserted before conv_b (ratio, identity)."""
    plain = TwoNorms()
    plain.load_state_dict({k.replace("conv_b.1.", "conv_b."): v for k, v in net.state_dict().items()})
    return oracle(plain, features, "ratio", "identity")[2]


def test_per_module_rules_are_part_of_the_compiled_cache_key():
    net = TwoNorms().eval()
    plain = RuleVariants()
    changed = RuleVariants(per_module=(by_name("second", layernorm="identity"),))
    same = RuleVariants(per_module=(by_name("second", layernorm="identity"),))
    a = shared_compiled(net, "forward", ("x",), plain)
    b = shared_compiled(net, "forward", ("x",), changed)
    assert a is not b and shared_compiled(net, "forward", ("x",), same) is b


class NamedOutput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = TwoNorms().eval()

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"out": self.net(features)}


@pytest.mark.slow
def test_a_traced_graph_follows_the_per_module_rules(net_and_features):
    """The compiled path traces decompose once: the module hooks run during the trace, so the graph
    holds each module's rule (backend "eager": the traced graph itself, without inductor)."""
    from ros2_lmd.lmd import CompiledDecomposition

    _, features = net_and_features
    model = NamedOutput()
    changed = RuleVariants(bias="explicit", per_module=(by_name("net.second", layernorm="identity"),))
    plain = RuleVariants(bias="explicit")
    results = {}
    for name, rules in (("changed", changed), ("plain", plain)):
        compiled = CompiledDecomposition(model, ["out"], rules, backend="eager")
        graph = compiled.prepare(features)
        assert graph.call is not None, graph.reason
        results[name] = compiled(features)["out"].stack()
    with torch.no_grad():
        expected = oracle(model.net, features, "ratio", "identity")
    torch.testing.assert_close(
        results["changed"], torch.stack(expected[:2] + expected[2:]), rtol=1e-9, atol=1e-9
    )
    assert not torch.allclose(results["changed"], results["plain"])
