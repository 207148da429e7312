"""Training of the compact fusion models on synthetic data (`ros2-lmd train`): a cached dataset of
simulated frames, modality dropout (so every sensor matters and the model survives losing one),
resumable safetensors checkpoints, validation IoU, and the shipped weights with their provenance.

The dataset holds the model inputs after `prepare` (images kept as uint8) and the ground-truth
vehicle occupancy, cached as safetensors keyed by the generation settings, so the three variants
share one simulation run."""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from ros2_lmd.geometry.grid import BEVGrid
from ros2_lmd.models.base import FusionModel, check_state_dict
from ros2_lmd.models.io import save_model
from ros2_lmd.models.registry import build_model, weights_path

TRAIN_SEED_BASE = 0
VAL_SEED_BASE = 1_000_000  # validation scenes never overlap training scenes
CACHE_DIR = Path(".cache") / "ros2_lmd"


@dataclass
class TrainConfig:
    model: str = "compact_crl"
    train_frames: int = 1000
    val_frames: int = 100
    steps: int = 600
    batch_size: int = 6
    lr: float = 2e-3
    weight_decay: float = 1e-4
    modality_dropout: float = 0.5  # share of samples that see a proper subset of the sensors
    camera_faults: float = 0.1  # share of samples with blacked-out or night cameras
    pos_weight: float = 3.0
    seed: int = 0
    eval_every: int = 200
    out: str = ""  # weights path without extension; default: the shipped registry path
    checkpoint: str = ""  # resumable checkpoint path; default: <cache>/<model>.ckpt
    threads: int = 0  # torch threads (0: leave torch's default)


# --- data -------------------------------------------------------------------------------------


SIM_CAMERA_SIZE = (224, 128)  # (width, height): rendered at the compact models' input size


def simulated_sample(seed: int, grid: BEVGrid | None = None):
    """One independent random scene: (SensorFrame, ground-truth vehicle occupancy [ny, nx] on `grid`,
    by default the simulator's, which is the shipped models' grid)."""
    from ros2_lmd.sim import SimConfig, random_frame

    width, height = SIM_CAMERA_SIZE
    config = SimConfig(camera_width=width, camera_height=height)
    if grid is not None:
        config = replace(config, grid=grid)
    frame = random_frame(seed, config)
    return frame.to_sensor_frame(), frame.ground_truth.occupancy


def build_dataset(
    model: FusionModel, seeds: range, sample_fn: Callable = simulated_sample, progress: bool = True
) -> dict[str, torch.Tensor]:
    """Prepared inputs for every seed, stacked: images as uint8, the rest as float32, plus `target`."""
    from tqdm import tqdm

    chunks: dict[str, list[torch.Tensor]] = {}
    for seed in tqdm(seeds, desc="simulating", unit="frame", disable=not progress, file=sys.stderr):
        frame, occupancy = sample_fn(seed)
        inputs = model.prepare([frame])
        if "images" in inputs:
            inputs["images"] = (inputs["images"] * 255.0).round().to(torch.uint8)
        inputs["target"] = torch.from_numpy(np.asarray(occupancy, dtype=np.float32))[None, None]
        for key, value in inputs.items():
            chunks.setdefault(key, []).append(value)
    return {key: torch.cat(values).contiguous() for key, values in chunks.items()}


def cached_dataset(
    model: FusionModel, seeds: range, cache_dir: Path = CACHE_DIR, sample_fn: Callable = simulated_sample
) -> dict[str, torch.Tensor]:
    """build_dataset, cached as safetensors keyed by the model's input settings and the seeds."""
    config = model.config.to_dict()
    key_material = json.dumps(
        {
            "grid": config["grid"],
            "image_size": config["image_size"],
            "cameras": config["camera_names"],
            "params": config["params"],
            "modalities": config["modalities"],
            "seeds": [seeds.start, seeds.stop],
            "sim": _sim_version(),
        },
        sort_keys=True,
    )
    key = hashlib.sha256(key_material.encode()).hexdigest()[:16]
    path = cache_dir / f"dataset-{key}.safetensors"
    if path.exists():
        return load_file(str(path))
    data = build_dataset(model, seeds, sample_fn)
    cache_dir.mkdir(parents=True, exist_ok=True)
    save_file(data, str(path))
    return data


def _sim_version() -> str:
    """A hash of the simulator's source: a changed simulator invalidates cached datasets."""
    import ros2_lmd.sim

    digest = hashlib.sha256()
    for path in sorted(Path(ros2_lmd.sim.__file__).parent.glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16] + f"-{SIM_CAMERA_SIZE}"


def batch_inputs(
    data: dict[str, torch.Tensor], index: torch.Tensor
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    inputs = {k: v[index] for k, v in data.items() if k != "target"}
    if "images" in inputs:
        inputs["images"] = inputs["images"].float().div_(255.0)
    return inputs, data["target"][index]


def modality_dropout(present: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """Per sample: with probability 1 - p all sensors; otherwise a non-empty proper subset of them,
    chosen uniformly (with three sensors: each one alone or each pair). Training each modality
    alone keeps the weaker branches (radar, LiDAR) from being starved by the dominant one (the
    gradient suppression RSC-MD describes), so that every sensor carries evidence of its own; the
    pairs are exactly the "one sensor lost" inputs the monitor and the validation see."""
    batch, modalities = present.shape
    dropped = torch.rand(batch, generator=generator) < p
    if not dropped.any() or modalities < 2:
        return present
    # a subset as the bits of an integer in [1, 2^M - 2]: neither empty nor all sensors
    subsets = torch.randint(1, 2**modalities - 1, (int(dropped.sum()),), generator=generator)
    bits = (subsets[:, None] >> torch.arange(modalities)) & 1
    keep = torch.ones_like(present, dtype=torch.bool)
    keep[dropped] = bits.bool()
    return present * keep.to(present.dtype)


def camera_fault_augmentation(images: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """Darken all cameras of a fraction p of the samples (blackout, or night at 5-20 % light plus
    sensor noise), target unchanged: the network learns that such images carry no evidence, which
    is also what lets the monitor see a camera failure as a collapse of the camera's contribution."""
    batch = images.shape[0]
    hit = torch.rand(batch, generator=generator) < p
    if not hit.any():
        return images
    images = images.clone()
    for b in hit.nonzero().flatten().tolist():
        level = (
            0.0
            if torch.rand(1, generator=generator).item() < 0.5
            else 0.05 + 0.15 * torch.rand(1, generator=generator).item()
        )
        noise = 0.02 * torch.randn(images[b].shape, generator=generator)
        images[b] = (images[b] * level + noise).clamp_(0.0, 1.0)
    return images


# --- evaluation -------------------------------------------------------------------------------


@torch.no_grad()
def evaluate_iou(
    model: FusionModel,
    data: dict[str, torch.Tensor],
    drop: str | None = None,
    batch_size: int = 16,
    threshold: float = 0.5,
    only: str | None = None,
) -> float:
    """Vehicle IoU over the whole set (intersection and union summed over frames). With `drop`, that
    modality is marked absent (its features zeroed), as when the sensor is lost; with `only`, every
    other modality is: the prediction of that modality alone (the others at LMD's reference input)."""
    if drop is not None and only is not None:
        raise ValueError(f"evaluate_iou: give drop or only, not both (got drop={drop!r}, only={only!r})")
    for name in (drop, only):
        if name is not None and name not in model.modalities:
            raise ValueError(f"evaluate_iou: {name!r} is not a modality of the model {model.modalities}")
    absent = [drop] if drop is not None else [m for m in model.modalities if only is not None and m != only]
    model.eval()
    intersection = union = 0.0
    n = data["target"].shape[0]
    for start in range(0, n, batch_size):
        index = torch.arange(start, min(n, start + batch_size))
        inputs, target = batch_inputs(data, index)
        if absent:
            inputs["present"] = inputs["present"].clone()
            for modality in absent:
                inputs["present"][:, model.modalities.index(modality)] = 0
        predicted = torch.sigmoid(model(inputs)["bev_logits"]) >= threshold
        truth = target >= 0.5
        intersection += float((predicted & truth).sum())
        union += float((predicted | truth).sum())
    return intersection / union if union else float("nan")


CHECK_FRAMES = 16  # the small fixed validation set the tests re-run on the shipped weights


def check_set_metrics(
    model: FusionModel, frames: int = CHECK_FRAMES, sample_fn: Callable = simulated_sample
) -> dict:
    """IoU on the first `frames` validation scenes, with all sensors and with each one zeroed."""
    data = build_dataset(model, range(VAL_SEED_BASE, VAL_SEED_BASE + frames), sample_fn, progress=False)
    return {
        "frames": frames,
        "iou": evaluate_iou(model, data),
        "iou_without": {m: evaluate_iou(model, data, drop=m) for m in model.modalities},
    }


# --- checkpoints ------------------------------------------------------------------------------


def save_checkpoint(
    path: Path,
    model: FusionModel,
    optimizer: torch.optim.Optimizer,
    step: int,
    best_iou: float,
    history: list[dict],
) -> None:
    """Model and optimizer tensors in safetensors, counters and history in JSON beside it."""
    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    state = optimizer.state_dict()
    for pid, pstate in state["state"].items():
        for name, value in pstate.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{pid}.{name}"] = value.detach().reshape(value.shape).contiguous()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp))
    tmp.replace(path)
    meta = {"step": step, "best_iou": best_iou, "history": history, "param_groups": state["param_groups"]}
    path.with_suffix(".json").write_text(json.dumps(meta))


def load_checkpoint(
    path: Path, model: FusionModel, optimizer: torch.optim.Optimizer
) -> tuple[int, float, list]:
    tensors = load_file(str(path))
    meta = json.loads(path.with_suffix(".json").read_text())
    weights = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    check_state_dict(model, weights, f"checkpoint {path}")  # e.g. left over from another architecture
    model.load_state_dict(weights)
    state: dict = {"state": {}, "param_groups": meta["param_groups"]}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state["state"].setdefault(int(pid), {})[name] = value
    optimizer.load_state_dict(state)
    return meta["step"], meta["best_iou"], meta["history"]


# --- the loop ---------------------------------------------------------------------------------


def train(
    config: TrainConfig, sample_fn: Callable = simulated_sample, log: Callable[[str], None] = print
) -> dict:
    """Train `config.model`; returns the final report (IoU, per-modality-dropped IoU, timings)."""
    from tqdm import tqdm

    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    model = build_model(config.model).train()
    t0 = time.perf_counter()
    train_data = cached_dataset(
        model, range(TRAIN_SEED_BASE, TRAIN_SEED_BASE + config.train_frames), sample_fn=sample_fn
    )
    val_data = cached_dataset(
        model, range(VAL_SEED_BASE, VAL_SEED_BASE + config.val_frames), sample_fn=sample_fn
    )
    data_seconds = time.perf_counter() - t0
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    checkpoint = Path(config.checkpoint or CACHE_DIR / f"{config.model}.ckpt")
    out = Path(config.out) if config.out else weights_path(config.model).with_suffix("")
    if checkpoint.with_suffix(".json") == out.with_suffix(".json"):
        raise ValueError(
            f"train: checkpoint {checkpoint} and weights {out} would share the JSON file "
            f"{out.with_suffix('.json')}; give the checkpoint another name"
        )
    step, best_iou, history = 0, -1.0, []
    if checkpoint.exists():
        step, best_iou, history = load_checkpoint(checkpoint, model, optimizer)
        log(f"resumed {config.model} from {checkpoint} at step {step} (best IoU {best_iou:.3f})")
    generator = torch.Generator().manual_seed(config.seed * 1000 + step)
    n = train_data["target"].shape[0]
    pos_weight = torch.tensor([config.pos_weight])
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
        inputs["present"] = modality_dropout(inputs["present"], config.modality_dropout, generator)
        if "images" in inputs:
            inputs["images"] = camera_fault_augmentation(inputs["images"], config.camera_faults, generator)
        logits = model(inputs)["bev_logits"]
        loss = F.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.1e}")
        if step % config.eval_every == 0 or step == config.steps:
            iou = evaluate_iou(model, val_data)
            history.append({"step": step, "loss": loss.item(), "val_iou": iou})
            bar.write(f"step {step}: loss {loss.item():.4f}  val IoU {iou:.3f}")
            if iou > best_iou:
                best_iou = iou
                save_model(model, out, metadata={"val_iou": f"{iou:.4f}", "step": str(step)})
            save_checkpoint(checkpoint, model, optimizer, step, best_iou, history)
    bar.close()
    train_seconds = time.perf_counter() - t1
    from ros2_lmd.models.io import load_model

    best = load_model(str(out))
    report = {
        "model": config.model,
        "config": asdict(config),
        "val_iou": evaluate_iou(best, val_data),
        "val_iou_without": {m: evaluate_iou(best, val_data, drop=m) for m in best.modalities},
        "check_set": check_set_metrics(best, sample_fn=sample_fn),
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
