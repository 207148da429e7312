"""`simplebev` against the official Simple-BEV Segnet (aharley/simple_bev, nets/segnet.py): the
state_dict keys and shapes written below were derived by hand from the official source and
torchvision's ResNets, not from our implementation. Plus the checkpoint converter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ros2_lmd.geometry import BEVGrid
from ros2_lmd.models import build_model, convert_simplebev_checkpoint, load_model
from ros2_lmd.models.simplebev import SimpleBEV, infer_simplebev_variant, simplebev_config

# --- the official state_dict, as data --------------------------------------------------------
TOP_LEVEL = {"ce_weight", "center_weight", "offset_weight", "encoder", "bev_compressor", "decoder"}
SECOND_LEVEL = {
    "encoder.backbone",
    "encoder.layer3",
    "encoder.depth_layer",
    "encoder.upsampling_layer",
    "decoder.first_conv",
    "decoder.bn1",
    "decoder.layer1",
    "decoder.layer2",
    "decoder.layer3",
    "decoder.up3_skip",
    "decoder.up2_skip",
    "decoder.up1_skip",
    "decoder.feat_head",
    "decoder.segmentation_head",
    "decoder.instance_offset_head",
    "decoder.instance_center_head",
    "bev_compressor.0",
}
# Encoder_res101: resnet101 children()[:-4] = conv1, bn1, relu, maxpool, layer1, layer2.
SHAPES = {
    "ce_weight": (),
    "center_weight": (),
    "offset_weight": (),
    "encoder.backbone.0.weight": (64, 3, 7, 7),
    "encoder.backbone.1.running_var": (64,),
    "encoder.backbone.1.num_batches_tracked": (),
    "encoder.backbone.4.0.conv1.weight": (64, 64, 1, 1),
    "encoder.backbone.4.0.downsample.0.weight": (256, 64, 1, 1),
    "encoder.backbone.4.2.conv3.weight": (256, 64, 1, 1),
    "encoder.backbone.5.0.conv2.weight": (128, 128, 3, 3),
    "encoder.backbone.5.0.downsample.0.weight": (512, 256, 1, 1),
    "encoder.backbone.5.3.bn3.bias": (512,),
    "encoder.layer3.0.downsample.0.weight": (1024, 512, 1, 1),
    "encoder.layer3.22.conv3.weight": (1024, 256, 1, 1),
    "encoder.layer3.22.bn3.running_mean": (1024,),
    "encoder.depth_layer.weight": (128, 512, 1, 1),
    "encoder.depth_layer.bias": (128,),
    "encoder.upsampling_layer.conv.0.weight": (512, 1536, 3, 3),
    "encoder.upsampling_layer.conv.3.weight": (512, 512, 3, 3),
    "bev_compressor.0.weight": (128, 128 * 8 + 1, 3, 3),  # use_radar, not meta: C*Y + 1
    "decoder.first_conv.weight": (64, 128, 7, 7),
    "decoder.bn1.weight": (64,),
    "decoder.layer1.1.conv2.weight": (64, 64, 3, 3),
    "decoder.layer2.0.downsample.0.weight": (128, 64, 1, 1),
    "decoder.layer3.1.bn2.running_var": (256,),
    "decoder.up3_skip.upsample_layer.1.weight": (128, 256, 1, 1),
    "decoder.up2_skip.upsample_layer.1.weight": (64, 128, 1, 1),
    "decoder.up1_skip.upsample_layer.1.weight": (128, 64, 1, 1),
    "decoder.feat_head.0.weight": (128, 128, 3, 3),
    "decoder.feat_head.3.weight": (128, 128, 1, 1),
    "decoder.segmentation_head.3.weight": (1, 128, 1, 1),
    "decoder.segmentation_head.3.bias": (1,),
    "decoder.instance_offset_head.3.weight": (2, 128, 1, 1),
    "decoder.instance_center_head.0.weight": (128, 128, 3, 3),
    "decoder.instance_center_head.3.bias": (1,),
}
ABSENT = [
    "mean",
    "std",
    "encoder.layer4.0.conv1.weight",
    "encoder.backbone.2.weight",
    "decoder.layer4.0.conv1.weight",
    "decoder.instance_center_head.4.weight",
    "bev_compressor.1.weight",
    "encoder.upsampling_layer.conv.1.weight",
]
# Key count: encoder 568 (stem 6, layer1 60, layer2 78, layer3 420, depth 2, upsampling 2),
# compressor 1, decoder 105 (stem 6, layers 24+30+30, ups 3, heads 12), loss weights 3.
NUM_KEYS = 677
# Parameter counts from torchvision totals: resnet101 = 44,549,160 minus layer4 (14,964,736) and
# fc (2,049,000) = 27,535,424 (resnet50: 8,543,296); + upsampling convs 9,437,184 + depth layer
# 65,664; decoder 3,830,788; compressor 128*9*(C*Y + extra); 3 loss weights.
_ENC101, _ENC50, _DECODER = 27_535_424 + 9_437_184 + 65_664, 8_543_296 + 9_437_184 + 65_664, 3_830_788
PARAMS = {
    ("c", "res101"): _ENC101 + 128 * 9 * 1024 + _DECODER + 3,
    ("cr", "res101"): _ENC101 + 128 * 9 * 1025 + _DECODER + 3,  # 42,049,863
    ("crm", "res101"): _ENC101 + 128 * 9 * (1024 + 128) + _DECODER + 3,
    ("cl", "res101"): _ENC101 + 128 * 9 * (1024 + 8) + _DECODER + 3,
    ("cr", "res50"): _ENC50 + 128 * 9 * 1025 + _DECODER + 3,  # 23,057,735
}


@pytest.fixture(scope="module")
def official_cr() -> SimpleBEV:
    return build_model("simplebev_cr")


def test_state_dict_matches_the_official_segnet(official_cr):
    state = official_cr.state_dict()
    assert len(state) == NUM_KEYS
    assert {k.split(".")[0] for k in state} == TOP_LEVEL
    assert {".".join(k.split(".")[:2]) for k in state if "." in k} == SECOND_LEVEL
    for key, shape in SHAPES.items():
        assert tuple(state[key].shape) == shape, key
    for key in ABSENT:
        assert key not in state
    assert sum(p.numel() for p in official_cr.parameters()) == PARAMS[("cr", "res101")] == 42_049_863


@pytest.mark.parametrize(
    "variant, encoder", [("c", "res101"), ("crm", "res101"), ("cl", "res101"), ("cr", "res50")]
)
def test_parameter_counts_of_other_variants(variant, encoder):
    model = SimpleBEV(simplebev_config(variant, encoder_type=encoder))
    assert sum(p.numel() for p in model.parameters()) == PARAMS[(variant, encoder)]
    layer3_blocks = {k.split(".")[2] for k in model.state_dict() if k.startswith("encoder.layer3.")}
    assert len(layer3_blocks) == {"res101": 23, "res50": 6}[encoder]


def small_config(variant: str = "cr", **overrides):
    """Full channel widths, tiny BEV (32 x 32 x 8) and two small cameras: a fast forward pass."""
    return simplebev_config(
        variant,
        grid=BEVGrid(-8, 8, -8, 8, z_min=-4.5, z_max=5.5, z_bins=8),
        image_size=(64, 96),
        camera_names=("cam_front", "cam_back"),
        **overrides,
    )


def two_camera_frame(seed: int = 0):
    from test_models import make_frame

    return make_frame(seed, H=72, W=128, names=("cam_front", "cam_back"))


@pytest.mark.parametrize("variant", ["cr", "crm", "cl"])
def test_forward_at_small_grid(variant):
    torch.manual_seed(0)
    model = SimpleBEV(small_config(variant, encoder_type="res50")).eval()
    inputs = model.prepare([two_camera_frame(1)])
    with torch.no_grad():
        features = model.encode(inputs)
        outputs = model.fuse(features)
    extra = {"cr": 1, "crm": 16 * 8, "cl": 8}[variant]
    other = model.modalities[1]
    assert features["camera"].shape == (1, 128 * 8, 32, 32)
    assert features[other].shape == (1, extra, 32, 32)
    assert {k: tuple(v.shape) for k, v in outputs.items()} == {
        "bev_logits": (1, 1, 32, 32),
        "center_logits": (1, 1, 32, 32),
        "offset": (1, 2, 32, 32),
    }
    # center_logits are the official instance_center before its final Sigmoid.
    with torch.no_grad():
        x = model.decoder.trunk(model.bev_compressor(torch.cat([features[m] for m in model.modalities], 1)))
        torch.testing.assert_close(
            torch.sigmoid(outputs["center_logits"]), model.decoder.instance_center_head(x)
        )


def test_simplebev_point_layout_is_top_bin_first():
    model = SimpleBEV(small_config("cl", encoder_type="res50"))
    # One LiDAR point high up (z in the top bin) at x=+3.2 m, y=-1.1 m.
    lidar = model.point_inputs("lidar", np.array([[3.2, -1.1, 5.0, 0.0]], np.float32))
    assert lidar.shape == (8, 32, 32) and lidar[0, 13, 22] == 1 and lidar.sum() == 1
    meta_model = SimpleBEV(small_config("crm", encoder_type="res50"))
    radar = meta_model.point_inputs("radar", np.array([[3.2, -1.1, 5.0, 7.0, 1.0, 2.0]], np.float32))
    # channel = field * Y + y with y = 0 the top bin; rcs is meta field 2.
    assert radar.shape == (128, 32, 32) and radar[2 * 8 + 0, 13, 22] == 7.0


def test_lmd_conserves_on_simplebev():
    lmd = pytest.importorskip("ros2_lmd.lmd")
    model = SimpleBEV(small_config("cr", encoder_type="res50")).eval()
    generator = torch.Generator().manual_seed(2)
    features = {m: torch.randn(1, *s, generator=generator).abs() for m, s in model.feature_shapes().items()}
    with torch.no_grad():
        decomposition = lmd.decompose(model.fuse, features)
    assert decomposition["bev_logits"].conservation_error < 1e-4


# --- converter --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_official():
    """A res50, latent_dim=16 Segnet: the converter reads the widths from the file."""
    torch.manual_seed(1)
    return SimpleBEV(simplebev_config("cr", encoder_type="res50", latent_dim=16))


def test_converter_round_trip(small_official, tmp_path):
    src = tmp_path / "model-000025000.pth"
    state = {f"module.{k}": v for k, v in small_official.state_dict().items()}
    torch.save({"model_state_dict": state, "optimizer_state_dict": {}}, src)
    config = convert_simplebev_checkpoint(src, tmp_path / "converted")
    assert (config.architecture, config.variant) == ("simplebev", "cr")
    assert config.params == {"encoder_type": "res50", "latent_dim": 16}
    loaded = load_model(tmp_path / "converted")
    for key, value in small_official.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_converter_names_bad_keys(small_official, tmp_path):
    state = dict(small_official.state_dict())
    state["decoder.segmentation_head.3.weight_renamed"] = state.pop("decoder.segmentation_head.3.weight")
    state["decoder.feat_head.3.bias"] = torch.zeros(7)
    src = tmp_path / "bad.pth"
    torch.save(state, src)
    with pytest.raises(ValueError) as error:
        convert_simplebev_checkpoint(src, tmp_path / "out")
    message = str(error.value)
    assert "missing keys (1): decoder.segmentation_head.3.weight" in message
    assert "unexpected keys (1): decoder.segmentation_head.3.weight_renamed" in message
    assert "decoder.feat_head.3.bias: file (7,) != model (16,)" in message
    assert not (tmp_path / "out.safetensors").exists()


def test_converter_rejects_other_files(tmp_path):
    src = tmp_path / "notes.pth"
    src.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="cannot read .*notes.pth"):
        convert_simplebev_checkpoint(src, tmp_path / "out")
    torch.save({"encoder.foo": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="not a Simple-BEV Segnet checkpoint"):
        convert_simplebev_checkpoint(tmp_path / "other.pth", tmp_path / "out")


def test_variant_inference_from_shapes(small_official):
    state = small_official.state_dict()
    assert infer_simplebev_variant(state) == ("cr", {"encoder_type": "res50", "latent_dim": 16})
    lidar = dict(state, **{"bev_compressor.0.weight": torch.zeros(16, 16 * 8 + 8, 3, 3)})
    assert infer_simplebev_variant(lidar)[0] == "cl"
