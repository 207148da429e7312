"""Training of the compact fusion models (`ros2-lmd train`) on synthetic data or on nuScenes: a
cached dataset of frames, modality dropout (so every sensor matters and the model survives losing
one), resumable safetensors checkpoints, validation IoU, and the weights with their provenance.

Both datasets give the same pairs, (SensorFrame, ground-truth vehicle occupancy), through one
interface, `FrameSet` (an indexed sample function and a key naming the data): simulated scenes by
seed, or nuScenes keyframe samples of the official train and val splits by index
(datasets/nuscenes_frames.py). The dataset holds the model inputs after `prepare` (images kept as
uint8) and the occupancy, cached as safetensors keyed by the model's input settings, the indices and
the data's key, so the three variants share one simulation run."""

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
    out: str = ""  # weights path without extension; default: the shipped registry path (synthetic only)
    checkpoint: str = (
        ""  # resumable checkpoint path; default: <cache>/<model>.ckpt (nuScenes: -nuscenes-<version>)
    )
    threads: int = 0  # torch threads (0: leave torch's default)
    dataset: str = "synthetic"  # or "nuscenes" (train and val splits of `version` under `dataroot`)
    dataroot: str = ""
    version: str = "v1.0-mini"
    device: str = "cpu"  # where the model trains ("cpu", "cuda"); the dataset stays in host memory
    workers: int = 0  # threads that load and prepare dataset frames (0: the calling thread)


DATASETS = ("synthetic", "nuscenes")


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


@dataclass(frozen=True)
class FrameSet:
    """Training or validation data behind one interface: `sample(i)` -> (SensorFrame, vehicle
    occupancy (ny, nx)) for every i in `indices`; `key` names the data (the dataset cache is keyed
    by it: a changed simulator or dataset loader builds a new cache)."""

    sample: Callable
    indices: range
    key: str


def frame_sets(
    config: TrainConfig, grid: BEVGrid | None = None, sample_fn: Callable = simulated_sample
) -> tuple[FrameSet, FrameSet]:
    """The (train, validation) sets of `config.dataset`. Synthetic: `train_frames` and `val_frames`
    scenes by seed. nuScenes: the keyframe samples of the official train and val splits of
    `version` (the first `train_frames` / `val_frames` of each in Simple-BEV's order; 0: all), with
    the ground truth on `grid`."""
    if config.dataset == "synthetic":
        key = _sim_version()
        return (
            FrameSet(sample_fn, range(TRAIN_SEED_BASE, TRAIN_SEED_BASE + config.train_frames), key),
            FrameSet(sample_fn, range(VAL_SEED_BASE, VAL_SEED_BASE + config.val_frames), key),
        )
    if config.dataset != "nuscenes":
        raise ValueError(f"dataset {config.dataset!r}: expected one of {', '.join(DATASETS)}")
    from ros2_lmd.datasets.nuscenes import NuScenesTables
    from ros2_lmd.datasets.nuscenes_frames import NuScenesFrames

    if not config.dataroot:
        raise ValueError(
            "dataset nuscenes needs its dataroot (the folder holding samples/, sweeps/ and v1.0-*/)"
        )
    tables = NuScenesTables(config.dataroot, config.version)
    sets = []
    for split, wanted in (("train", config.train_frames), ("val", config.val_frames)):
        frames = NuScenesFrames(tables, split, grid)
        if not len(frames):
            raise ValueError(
                f"nuScenes {config.version} at {config.dataroot}: no samples in the {split} split "
                f"(the dataroot's scenes: {', '.join(tables.scene_names()[:12])})"
            )
        count = len(frames) if wanted <= 0 else min(wanted, len(frames))
        sets.append(FrameSet(frames.__getitem__, range(count), frames.key()))
    return sets[0], sets[1]


def build_dataset(
    model: FusionModel,
    seeds: range,
    sample_fn: Callable = simulated_sample,
    progress: bool = True,
    workers: int = 0,
) -> dict[str, torch.Tensor]:
    """Prepared inputs for every seed, stacked: images as uint8, the rest as float32, plus `target`.
    With `workers`, that many threads load and prepare frames (image decoding and resizing release
    the GIL); the order is the seeds' either way."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    def prepared(seed: int) -> dict[str, torch.Tensor]:
        frame, occupancy = sample_fn(seed)
        inputs = model.prepare([frame])
        if "images" in inputs:
            inputs["images"] = (inputs["images"] * 255.0).round().to(torch.uint8)
        inputs["target"] = torch.from_numpy(np.asarray(occupancy, dtype=np.float32))[None, None]
        return inputs

    chunks: dict[str, list[torch.Tensor]] = {}
    with ThreadPoolExecutor(max(1, workers)) as pool:
        results = pool.map(prepared, seeds) if workers > 0 else map(prepared, seeds)
        for inputs in tqdm(
            results,
            total=len(seeds),
            desc="preparing frames",
            unit="frame",
            disable=not progress,
            file=sys.stderr,
        ):
            for key, value in inputs.items():
                chunks.setdefault(key, []).append(value)
    return {key: torch.cat(values).contiguous() for key, values in chunks.items()}


def cached_dataset(
    model: FusionModel,
    seeds: range,
    cache_dir: Path = CACHE_DIR,
    sample_fn: Callable = simulated_sample,
    data_key: str | None = None,
    workers: int = 0,
) -> dict[str, torch.Tensor]:
    """build_dataset, cached as safetensors keyed by the model's input settings, the seeds and the
    data's key (default: the simulator's version)."""
    config = model.config.to_dict()
    key_material = json.dumps(
        {
            "grid": config["grid"],
            "image_size": config["image_size"],
            "cameras": config["camera_names"],
            "params": config["params"],
            "modalities": config["modalities"],
            "seeds": [seeds.start, seeds.stop],
            # the data's key; named "sim" since synthetic data was all there was (caches stay valid)
            "sim": data_key or _sim_version(),
        },
        sort_keys=True,
    )
    key = hashlib.sha256(key_material.encode()).hexdigest()[:16]
    path = cache_dir / f"dataset-{key}.safetensors"
    if path.exists():
        return load_file(str(path))
    data = build_dataset(model, seeds, sample_fn, workers=workers)
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
    device = next(model.parameters()).device
    intersection = union = 0.0
    n = data["target"].shape[0]
    for start in range(0, n, batch_size):
        index = torch.arange(start, min(n, start + batch_size))
        inputs, target = _on(device, *batch_inputs(data, index))
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


def _on(
    device: torch.device, inputs: dict[str, torch.Tensor], target: torch.Tensor
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    return {k: v.to(device) for k, v in inputs.items()}, target.to(device)


def check_set_metrics(
    model: FusionModel,
    frames: int = CHECK_FRAMES,
    sample_fn: Callable = simulated_sample,
    start: int = VAL_SEED_BASE,
) -> dict:
    """IoU on the first `frames` validation scenes (samples `start`...), with all sensors and with
    each one zeroed."""
    data = build_dataset(model, range(start, start + frames), sample_fn, progress=False)
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
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
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
    torch.manual_seed(config.seed)
    model = build_model(config.model).train()
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
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    step, best_iou, history = 0, -1.0, []
    if checkpoint.exists():
        step, best_iou, history = load_checkpoint(checkpoint, model, optimizer)
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
        inputs["present"] = modality_dropout(inputs["present"], config.modality_dropout, generator)
        if "images" in inputs:
            inputs["images"] = camera_fault_augmentation(inputs["images"], config.camera_faults, generator)
        inputs, target = _on(device, inputs, target)  # augmented on the host: the generator is there
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
