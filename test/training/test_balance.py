"""`ros2-lmd train --balance` on a tiny model and a few simulated scenes: which sensors each option
lets the network see, the unimodal-aux heads' split of the first fusion layer, their loss and where
its gradient goes, the saved weights staying the architecture's, and a step being deterministic for
a seed. Nothing here touches the shipped weights or the working tree."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from support.tiny import scene, scenes, tiny

from ros2_lmd import training as tr
from ros2_lmd.models.registry import weights_path
from ros2_lmd.training import loop
from ros2_lmd.training.balance import UnimodalAuxHeads, modality_contributions


@pytest.fixture(scope="module", autouse=True)
def _forget_scenes():
    yield
    scene.cache_clear()


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """train() with the tiny three-sensor model in a temporary working directory (its dataset
    cache), torch's global RNG restored afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(loop, "build_model", lambda name: tiny(name))
    with torch.random.fork_rng():
        yield tmp_path


def config(tmp_path, name: str, **overrides) -> tr.TrainConfig:
    fields = dict(
        model="compact_crl",
        train_frames=4,
        val_frames=2,
        steps=6,
        batch_size=4,
        modality_dropout=0.5,
        camera_faults=0.0,
        eval_every=6,
        out=str(tmp_path / name / "weights"),
        checkpoint=str(tmp_path / name / "state.ckpt"),
    )
    return tr.TrainConfig(**{**fields, **overrides})


def seen_sensors(monkeypatch, cfg) -> torch.Tensor:
    """Train `cfg` and return every `present` row the model saw while training (not validating)."""
    rows = []
    real_tiny = tiny

    def recording(name):
        model = real_tiny(name)
        encode = model.encode

        def spy(inputs):
            if model.training:
                rows.append(inputs["present"].clone())
            return encode(inputs)

        model.encode = spy
        return model

    monkeypatch.setattr(loop, "build_model", recording)
    tr.train(cfg, sample_fn=scenes, log=lambda _: None)
    return torch.cat(rows)


def test_none_and_unimodal_aux_show_every_sensor_and_modality_dropout_only_proper_subsets(
    isolated, monkeypatch
):
    for balance in ("none", "unimodal-aux"):  # the dropout share is there, and unused
        rows = seen_sensors(monkeypatch, config(isolated, balance, balance=balance, modality_dropout=1.0))
        assert rows.shape == (6 * 4, 3) and bool(rows.eq(1).all()), balance
    rows = seen_sensors(
        monkeypatch, config(isolated, "dropout", balance="modality-dropout", modality_dropout=1.0)
    )
    kept = rows.sum(dim=1)
    assert bool(((kept >= 1) & (kept <= 2)).all())  # every sample: a non-empty proper subset
    assert len(torch.unique(rows, dim=0)) > 1  # and not always the same one


def test_the_modality_terms_sum_to_the_first_fusion_convolution():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = tiny("compact_crl").eval()
        features = {m: torch.randn(2, *shape) for m, shape in model.feature_shapes().items()}
    terms = modality_contributions(model, features)
    assert list(terms) == list(model.modalities)
    whole = model.bev_compressor[0](torch.cat([features[m] for m in model.modalities], dim=1))
    assert torch.allclose(sum(terms.values()), whole, atol=1e-5)
    for m in model.modalities:  # each term is that modality's alone: the others zeroed
        alone = {k: (v if k == m else torch.zeros_like(v)) for k, v in features.items()}
        conv_alone = model.bev_compressor[0](torch.cat([alone[k] for k in model.modalities], dim=1))
        assert torch.allclose(terms[m], conv_alone, atol=1e-6), m


def test_unimodal_aux_loss_weights_each_head_by_its_loss_share_and_reaches_only_each_sensors_own_weights():
    with torch.random.fork_rng():
        torch.manual_seed(1)
        model = tiny("compact_crl").train()
        heads = UnimodalAuxHeads(model)
    data = tr.build_dataset(model, range(2), scenes, False)
    inputs, target = tr.batch_inputs(data, torch.arange(2))
    pos_weight = torch.tensor([3.0])
    features = model.encode(inputs)
    losses = heads.losses(model, features, target, pos_weight)
    assert list(losses) == list(model.modalities)
    # each head's loss, written out: its logits from its own modality's term, on the output grid
    terms = modality_contributions(model, features)
    for m, term in terms.items():
        logits = F.interpolate(
            heads.heads[m](term), size=target.shape[-2:], mode="bilinear", align_corners=False
        )
        expected = F.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight)
        assert float(losses[m].detach()) == pytest.approx(float(expected.detach()), rel=1e-6), m
    values = {m: float(v.detach()) for m, v in losses.items()}
    assert len(set(values.values())) == 3  # three different losses: the weighting is not uniform
    total = sum(values.values())
    loss = heads.loss(model, features, target, pos_weight)
    assert float(loss.detach()) == pytest.approx(sum(v * v / total for v in values.values()), rel=1e-6)

    model.zero_grad(set_to_none=True)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.camera_backbone.parameters())
    conv = model.bev_compressor[0].weight.grad
    start = 0
    for m in model.modalities:  # every modality's slice of the fusion convolution is pushed
        channels = model.feature_shapes()[m][0]
        assert conv is not None and conv[:, start : start + channels].abs().sum() > 0, m
        start += channels
    # the fused decoder gets nothing from the auxiliary loss: it is the fused loss's
    for name in ("down1", "block1", "down2", "block2", "up1", "up2", "head_trunk", "segmentation_head"):
        assert all(p.grad is None for p in getattr(model, name).parameters()), name


def test_unimodal_aux_saves_the_architectures_weights_only_and_leaves_encode_and_fuse_alone(isolated):
    cfg = config(isolated, "aux", balance="unimodal-aux")
    report = tr.train(cfg, sample_fn=scenes, log=lambda _: None)
    saved = load_file(cfg.out + ".safetensors")
    architecture = tiny("compact_crl")
    assert set(saved) == set(architecture.state_dict())
    assert report["parameters"] == sum(p.numel() for p in architecture.parameters())
    assert report["config"]["balance"] == "unimodal-aux"
    assert "aux_loss" in report["history"][-1]
    on_disk = json.loads((isolated / "aux" / "weights.train.json").read_text())
    assert on_disk["config"]["balance"] == "unimodal-aux"
    # the checkpoint holds the heads beside the model, so a resumed run has them
    checkpoint = load_file(cfg.checkpoint)
    assert {k[6:] for k in checkpoint if k.startswith("model.")} == set(saved)
    assert any(k.startswith("aux.heads.") for k in checkpoint)


@pytest.mark.parametrize("balance", tr.BALANCES)
def test_one_training_step_is_deterministic_for_a_seed(isolated, balance):
    def weights(name, seed):
        cfg = config(isolated, name, balance=balance, steps=1, eval_every=1, seed=seed, camera_faults=0.5)
        tr.train(cfg, sample_fn=scenes, log=lambda _: None)
        return load_file(cfg.out + ".safetensors")

    first, again, other = weights("a", 0), weights("b", 0), weights("c", 1)
    assert first.keys() == again.keys()
    for key in first:
        assert torch.equal(first[key], again[key]), key
    assert any(not torch.equal(first[k], other[k]) for k in first)  # the seed matters


def test_the_options_train_differently_from_the_same_start(isolated):
    weights = {}
    for balance in tr.BALANCES:
        cfg = config(isolated, balance, balance=balance, steps=2, eval_every=2, modality_dropout=1.0)
        tr.train(cfg, sample_fn=scenes, log=lambda _: None)
        weights[balance] = load_file(cfg.out + ".safetensors")
    for a, b in (
        ("none", "modality-dropout"),
        ("none", "unimodal-aux"),
        ("modality-dropout", "unimodal-aux"),
    ):
        assert any(not torch.equal(weights[a][k], weights[b][k]) for k in weights[a]), (a, b)


def test_a_checkpoint_is_resumed_only_with_or_without_the_heads_it_was_saved_with(isolated):
    aux = config(isolated, "aux", balance="unimodal-aux", steps=2, eval_every=2)
    tr.train(aux, sample_fn=scenes, log=lambda _: None)
    more = dict(steps=4, out=str(isolated / "other" / "weights"))
    with pytest.raises(ValueError, match="saved by a --balance unimodal-aux run"):
        tr.train(tr.TrainConfig(**{**vars(aux), **more, "balance": "none"}), sample_fn=scenes)
    plain = config(isolated, "plain", balance="modality-dropout", steps=2, eval_every=2)
    tr.train(plain, sample_fn=scenes, log=lambda _: None)
    with pytest.raises(ValueError, match=r"unimodal-aux heads\) does not match"):
        tr.train(tr.TrainConfig(**{**vars(plain), **more, "balance": "unimodal-aux"}), sample_fn=scenes)


def test_an_unknown_balance_is_refused_naming_it(isolated):
    with pytest.raises(ValueError, match="'dropout-ish'"):
        tr.train(config(isolated, "bad", balance="dropout-ish"), sample_fn=scenes, log=lambda _: None)


def test_unimodal_aux_needs_a_first_fusion_convolution():
    from torch import nn

    model = tiny("compact_crl")
    model.bev_compressor = nn.Sequential(nn.Identity())
    with pytest.raises(ValueError, match="bev_compressor"):
        UnimodalAuxHeads(model)


@pytest.mark.parametrize(
    "argv, balance",
    [
        ([], "modality-dropout"),
        *((["--balance", b], b) for b in ("none", "modality-dropout", "unimodal-aux")),
    ],
)
def test_the_cli_passes_the_balance_option_to_the_training(tmp_path, monkeypatch, argv, balance):
    from ros2_lmd import cli

    configs = []
    monkeypatch.setattr(tr, "train", configs.append)  # run_train imports it from the package
    assert cli.main(["train", "--out", str(tmp_path / "m"), "--aux-weight", "0.5", *argv]) == 0
    (cfg,) = configs
    assert (cfg.balance, cfg.aux_weight, cfg.modality_dropout) == (balance, 0.5, 0.5)


def test_the_default_balance_is_what_trained_the_shipped_model():
    record = json.loads(weights_path("compact_crl").with_suffix(".train.json").read_text())
    defaults = tr.TrainConfig()
    # the shipped record predates --balance: its modality dropout is the default option's
    assert record["config"].get("balance", "modality-dropout") == defaults.balance == "modality-dropout"
    assert record["config"]["modality_dropout"] == defaults.modality_dropout > 0
