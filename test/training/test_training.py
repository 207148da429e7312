"""The training loop (ros2_lmd.training) on a tiny model and a few simulated scenes: the loss
falls on a fixed batch, a run interrupted after a checkpoint and resumed ends exactly where an
uninterrupted run ends, checkpoints round-trip, and the recorded IoUs equal an IoU computed here
with numpy from the saved weights. Nothing here touches the shipped weights or the working tree."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from support.tiny import SCENE_GRID, scene, scenes, tiny

from ros2_lmd import training as tr
from ros2_lmd.models.io import load_model
from ros2_lmd.training import loop

GRID = SCENE_GRID


@pytest.fixture(scope="module", autouse=True)
def _forget_scenes():
    yield
    scene.cache_clear()


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """train() builds the registry model and caches datasets under ./.cache: give it the tiny
    model and a temporary working directory, and restore torch's global RNG afterwards
    (train() seeds it)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(loop, "build_model", lambda name: tiny(name))
    threads = torch.get_num_threads()
    with torch.random.fork_rng():
        yield tmp_path
    assert torch.get_num_threads() == threads


def bce_with_pos_weight(logits: torch.Tensor, target: torch.Tensor, pos_weight: float) -> float:
    """-(w y log s(z) + (1 - y) log(1 - s(z))), averaged: the loss written out."""
    z, y = logits.double(), target.double()
    log_p, log_not_p = torch.nn.functional.logsigmoid(z), torch.nn.functional.logsigmoid(-z)
    return float(-(pos_weight * y * log_p + (1 - y) * log_not_p).mean())


NOISE = 1e-4  # a logit this close to 0 may land either side with another batching or thread count


def numpy_iou(model, data, drop=None) -> tuple[float, float, float]:
    """IoU of logit >= 0 against target >= 0.5, intersection and union summed over every frame
    (with `drop`, that modality's features zeroed), and the range it could take if any cell within
    NOISE of the threshold went the other way: a true cell only moves the intersection, a false
    one only the union."""
    inputs, target = tr.batch_inputs(data, torch.arange(data["target"].shape[0]))
    with torch.no_grad():
        features = model.eval().encode(inputs)
        if drop is not None:
            features[drop] = torch.zeros_like(features[drop])
        logits = model.fuse(features)["bev_logits"].numpy()
    predicted, truth, near = logits >= 0.0, target.numpy() >= 0.5, np.abs(logits) < NOISE
    intersection, union = np.logical_and(predicted, truth).sum(), np.logical_or(predicted, truth).sum()
    low = (intersection - (near & truth & predicted).sum()) / (union + (near & ~truth & ~predicted).sum())
    high = (intersection + (near & truth & ~predicted).sum()) / (union - (near & ~truth & predicted).sum())
    return intersection / union, low, high


def agrees(value: float, band: tuple[float, float, float]) -> bool:
    _, low, high = band
    return high - low < 0.01 and low - 1e-12 <= value <= high + 1e-12


def config(tmp_path, name="run", **overrides) -> tr.TrainConfig:
    fields = dict(
        model="compact_cr",
        train_frames=1,  # one scene, batch 2: every batch is the same fixed batch
        val_frames=2,
        steps=30,
        batch_size=2,
        lr=1e-2,
        modality_dropout=0.0,
        camera_faults=0.0,
        eval_every=10,
        out=str(tmp_path / name / "weights"),
        checkpoint=str(tmp_path / name / "state.ckpt"),
    )
    return tr.TrainConfig(**{**fields, **overrides})


def _fixed_batch_loss(model, cfg) -> float:
    """The training loss of `model` (train mode) on the one batch train() sees with train_frames=1."""
    data = tr.build_dataset(model, range(tr.TRAIN_SEED_BASE, tr.TRAIN_SEED_BASE + 1), scenes, False)
    inputs, target = tr.batch_inputs(data, torch.zeros(cfg.batch_size, dtype=torch.long))
    with torch.no_grad():
        return bce_with_pos_weight(model.train()(inputs)["bev_logits"], target, cfg.pos_weight)


def test_training_lowers_the_loss_keeps_the_best_step_and_reports_its_iou(isolated, monkeypatch):
    cfg = config(isolated)
    with torch.random.fork_rng():  # the model before any step, built as train() builds it
        torch.manual_seed(cfg.seed)
        initial = _fixed_batch_loss(tiny(), cfg)
    # the validation IoUs seen during training are scripted so that the best is not the last step
    real_evaluate, scripted = tr.evaluate_iou, iter([0.5, 0.1, 0.2])
    monkeypatch.setattr(loop, "evaluate_iou", lambda *a, **k: next(scripted, None) or real_evaluate(*a, **k))
    logs = []
    report = tr.train(cfg, sample_fn=scenes, log=logs.append)
    history = report["history"]
    assert [(h["step"], h["val_iou"]) for h in history] == [(10, 0.5), (20, 0.1), (30, 0.2)]
    assert not any("resumed" in line for line in logs)

    # the last state (in the checkpoint) learnt the batch; the loss recorded at step 30 (before the
    # last, tiny cosine-tail update) is that state's loss
    last = tiny()
    tr.load_checkpoint(isolated / "run" / "state.ckpt", last, torch.optim.AdamW(last.parameters()))
    final = _fixed_batch_loss(last, cfg)
    assert final < 0.6 * initial, (initial, final)
    assert history[-1]["loss"] == pytest.approx(final, abs=0.02)
    assert history[0]["loss"] < initial and history[-1]["loss"] < history[0]["loss"]
    # the counters and the cosine schedule: the last step (index 29 of 30) ran at lr/2 (1 + cos(29 pi / 30))
    meta = json.loads((isolated / "run" / "state.json").read_text())
    assert (meta["step"], meta["best_iou"], meta["history"]) == (30, 0.5, history)
    assert meta["param_groups"][0]["lr"] == pytest.approx(cfg.lr * 0.5 * (1 + math.cos(math.pi * 29 / 30)))

    # the weights kept are step 10's (the best IoU), not the last ones ...
    from safetensors import safe_open

    with safe_open(str(isolated / "run" / "weights.safetensors"), "pt") as handle:
        assert handle.metadata()["step"] == "10" and handle.metadata()["val_iou"] == "0.5000"
    best = load_model(cfg.out)
    assert any(not torch.equal(v, last.state_dict()[k]) for k, v in best.state_dict().items())
    # ... and the report's IoUs are what numpy measures on them
    val = tr.build_dataset(best, range(tr.VAL_SEED_BASE, tr.VAL_SEED_BASE + cfg.val_frames), scenes, False)
    assert agrees(report["val_iou"], numpy_iou(best, val))
    for m in ("camera", "radar"):
        assert agrees(report["val_iou_without"][m], numpy_iou(best, val, drop=m)), m
    check = tr.build_dataset(best, range(tr.VAL_SEED_BASE, tr.VAL_SEED_BASE + tr.CHECK_FRAMES), scenes, False)
    assert report["check_set"]["frames"] == tr.CHECK_FRAMES
    assert agrees(report["check_set"]["iou"], numpy_iou(best, check))
    assert report["parameters"] == sum(p.numel() for p in tiny().parameters())
    # the report on disk is the one returned
    assert json.loads((isolated / "run" / "weights.train.json").read_text()) == json.loads(json.dumps(report))


class _Interrupted(Exception):
    pass


@pytest.mark.parametrize("balance", ["modality-dropout", "unimodal-aux"])
def test_a_run_resumed_from_its_checkpoint_ends_where_an_uninterrupted_run_ends(
    isolated, monkeypatch, balance
):
    # unimodal-aux: its training-only heads and their optimizer moments are restored too
    straight = config(isolated, "straight", steps=12, eval_every=6, balance=balance)
    tr.train(straight, sample_fn=scenes, log=lambda _: None)

    resumed = config(isolated, "resumed", steps=12, eval_every=6, balance=balance)
    real_save = tr.save_checkpoint

    def save_then_crash(path, model, optimizer, step, best_iou, history, aux=None):
        real_save(path, model, optimizer, step, best_iou, history, aux=aux)
        if step == 6:
            raise _Interrupted

    monkeypatch.setattr(loop, "save_checkpoint", save_then_crash)
    with pytest.raises(_Interrupted):
        tr.train(resumed, sample_fn=scenes, log=lambda _: None)
    monkeypatch.setattr(loop, "save_checkpoint", real_save)
    logs = []
    report = tr.train(resumed, sample_fn=scenes, log=logs.append)
    assert any("at step 6" in line for line in logs), logs

    a = load_model(straight.out).state_dict()
    b = load_model(resumed.out).state_dict()
    assert a.keys() == b.keys()
    for key in a:  # same batches, same schedule, restored optimizer moments: the same weights
        assert torch.allclose(a[key].double(), b[key].double(), rtol=0, atol=1e-6), key
    straight_report = json.loads((isolated / "straight" / "weights.train.json").read_text())
    assert [h["step"] for h in report["history"]] == [6, 12]
    for h, g in zip(report["history"], straight_report["history"]):
        assert h["loss"] == pytest.approx(g["loss"], abs=1e-6) and h["val_iou"] == pytest.approx(g["val_iou"])


def test_checkpoint_round_trip_restores_model_optimizer_and_counters(tmp_path):
    with torch.random.fork_rng():  # the global RNG is restored afterwards
        torch.manual_seed(3)  # layer initialisation
        model = tiny().train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-4)
        data = tr.build_dataset(model, range(2), scenes, False)
        for _ in range(2):  # populate the optimizer moments and the BatchNorm statistics
            inputs, target = tr.batch_inputs(data, torch.arange(2))
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(inputs)["bev_logits"], target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        history = [{"step": 7, "loss": 0.5, "val_iou": 0.25}]
        path = tmp_path / "ck" / "state.ckpt"
        tr.save_checkpoint(path, model, optimizer, 7, 0.25, history)

        fresh = tiny()
        fresh_opt = torch.optim.AdamW(fresh.parameters(), lr=1.0)
        assert tr.load_checkpoint(path, fresh, fresh_opt) == (7, 0.25, history)
    for key, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key
    saved, loaded = optimizer.state_dict(), fresh_opt.state_dict()
    assert loaded["param_groups"][0]["lr"] == 1e-2 and loaded["param_groups"][0]["weight_decay"] == 1e-4
    assert saved["state"].keys() == loaded["state"].keys() and saved["state"]
    for pid, state in saved["state"].items():
        for name, value in state.items():
            assert torch.equal(loaded["state"][pid][name], value), (pid, name)

    other = tiny("compact_cl")  # another architecture: refused, naming the checkpoint
    with pytest.raises(ValueError, match="checkpoint"):
        tr.load_checkpoint(path, other, torch.optim.AdamW(other.parameters()))


def test_checkpoint_and_weights_sharing_a_json_file_is_refused(isolated):
    cfg = config(isolated, out=str(isolated / "m"), checkpoint=str(isolated / "m.ckpt"))
    with pytest.raises(ValueError, match="share the JSON file"):
        tr.train(cfg, sample_fn=scenes, log=lambda _: None)


def test_evaluate_iou_and_check_set_metrics_match_numpy(tmp_path):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = tiny().eval()
    data = tr.build_dataset(model, range(4), scenes, False)
    inputs, _ = tr.batch_inputs(data, torch.arange(4))
    with torch.no_grad():  # move the threshold to the median logit: about half the cells predicted
        model.segmentation_head.bias -= model(inputs)["bev_logits"].median()
    band = numpy_iou(model, data)
    assert 0.0 < band[0] < 1.0
    assert agrees(tr.evaluate_iou(model, data, batch_size=3), band)  # 2 batches: 3 + 1 frames
    for m in model.modalities:
        assert agrees(tr.evaluate_iou(model, data, drop=m), numpy_iou(model, data, drop=m)), m
    assert not data["present"].eq(0).any()  # dropping worked on a copy
    empty = dict(data, target=torch.zeros_like(data["target"]))
    with torch.no_grad():
        model.segmentation_head.bias -= 1e4  # predicts nothing, and there is nothing: undefined
    assert math.isnan(tr.evaluate_iou(model, empty))
    with torch.no_grad():
        model.segmentation_head.bias += 1e4
    metrics = tr.check_set_metrics(model, frames=3, sample_fn=scenes)
    check = tr.build_dataset(model, range(tr.VAL_SEED_BASE, tr.VAL_SEED_BASE + 3), scenes, False)
    assert metrics["frames"] == 3
    assert agrees(metrics["iou"], numpy_iou(model, check))
    assert metrics["iou_without"].keys() == set(model.modalities)
    for m in model.modalities:
        assert agrees(metrics["iou_without"][m], numpy_iou(model, check, drop=m)), m


def test_batch_inputs_scales_images_and_selects_rows():
    data = {
        "images": torch.arange(24, dtype=torch.uint8).reshape(3, 1, 2, 2, 2) * 10,
        "radar": torch.arange(3, dtype=torch.float32).reshape(3, 1),
        "target": torch.tensor([[0.0], [1.0], [0.0]]),
    }
    inputs, target = tr.batch_inputs(data, torch.tensor([2, 0]))
    assert torch.equal(inputs["images"], data["images"][[2, 0]].double().div(255).float())
    assert torch.equal(inputs["radar"], torch.tensor([[2.0], [0.0]]))
    assert torch.equal(target, torch.tensor([[0.0], [0.0]]))
    assert data["images"].dtype == torch.uint8  # the stored set is untouched


def test_cached_dataset_is_built_once_then_read_back(tmp_path):
    calls = []

    def counting(seed):
        calls.append(seed)
        return scenes(seed)

    model = tiny()
    first = tr.cached_dataset(model, range(0, 2), tmp_path, counting)
    assert calls == [0, 1] and len(list(tmp_path.glob("dataset-*.safetensors"))) == 1
    again = tr.cached_dataset(model, range(0, 2), tmp_path, counting)
    assert calls == [0, 1]  # read from the file
    assert first.keys() == again.keys()
    for key in first:
        assert torch.equal(first[key], again[key]), key
    tr.cached_dataset(model, range(1, 3), tmp_path, counting)  # other seeds: another file
    assert calls == [0, 1, 1, 2] and len(list(tmp_path.glob("dataset-*.safetensors"))) == 2


def test_camera_fault_augmentation_darkens_whole_samples_and_copies():
    images = torch.full((6, 2, 3, 4, 5), 0.8)
    g = torch.Generator().manual_seed(0)
    assert tr.camera_fault_augmentation(images, 0.0, g) is images  # no sample hit: unchanged
    out = tr.camera_fault_augmentation(images, 1.0, g)
    assert torch.equal(images, torch.full((6, 2, 3, 4, 5), 0.8))  # the input is not modified
    assert out.min() >= 0 and out.max() <= 1
    # every sample: blackout (level 0) or night (level 0.05 - 0.2) plus 2 % noise, all its cameras
    for sample in out:
        assert float(sample.mean()) < 0.2 * 0.8 + 0.02, float(sample.mean())


def test_modality_dropout_leaves_a_single_modality_and_p_zero_alone():
    g = torch.Generator().manual_seed(0)
    present = torch.ones(100, 1)
    assert torch.equal(tr.modality_dropout(present, 0.9, g), present)  # one sensor: nothing to drop
    present = torch.ones(100, 3)
    assert torch.equal(tr.modality_dropout(present, 0.0, g), present)
