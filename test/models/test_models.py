"""The fusion-model contract on the compact variants: shapes, `prepare`, missing modalities, the ops
`fuse` may use, weights I/O with its error messages, and (when the engine exists) LMD
conservation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode

from ros2_lmd.geometry import BEVGrid
from ros2_lmd.models import ModelConfig, available_models, build_model, load_model, save_model, weights_path
from ros2_lmd.models.base import NUSCENES_CAMERAS
from ros2_lmd.sensors.frame import CameraImage, SensorFrame

COMPACT = ["compact_cr", "compact_cl", "compact_crl"]
R_BASE_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
YAWS = dict(zip(NUSCENES_CAMERAS, (55, 0, -55, 110, 180, -110)))


def make_frame(seed: int = 0, H: int = 90, W: int = 160, names=NUSCENES_CAMERAS) -> SensorFrame:
    """A synthetic nuScenes-like frame: six ring cameras, a few radar points, a LiDAR sweep."""
    rng = np.random.default_rng(seed)
    cameras = []
    f = W / 2 / np.tan(np.deg2rad(35))
    for name in names:
        yaw = np.deg2rad(YAWS[name])
        T = np.eye(4)
        T[:3, :3] = (
            np.array([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]])
            @ R_BASE_OPTICAL
        )
        T[:3, 3] = (1.0, 0.0, 1.5)
        K = np.array([[f, 0, W / 2 - 0.5], [0, f, H / 2 - 0.5], [0, 0, 1]])
        cameras.append(CameraImage(name, rng.integers(0, 255, (H, W, 3), dtype=np.uint8), K, T))
    radar = np.concatenate(
        [rng.uniform(-40, 40, (60, 2)), rng.uniform(-1, 2, (60, 1)), rng.normal(0, 5, (60, 3))], axis=1
    )
    lidar = np.concatenate(
        [rng.uniform(-45, 45, (3000, 2)), rng.uniform(-2, 3, (3000, 1)), rng.uniform(0, 255, (3000, 1))],
        axis=1,
    )
    return SensorFrame(stamp=float(seed), cameras=cameras, radar=radar, lidar=lidar)


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {name: build_model(name) for name in COMPACT}


def random_features(model, batch: int = 1, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {m: torch.randn(batch, *shape, generator=generator) for m, shape in model.feature_shapes().items()}


def test_registry_lists_every_variant():
    names = available_models()
    assert set(COMPACT) <= set(names) and "simplebev_cr" in names
    with pytest.raises(KeyError, match="unknown model name 'compact_x'"):
        build_model("compact_x")


@pytest.mark.parametrize("name", COMPACT)
def test_encode_and_fuse_shapes(models, name):
    model = models[name]
    inputs = model.prepare([make_frame(1), make_frame(2)])
    with torch.no_grad():
        features = model.encode(inputs)
        outputs = model.fuse(features)
    assert tuple(features) == model.modalities == model.config.modalities
    for modality, shape in model.feature_shapes().items():
        assert tuple(features[modality].shape) == (2, *shape)
    ny, nx = model.grid.shape
    assert {k: tuple(v.shape) for k, v in outputs.items()} == {
        "bev_logits": (2, 1, ny, nx),
        "center_logits": (2, 1, ny, nx),
        "offset": (2, 2, ny, nx),
    }
    assert all(torch.isfinite(v).all() for v in outputs.values())
    torch.testing.assert_close(model(inputs)["bev_logits"], outputs["bev_logits"])


def test_prepare_tensors(models):
    model = models["compact_crl"]
    frame = make_frame(3)
    inputs = model.prepare(frame)
    H, W = model.config.image_size
    assert inputs["images"].shape == (1, 6, 3, H, W) and inputs["images"].dtype == torch.float32
    assert 0 <= inputs["images"].min() and inputs["images"].max() <= 1
    assert inputs["camera_valid"].tolist() == [[1.0] * 6]
    # Intrinsics follow the resize from 160 x 90 to W x H (pixel-centre convention).
    K = frame.cameras[0].K
    assert inputs["intrinsics"][0, 0, 0, 0] == pytest.approx(K[0, 0] * W / 160, rel=1e-5)
    assert inputs["intrinsics"][0, 0, 0, 2] == pytest.approx((K[0, 2] + 0.5) * W / 160 - 0.5, rel=1e-5)
    # Point clouds arrive voxelised on the model's internal grid.
    shapes = model.feature_shapes()
    assert inputs["radar"].shape == (1, *shapes["radar"]) and inputs["radar"][0, 0].sum() > 0
    assert inputs["lidar"].shape == (1, *shapes["lidar"]) and inputs["lidar"][0, :-1].sum() > 100
    assert inputs["present"].tolist() == [[1.0, 1.0, 1.0]]


def test_cameras_are_stacked_by_name(models):
    model = models["compact_cr"]
    frame = make_frame(4)
    shuffled = make_frame(4)
    shuffled.cameras = shuffled.cameras[::-1]
    a, b = model.prepare(frame), model.prepare(shuffled)
    for key in ("images", "intrinsics", "T_base_cam"):
        assert torch.equal(a[key], b[key])
    # A camera the frame lacks is a zero image, excluded from the lifting.
    partial = make_frame(4, names=NUSCENES_CAMERAS[1:])
    inputs = model.prepare(partial)
    assert inputs["camera_valid"].tolist() == [[0.0, 1, 1, 1, 1, 1]] and not inputs["images"][0, 0].any()


def test_unknown_camera_name_is_an_error(models):
    frame = make_frame(5)
    frame.cameras[2].name = "cam_roof"
    with pytest.raises(ValueError, match="cam_roof"):
        models["compact_cr"].prepare(frame)


@pytest.mark.parametrize("missing", ["camera", "radar", "lidar"])
def test_absent_modality_gives_zero_inputs_and_features(models, missing):
    model = models["compact_crl"]
    frame = make_frame(6)
    frame.present[missing] = False
    inputs = model.prepare([make_frame(6), frame])
    keys = {"camera": ["images", "camera_valid"], "radar": ["radar"], "lidar": ["lidar"]}[missing]
    for key in keys:
        assert inputs[key][0].any() and not inputs[key][1].any()
    with torch.no_grad():
        features = model.encode(inputs)
    assert features[missing][0].abs().sum() > 0 and not features[missing][1].any()
    for other in set(model.modalities) - {missing}:
        torch.testing.assert_close(features[other][0], features[other][1])


def test_fuse_only_uses_ops_the_lmd_engine_supports(models):
    allowed = {
        "conv2d",
        "batch_norm",
        "instance_norm",
        "gelu",
        "relu",
        "interpolate",
        "cat",
        "add",
        "dim",
        "size",
        "__get__",
    }

    class Recorder(TorchFunctionMode):
        def __init__(self) -> None:
            super().__init__()
            self.names: set[str] = set()

        def __torch_function__(self, func, types, args=(), kwargs=None):
            self.names.add(getattr(func, "__name__", repr(func)))
            return func(*args, **(kwargs or {}))

    for name, model in models.items():
        recorder, features = Recorder(), random_features(model)
        with torch.no_grad(), recorder:
            model.fuse(features)
        assert recorder.names <= allowed, f"{name}.fuse calls {sorted(recorder.names - allowed)}"


@pytest.mark.parametrize("name", COMPACT)
def test_fuse_is_deterministic_and_per_sample(models, name):
    model = models[name]
    features = random_features(model, batch=2, seed=7)
    with torch.no_grad():
        first, second = model.fuse(features), model.fuse(features)
        single = model.fuse({m: v[1:] for m, v in features.items()})
    for key in first:
        assert torch.equal(first[key], second[key])
        # Eval-mode BatchNorm and per-sample InstanceNorm: no coupling across the batch.
        torch.testing.assert_close(first[key][1:], single[key], atol=1e-5, rtol=1e-4)


def test_zeroed_modality_changes_the_output(models):
    model = models["compact_crl"]
    features = random_features(model, seed=3)
    with torch.no_grad():
        full = model.fuse(features)["bev_logits"]
        for modality in model.modalities:
            reference = model.fuse({**features, modality: torch.zeros_like(features[modality])})
            assert not torch.allclose(reference["bev_logits"], full)


def test_batch_fusion_norm_keeps_each_sensors_share_independent_of_the_others():
    # With fixed (eval) statistics the bev_compressor before its GELU is affine in the concatenated
    # features: the full map minus the all-absent map is the sum of each sensor's own part, so
    # adding a sensor cannot rescale the others (as the per-frame InstanceNorm does).
    torch.manual_seed(1)
    model = build_model("compact_crl")  # its own copy: the running statistics are overwritten
    assert model.params["fusion_norm"] == "batch"
    for norm in (model.bev_compressor[1], model.camera_backbone.feature_norm):
        generator = torch.Generator().manual_seed(5)  # non-trivial running statistics
        norm.running_mean.copy_(torch.randn(norm.running_mean.shape, generator=generator))
        norm.running_var.copy_(torch.rand(norm.running_var.shape, generator=generator) + 0.5)
    features = random_features(model, seed=11)
    zeros = {m: torch.zeros_like(v) for m, v in features.items()}
    pre_activation = model.bev_compressor[:2]

    def compress(chosen):
        return pre_activation(torch.cat([chosen[m] for m in model.modalities], dim=1))

    with torch.no_grad():
        empty = compress(zeros)
        shares = sum(compress({**zeros, m: features[m]}) - empty for m in model.modalities)
        torch.testing.assert_close(compress(features) - empty, shares, atol=1e-4, rtol=1e-4)


def test_fusion_norm_choices():
    instance = build_model("compact_cr", fusion_norm="instance")
    assert isinstance(instance.bev_compressor[1], torch.nn.InstanceNorm2d)
    with pytest.raises(ValueError, match="fusion_norm must be one of"):
        build_model("compact_cr", fusion_norm="layer")


def test_config_json_round_trip():
    config = build_model("compact_crl", grid=BEVGrid(-20, 20, -20, 20), camera_channels=4).config
    again = ModelConfig.from_json(config.to_json())
    assert again == config and again.grid == BEVGrid(-20, 20, -20, 20)
    with pytest.raises(ValueError, match="unknown ModelConfig keys"):
        ModelConfig.from_dict({**config.to_dict(), "colour": "red"})
    with pytest.raises(ValueError, match="unknown params"):
        build_model("compact_cr", camera_chanels=4)


@pytest.mark.parametrize("name", COMPACT)
def test_save_load_round_trip(models, name, tmp_path):
    model = models[name]
    weights, config_file = save_model(model, tmp_path / name)
    assert weights.name == f"{name}.safetensors" and config_file.name == f"{name}.json"
    loaded = load_model(tmp_path / f"{name}.safetensors")
    assert loaded.config == model.config and not loaded.training
    inputs = model.prepare(make_frame(8))
    with torch.no_grad():
        expected, actual = model(inputs), loaded(inputs)
    for key in expected:
        assert torch.equal(expected[key], actual[key])
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as handle:
        metadata = handle.metadata()
    assert metadata["architecture"] == "compact" and metadata["variant"] == name.split("_")[1]


def test_registry_name_without_shipped_weights(tmp_path):
    if weights_path("compact_cr").with_suffix(".safetensors").exists():
        pytest.skip("compact_cr weights are shipped")
    with pytest.raises(FileNotFoundError, match="no shipped weights for model 'compact_cr'"):
        load_model("compact_cr")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_model(tmp_path / "nothing")


def test_load_errors_name_the_problem(models, tmp_path):
    model = models["compact_cr"]
    weights, config_file = save_model(model, tmp_path / "m")

    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"PK\x03\x04 this is a zip, not safetensors")
    (tmp_path / "bad.json").write_text(config_file.read_text())
    with pytest.raises(ValueError, match="bad.safetensors is not a readable safetensors file"):
        load_model(bad)

    lonely = tmp_path / "lonely"
    save_model(model, lonely)
    (tmp_path / "lonely.json").unlink()
    with pytest.raises(FileNotFoundError, match="lonely.json is missing"):
        load_model(lonely)

    values = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**values, "architecture": "bevformer"}))
    with pytest.raises(ValueError, match="unknown architecture 'bevformer'"):
        load_model(weights)

    # Metadata and config disagree on the variant.
    config_file.write_text(json.dumps({**values, "variant": "cl", "modalities": ["camera", "lidar"]}))
    with pytest.raises(ValueError, match="saved as variant 'cr'"):
        load_model(weights)

    # Same architecture, other widths: every mismatching shape is listed by name.
    config_file.write_text(json.dumps({**values, "params": {**values["params"], "fusion_channels": 24}}))
    with pytest.raises(
        ValueError,
        match=r"shape mismatches \(\d+\): .*bev_compressor\.0\.weight: file "
        r"\(32, 36, 3, 3\) != model \(24, 36, 3, 3\)",
    ):
        load_model(weights)

    # A renamed key: missing and unexpected, both named.
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(weights))
    tensors["bev_compressor.9.weight"] = tensors.pop("bev_compressor.0.weight")
    save_file(tensors, str(tmp_path / "renamed.safetensors"))
    (tmp_path / "renamed.json").write_text(json.dumps(values))
    with pytest.raises(
        ValueError,
        match=r"missing keys \(1\): bev_compressor\.0\.weight(.|\n)*"
        r"unexpected keys \(1\): bev_compressor\.9\.weight",
    ):
        load_model(tmp_path / "renamed.json")


def test_lmd_conserves_on_every_compact_variant(models):
    lmd = pytest.importorskip("ros2_lmd.lmd")
    if not hasattr(lmd, "decompose"):
        pytest.skip("ros2_lmd.lmd.decompose is not available yet")
    for name, model in models.items():
        features = random_features(model, seed=11)
        with torch.no_grad():
            decomposition = lmd.decompose(model.fuse, features)
        assert decomposition["bev_logits"].conservation_error < 1e-4, name
