"""Latency and size of the fusion models on CPU: `prepare` (nuScenes-sized frame: six 900x1600
images, a 34k-point LiDAR sweep, ~600 radar points), `encode`, `fuse` and, when the engine is
available, LMD `decompose(model.fuse, ...)`. Measures and prints; asserts nothing.

    python bench/bench_models.py                  # compact_cr / _cl / _crl, 2 threads
    python bench/bench_models.py --simplebev      # also simplebev_cr (ResNet-101, slow on CPU)
    python bench/bench_models.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from ros2_lmd.models import build_model
from ros2_lmd.models.base import NUSCENES_CAMERAS
from ros2_lmd.sensors.frame import CameraImage, SensorFrame

R_BASE_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def nuscenes_like_frame(seed: int = 0) -> SensorFrame:
    rng = np.random.default_rng(seed)
    H, W = 900, 1600
    cameras = []
    for name, yaw_deg in zip(NUSCENES_CAMERAS, (55, 0, -55, 110, 180, -110)):
        yaw = np.deg2rad(yaw_deg)
        T = np.eye(4)
        T[:3, :3] = (
            np.array([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]])
            @ R_BASE_OPTICAL
        )
        T[:3, 3] = (1.0, 0.0, 1.5)
        K = np.array([[1266.0, 0, 816.0], [0, 1266.0, 491.0], [0, 0, 1]])
        cameras.append(CameraImage(name, rng.integers(0, 255, (H, W, 3), dtype=np.uint8), K, T))
    n_lidar, n_radar = 34_000, 600
    lidar = np.concatenate(
        [
            rng.normal(0, 20, (n_lidar, 2)),
            rng.uniform(-2, 3, (n_lidar, 1)),
            rng.uniform(0, 255, (n_lidar, 1)),
        ],
        axis=1,
    )
    radar = np.concatenate(
        [
            rng.uniform(-60, 60, (n_radar, 2)),
            rng.uniform(-1, 2, (n_radar, 1)),
            rng.normal(0, 5, (n_radar, 3)),
        ],
        axis=1,
    )
    return SensorFrame(stamp=0.0, cameras=cameras, radar=radar, lidar=lidar)


def timed(fn: Callable[[], object], repeats: int, warmup: int = 2) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return {"median_ms": statistics.median(samples), "min_ms": min(samples)}


def bench(name: str, repeats: int, with_lmd: bool) -> dict[str, object]:
    torch.manual_seed(0)
    model = build_model(name)
    frame = nuscenes_like_frame()
    fuse_modules = [m for n, m in model.named_children() if n not in ("camera_backbone", "encoder")]
    result: dict[str, object] = {
        "model": name,
        "params_total": sum(p.numel() for p in model.parameters()),
        "params_fuse": sum(p.numel() for m in fuse_modules for p in m.parameters()),
        "feature_shapes": {m: list(s) for m, s in model.feature_shapes().items()},
    }
    with torch.no_grad():
        inputs = model.prepare(frame)
        features = model.encode(inputs)  # first call builds the cached sampling matrices
        result["prepare"] = timed(lambda: model.prepare(frame), max(3, repeats // 4))
        result["encode"] = timed(lambda: model.encode(inputs), repeats)
        result["fuse"] = timed(lambda: model.fuse(features), repeats)
        if with_lmd:
            try:
                from ros2_lmd.lmd import decompose
            except ImportError:
                result["lmd"] = "ros2_lmd.lmd.decompose not available"
            else:
                decomposition = decompose(model.fuse, features)
                result["lmd_conservation_error"] = float(decomposition["bev_logits"].conservation_error)
                result["lmd"] = timed(lambda: decompose(model.fuse, features), max(3, repeats // 2))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--simplebev", action="store_true", help="also time simplebev_cr (slow)")
    parser.add_argument("--no-lmd", action="store_true")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = ["compact_cr", "compact_cl", "compact_crl"] + (["simplebev_cr"] if args.simplebev else [])
    results = []
    print(f"torch {torch.__version__}, {args.threads} threads, {platform.processor() or platform.machine()}")
    for name in names:
        repeats = 3 if name.startswith("simplebev") else args.repeats
        r = bench(name, repeats, with_lmd=not args.no_lmd and not name.startswith("simplebev"))
        results.append(r)

        def ms(stage: str, r: dict = r) -> str:
            value = r.get(stage)
            return f"{value['median_ms']:.1f} ({value['min_ms']:.1f})" if isinstance(value, dict) else "-"

        print(
            f"{name:14s} params {r['params_total']:>10,d} (fuse {r['params_fuse']:>9,d})  "
            f"prepare {ms('prepare')}  encode {ms('encode')}  fuse {ms('fuse')}  lmd {ms('lmd')}  "
            "ms median (min)"
            + (f"  conservation {r['lmd_conservation_error']:.1e}" if "lmd_conservation_error" in r else "")
        )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(
                {"threads": args.threads, "torch": torch.__version__, "results": results}, handle, indent=2
            )


if __name__ == "__main__":
    main()
