"""The training loop of the compact fusion models (`ros2-lmd train`) on synthetic data or on
nuScenes: cosine-decayed AdamW over the cached dataset with the augmentations, validation IoU every
`eval_every` steps, the best weights kept with their provenance, and resumable safetensors
checkpoints (a resumed run ends exactly where an uninterrupted one ends)."""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from ros2_lmd.models.base import FusionModel, check_state_dict
from ros2_lmd.models.io import load_model, save_model
from ros2_lmd.models.registry import build_model, weights_path
from ros2_lmd.training.augmentation import camera_fault_augmentation, modality_dropout
from ros2_lmd.training.balance import UnimodalAuxHeads, check_balance
from ros2_lmd.training.config import TrainConfig
from ros2_lmd.training.data import (
    CACHE_DIR,
    batch_inputs,
    cached_dataset,
    frame_sets,
    on_device,
    simulated_sample,
)
from ros2_lmd.training.validation import CHECK_FRAMES, check_set_metrics, evaluate_iou

# --- checkpoints ------------------------------------------------------------------------------


def save_checkpoint(
    path: Path,
    model: FusionModel,
    optimizer: torch.optim.Optimizer,
    step: int,
    best_iou: float,
    history: list[dict],
    aux: torch.nn.Module | None = None,
) -> None:
    """Model and optimizer tensors in safetensors, counters and history in JSON beside it; the
    training-only auxiliary heads (`aux`, balance unimodal-aux) too, so a resumed run has them."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if aux is not None:
        tensors.update({f"aux.{k}": v.detach().cpu().contiguous() for k, v in aux.state_dict().items()})
    state = optimizer.state_dict()
    for pid, pstate in state["state"].items():
        for name, value in pstate.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{pid}.{name}"] = value.detach().cpu().reshape(value.shape).contiguous()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp))
    tmp.replace(path)
    meta = {"step": step, "best_iou": best_iou, "history": history, "param_groups": state["param_groups"]}
    path.with_suffix(".json").write_text(json.dumps(meta))


def load_checkpoint(
    path: Path,
    model: FusionModel,
    optimizer: torch.optim.Optimizer,
    aux: torch.nn.Module | None = None,
) -> tuple[int, float, list]:
    tensors = load_file(str(path))
    meta = json.loads(path.with_suffix(".json").read_text())
    weights = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    check_state_dict(model, weights, f"checkpoint {path}")  # e.g. left over from another architecture
    model.load_state_dict(weights)
    heads = {k[4:]: v for k, v in tensors.items() if k.startswith("aux.")}
    if aux is not None:  # a checkpoint of another --balance lacks the heads: named as missing keys
        check_state_dict(aux, heads, f"checkpoint {path} (unimodal-aux heads)")
        aux.load_state_dict(heads)
    elif heads:  # its optimizer state covers the heads too: it cannot go on without them
        raise ValueError(
            f"checkpoint {path} was saved by a --balance unimodal-aux run (it holds the auxiliary heads): "
            "resume it with --balance unimodal-aux, or give another --checkpoint"
        )
    state: dict = {"state": {}, "param_groups": meta["param_groups"]}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state["state"].setdefault(int(pid), {})[name] = value
    optimizer.load_state_dict(state)
    return meta["step"], meta["best_iou"], meta["history"]


# --- the loop ---------------------------------------------------------------------------------


def _run_name(config: TrainConfig) -> str:
    """The default checkpoint's name: the model, and the data it learns from when not synthetic."""
    if config.dataset == "synthetic":
        return config.model
    return f"{config.model}-{config.dataset}-{config.version}"


def train(
    config: TrainConfig, sample_fn: Callable = simulated_sample, log: Callable[[str], None] = print
) -> dict:
    """Train `config.model`; returns the final report (IoU, per-modality-dropped IoU, timings)."""
    from tqdm import tqdm

    if config.threads:
        torch.set_num_threads(config.threads)
    if config.dataset != "synthetic" and not config.out:
        # the default would overwrite the shipped synthetic weights
        raise ValueError(f"train: dataset {config.dataset} needs an output path for its weights (out)")
    device = torch.device(config.device)
    checkpoint = Path(config.checkpoint or CACHE_DIR / f"{_run_name(config)}.ckpt")
    out = Path(config.out) if config.out else weights_path(config.model).with_suffix("")
    if checkpoint.with_suffix(".json") == out.with_suffix(".json"):
        raise ValueError(
            f"train: checkpoint {checkpoint} and weights {out} would share the JSON file "
            f"{out.with_suffix('.json')}; give the checkpoint another name"
        )
    check_balance(config.balance)
    torch.manual_seed(config.seed)
    model = build_model(config.model).train()
    # built after the model, so the model's initial weights are the same under every --balance
    aux = UnimodalAuxHeads(model).train() if config.balance == "unimodal-aux" else None
    train_set, val_set = frame_sets(config, model.grid, sample_fn)
    t0 = time.perf_counter()
    train_data = cached_dataset(
        model, train_set.indices, sample_fn=train_set.sample, data_key=train_set.key, workers=config.workers
    )
    val_data = cached_dataset(
        model, val_set.indices, sample_fn=val_set.sample, data_key=val_set.key, workers=config.workers
    )
    data_seconds = time.perf_counter() - t0
    model.to(device)
    parameters = list(model.parameters())
    if aux is not None:
        aux.to(device)
        parameters += list(aux.parameters())  # after the model's: its optimizer state ids are unchanged
    optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
    step, best_iou = 0, -1.0
    history: list[dict] = []
    if checkpoint.exists():
        step, best_iou, history = load_checkpoint(checkpoint, model, optimizer, aux)
        log(f"resumed {config.model} from {checkpoint} at step {step} (best IoU {best_iou:.3f})")
    generator = torch.Generator().manual_seed(config.seed * 1000 + step)
    n = train_data["target"].shape[0]
    pos_weight = torch.tensor([config.pos_weight], device=device)
    t1 = time.perf_counter()
    bar = tqdm(
        total=config.steps, initial=step, desc=f"training {config.model}", unit="step", file=sys.stderr
    )
    while step < config.steps:
        model.train()
        lr = config.lr * 0.5 * (1 + math.cos(math.pi * step / config.steps))  # cosine decay
        for group in optimizer.param_groups:
            group["lr"] = lr
        index = torch.randint(0, n, (config.batch_size,), generator=generator)
        inputs, target = batch_inputs(train_data, index)
        if config.balance == "modality-dropout":
            inputs["present"] = modality_dropout(inputs["present"], config.modality_dropout, generator)
        if "images" in inputs:
            inputs["images"] = camera_fault_augmentation(inputs["images"], config.camera_faults, generator)
        inputs, target = on_device(device, inputs, target)  # augmented on the host: the generator is there
        features = model.encode(inputs)
        logits = model.fuse(features)["bev_logits"]
        fused_loss = F.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight)
        aux_loss = aux.loss(model, features, target, pos_weight) if aux is not None else None
        loss = fused_loss if aux_loss is None else fused_loss + config.aux_weight * aux_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{fused_loss.item():.3f}", lr=f"{lr:.1e}")
        if step % config.eval_every == 0 or step == config.steps:
            iou = evaluate_iou(model, val_data)
            # "loss": the fused prediction's, comparable across --balance options
            entry = {"step": step, "loss": fused_loss.item(), "val_iou": iou}
            if aux_loss is not None:
                entry["aux_loss"] = aux_loss.item()
            history.append(entry)
            bar.write(f"step {step}: loss {fused_loss.item():.4f}  val IoU {iou:.3f}")
            if iou > best_iou:
                best_iou = iou
                save_model(model, out, metadata={"val_iou": f"{iou:.4f}", "step": str(step)})
            save_checkpoint(checkpoint, model, optimizer, step, best_iou, history, aux=aux)
    bar.close()
    train_seconds = time.perf_counter() - t1
    best = load_model(str(out), device=device)
    # synthetic scenes are endless: the check set is always the first CHECK_FRAMES validation seeds
    check_frames = CHECK_FRAMES if config.dataset == "synthetic" else min(CHECK_FRAMES, len(val_set.indices))
    report = {
        "model": config.model,
        "config": asdict(config),
        "val_iou": evaluate_iou(best, val_data),
        "val_iou_without": {m: evaluate_iou(best, val_data, drop=m) for m in best.modalities},
        "check_set": check_set_metrics(best, check_frames, val_set.sample, val_set.indices.start),
        "parameters": sum(p.numel() for p in best.parameters()),
        "data_seconds": data_seconds,
        "train_seconds": train_seconds,
        "history": history,
    }
    out.with_suffix(".train.json").write_text(json.dumps(report, indent=2))
    log(
        json.dumps({k: report[k] for k in ("model", "val_iou", "val_iou_without", "train_seconds")}, indent=2)
    )
    return report
