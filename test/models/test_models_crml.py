"""simplebev_crml, the LMD paper's camera + meta radar + LiDAR Simple-BEV: its inputs and outputs,
the `paper` rule preset module by module, conservation under every preset, and the conversion of a
checkpoint laid out as the reference network (detxter-jvb/Layer-Wise-Modality-Decomposition at
101f5bc9bf83e9f05547a7099244a7ec89a70ada, project/nets/segnet_relu_feats_bias_three.py)."""

from __future__ import annotations

import pytest
import torch
from support.tiny import CRML_GRID, build_small_crml
from torch import nn

from ros2_lmd.lmd import decompose
from ros2_lmd.models import (
    RULE_PRESETS,
    available_models,
    convert_simplebev_checkpoint,
    load_model,
    rule_preset,
)
from ros2_lmd.models.simplebev import SimpleBEV, infer_simplebev_variant

GRID = CRML_GRID


@pytest.fixture(scope="module")
def crml():
    return build_small_crml()


def test_registry_and_inputs(crml):
    assert "simplebev_crml" in available_models()
    assert crml.modalities == ("camera", "radar", "lidar")
    # the reference concatenates camera (C*Y), meta radar (16*Y), LiDAR (Y) in this order
    assert crml.feature_shapes() == {
        "camera": (16 * 8, 32, 32),
        "radar": (16 * 8, 32, 32),
        "lidar": (8, 32, 32),
    }
    assert crml.bev_compressor[0].in_channels == 16 * 8 + 16 * 8 + 8
    features = {m: torch.rand(1, *s) for m, s in crml.feature_shapes().items()}
    with torch.no_grad():
        outputs = crml.fuse(features)
    assert {k: tuple(v.shape) for k, v in outputs.items()} == {
        "bev_logits": (1, 1, 32, 32),
        "center_logits": (1, 1, 32, 32),
        "offset": (1, 2, 32, 32),
    }


# The paper's configuration, module by module, written out by hand (docs/reference-comparison.md).
PAPER_INSTANCE_NORMS = {
    # name: (layernorm rule, eps of the module)
    "bev_compressor.1": ("ratio", 1e-7),
    "decoder.up3_skip.upsample_layer.2": ("identity", 1e-7),
    "decoder.up2_skip.upsample_layer.2": ("identity", 1e-7),
    "decoder.up1_skip.upsample_layer.2": ("identity", 1e-7),
    "decoder.segmentation_head.1": ("identity", 1e-7),
    "decoder.feat_head.1": ("identity", 1e-5),
    "decoder.instance_offset_head.1": ("identity", 1e-5),
    "decoder.instance_center_head.1": ("identity", 1e-5),
}


def test_paper_preset_assigns_the_documented_rule_to_each_module(crml):
    resolved = RULE_PRESETS["paper"].resolve(crml)
    modules = dict(crml.named_modules())
    norms = {
        name: (resolved[name].layernorm, modules[name].eps)
        for name, module in modules.items()
        if isinstance(module, nn.InstanceNorm2d) and not name.startswith("encoder.")
    }
    assert norms == PAPER_INSTANCE_NORMS
    batchnorms = [n for n, m in modules.items() if isinstance(m, nn.BatchNorm2d) and n.startswith("decoder.")]
    assert len(batchnorms) == 1 + 4 + 5 + 5  # stem, layer1, layer2 and layer3 (with downsample)
    assert {resolved[n].batchnorm for n in batchnorms} == {"uniform"}
    activations = [
        n for n, m in modules.items() if isinstance(m, (nn.ReLU, nn.GELU)) and not n.startswith("encoder.")
    ]
    assert "bev_compressor.2" in activations and "decoder.segmentation_head.2" in activations
    assert {resolved[n].activation_split for n in activations} == {"identity"}
    # the default preset: one choice for every module
    default = RULE_PRESETS["default"].resolve(crml)
    assert {(v.batchnorm, v.layernorm, v.activation_split) for v in default.values()} == {
        ("identity", "ratio", "identity")
    }


@pytest.mark.parametrize("preset", sorted(RULE_PRESETS))
def test_conservation_under_every_preset(crml, preset):
    generator = torch.Generator().manual_seed(5)
    features = {m: torch.rand(1, *s, generator=generator) for m, s in crml.feature_shapes().items()}
    # the bias carried as its own stream through every rule: conservation is an independent check
    with torch.no_grad():
        result = decompose(crml.fuse, features, rules=rule_preset(preset, bias="explicit"))
    for name, decomposition in result.items():
        assert decomposition.conservation_error <= 1e-5, (preset, name)
        assert all(c.abs().max() > 0 for c in decomposition.components.values())


def test_paper_preset_differs_from_default_only_where_it_chooses_otherwise(crml):
    generator = torch.Generator().manual_seed(6)
    features = {m: torch.rand(1, *s, generator=generator) for m, s in crml.feature_shapes().items()}
    with torch.no_grad():
        default = decompose(crml.fuse, features, rules=rule_preset("default"), record=["bev_compressor"])
        paper = decompose(crml.fuse, features, rules=rule_preset("paper"), record=["bev_compressor"])
    # the compressor (conv, ratio InstanceNorm, GELU) has the same rules in both
    torch.testing.assert_close(
        default["bev_logits"].layers["bev_compressor"].stack(),
        paper["bev_logits"].layers["bev_compressor"].stack(),
    )
    assert not torch.allclose(default["bev_logits"].stack(), paper["bev_logits"].stack())


# --- a checkpoint of the reference network ----------------------------------------------------


def reference_layout(reference: SimpleBEV) -> nn.Module:
    """A stand-in for the reference network's checkpoint: the same modules registered again under
    the reference's flat names, as its Decoder does (so torch writes their tensors twice), and its
    parameterless extras (a top-level GELU, a spare InstanceNorm in the decoder). Changes `reference`."""
    decoder = reference.decoder
    for layer in (1, 2, 3):
        blocks = getattr(decoder, f"layer{layer}")
        for block in (1, 2):
            for part in ("conv1", "bn1", "relu", "conv2", "bn2"):
                setattr(decoder, f"layer{layer}_{block}_{part}", getattr(blocks[block - 1], part))
        if layer > 1:
            setattr(decoder, f"layer{layer}_1_downsample_conv", blocks[0].downsample[0])
            setattr(decoder, f"layer{layer}_1_downsample_bn", blocks[0].downsample[1])
    for up in (3, 2, 1):
        skip = getattr(decoder, f"up{up}_skip").upsample_layer
        setattr(decoder, f"up{up}_upsample", skip[0])
        setattr(decoder, f"up{up}_conv1", skip[1])
    head = decoder.segmentation_head
    decoder.seg_conv1, decoder.seg_instance_norm, decoder.seg_act, decoder.seg_conv2 = head
    decoder.instance_norm = nn.InstanceNorm2d(reference.latent_dim)
    reference.activation = nn.GELU()
    return reference


@pytest.fixture(scope="module")
def reference_state(crml):
    state = reference_layout(build_small_crml()).state_dict()  # the same weights as `crml`, own modules
    assert "decoder.layer3_1_downsample_bn.running_var" in state and "decoder.seg_conv2.bias" in state
    assert len(state) > len(crml.state_dict())
    return state


def test_reference_checkpoint_converts_strictly(crml, reference_state, tmp_path):
    src = tmp_path / "model-lmd-three.pth"
    torch.save({"model_state_dict": {f"module.{k}": v for k, v in reference_state.items()}}, src)
    config = convert_simplebev_checkpoint(src, tmp_path / "converted", grid=GRID, image_size=(64, 96))
    assert (config.variant, config.modalities) == ("crml", ("camera", "radar", "lidar"))
    assert config.params == {"encoder_type": "res50", "latent_dim": 16}
    loaded = load_model(tmp_path / "converted")
    for key, value in crml.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert infer_simplebev_variant(reference_state)[0] == "crml"


def test_reference_checkpoint_mismatches_are_named(reference_state, tmp_path):
    state = dict(reference_state)
    state["decoder.seg_conv1.weight"] = state["decoder.seg_conv1.weight"] + 1  # alias no longer a copy
    del state["decoder.layer2.0.downsample.0.weight"]  # its alias layer2_1_downsample_conv remains
    state["decoder.head_extra.weight"] = torch.zeros(3)
    src = tmp_path / "bad.pth"
    torch.save(state, src)
    with pytest.raises(ValueError) as error:
        convert_simplebev_checkpoint(src, tmp_path / "out", grid=GRID, image_size=(64, 96))
    message = str(error.value)
    assert "decoder.seg_conv1.weight (differs from decoder.segmentation_head.0.weight" in message
    assert (
        "decoder.layer2_1_downsample_conv.weight "
        "(alias of decoder.layer2.0.downsample.0.weight, which is missing)" in message
    )
    del state["decoder.layer2_1_downsample_conv.weight"]
    state["decoder.seg_conv1.weight"] = state["decoder.segmentation_head.0.weight"]
    torch.save(state, src)
    with pytest.raises(ValueError) as error:
        convert_simplebev_checkpoint(src, tmp_path / "out", grid=GRID, image_size=(64, 96))
    message = str(error.value)
    assert "missing keys (1): decoder.layer2.0.downsample.0.weight" in message
    assert "unexpected keys (1): decoder.head_extra.weight" in message
    assert not (tmp_path / "out.safetensors").exists()
