"""The training and validation data: both datasets give the same pairs, (SensorFrame, ground-truth
vehicle occupancy), through one interface, `FrameSet` (an indexed sample function and a key naming
the data): simulated scenes by seed, or nuScenes keyframe samples of the official train and val
splits by index (datasets/nuscenes_frames.py). The dataset holds the model inputs after `prepare`
(images kept as uint8) and the occupancy, cached as safetensors keyed by the model's input
settings, the indices and the data's key, so the three variants share one simulation run."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ros2_lmd.geometry.grid import BEVGrid
from ros2_lmd.models.base import FusionModel
from ros2_lmd.training.config import DATASETS, TrainConfig

TRAIN_SEED_BASE = 0
VAL_SEED_BASE = 1_000_000  # validation scenes never overlap training scenes
CACHE_DIR = Path(".cache") / "ros2_lmd"
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


def on_device(
    device: torch.device, inputs: dict[str, torch.Tensor], target: torch.Tensor
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """A batch (inputs, target) moved to `device`."""
    return {k: v.to(device) for k, v in inputs.items()}, target.to(device)
