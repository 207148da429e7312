"""The settings of one training run (`ros2-lmd train`): the model, the data it learns from, the
optimiser, the augmentations and where the weights and the resumable checkpoint go."""

from __future__ import annotations

from dataclasses import dataclass

DATASETS = ("synthetic", "nuscenes")
BALANCES = ("none", "modality-dropout", "unimodal-aux")  # training/balance.py says what each does
DEFAULT_BALANCE = "modality-dropout"  # what the shipped models were trained with


@dataclass
class TrainConfig:
    model: str = "compact_crl"
    train_frames: int = 1000
    val_frames: int = 100
    steps: int = 600
    batch_size: int = 6
    lr: float = 2e-3
    weight_decay: float = 1e-4
    # how the weaker sensors are kept learning (training/balance.py): "none", "modality-dropout"
    # (the shipped models') or "unimodal-aux"
    balance: str = DEFAULT_BALANCE
    modality_dropout: float = 0.5  # balance modality-dropout: share of samples that see a proper subset
    aux_weight: float = 1.0  # balance unimodal-aux: weight of the auxiliary loss beside the fused loss
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
