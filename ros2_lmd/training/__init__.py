"""Training of the compact fusion models (`ros2-lmd train`), above models/, sim/ and datasets/:
`config` (one run's settings), `data` (synthetic or nuScenes frame sets, the cached prepared
dataset, batches), `augmentation` (modality dropout, darkened cameras), `balance` (the remedies of
`--balance`: none, modality dropout, unimodal auxiliary heads), `validation` (vehicle IoU, the
shipped models' check set) and `loop` (the loop and its resumable checkpoints)."""

from ros2_lmd.training.augmentation import camera_fault_augmentation, modality_dropout
from ros2_lmd.training.balance import UnimodalAuxHeads, modality_contributions
from ros2_lmd.training.config import BALANCES, DATASETS, TrainConfig
from ros2_lmd.training.data import (
    CACHE_DIR,
    SIM_CAMERA_SIZE,
    TRAIN_SEED_BASE,
    VAL_SEED_BASE,
    FrameSet,
    batch_inputs,
    build_dataset,
    cached_dataset,
    frame_sets,
    on_device,
    simulated_sample,
)
from ros2_lmd.training.loop import load_checkpoint, save_checkpoint, train
from ros2_lmd.training.validation import CHECK_FRAMES, check_set_metrics, evaluate_iou

__all__ = [
    "TrainConfig",
    "DATASETS",
    "TRAIN_SEED_BASE",
    "VAL_SEED_BASE",
    "CACHE_DIR",
    "SIM_CAMERA_SIZE",
    "FrameSet",
    "simulated_sample",
    "frame_sets",
    "build_dataset",
    "cached_dataset",
    "batch_inputs",
    "on_device",
    "modality_dropout",
    "camera_fault_augmentation",
    "BALANCES",
    "UnimodalAuxHeads",
    "modality_contributions",
    "evaluate_iou",
    "check_set_metrics",
    "CHECK_FRAMES",
    "save_checkpoint",
    "load_checkpoint",
    "train",
]
