"""End-to-end benchmark of the monitor with the full nuScenes-like sensor set (6 cameras, 5 radars,
1 LiDAR) and the compact camera+radar+lidar model, measured side by side in one run:

1. pipeline alone: `Pipeline.process` on pre-built SensorFrames, back to back (the ceiling);
2. live node: a simulated drive played at real time (10 Hz) through ROS 2 to the in-process node
   with its default keep-latest queue, counting processed and superseded frames.

For both: frames per second, latency p50/p95 and the share of time per stage.

    source .venv/lmd_env.sh && python bench/bench_node.py [--duration 10] [--model compact_crl] [--device cpu]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def stage_table(reports) -> str:
    stages = list(reports[0].timings_ms)
    totals = {s: np.array([r.timings_ms[s] for r in reports]) for s in stages}
    whole = sum(t.sum() for t in totals.values())
    return ", ".join(f"{s} {np.median(t):.1f} ms ({t.sum() / whole:.0%})" for s, t in totals.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--model", default="compact_crl")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    import torch

    from ros2_lmd.demo import run_live
    from ros2_lmd.models.io import load_model
    from ros2_lmd.monitor.pipeline import Pipeline
    from ros2_lmd.replay.simulate import simulate_to_bag
    from ros2_lmd.sim import simulate_drive

    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {args.device}, model {args.model}")
    frames = [f.to_sensor_frame() for f in simulate_drive(3, duration_s=args.duration)]
    pipeline = Pipeline(load_model(args.model), device=args.device)
    for frame in frames[:3]:
        pipeline.process(frame)  # warm-up: lifting tables, allocator, f'(0) caches
    t0 = time.perf_counter()
    reports = [pipeline.process(f) for f in frames]
    elapsed = time.perf_counter() - t0
    latency = np.array([r.latency_ms for r in reports])
    print(f"pipeline alone: {len(reports) / elapsed:.1f} frames/s; latency p50 {np.percentile(latency, 50):.0f} ms, "
          f"p95 {np.percentile(latency, 95):.0f} ms; {stage_table(reports)}")

    with tempfile.TemporaryDirectory() as tmp:
        bag = Path(tmp) / "drive.mcap"
        simulate_to_bag(bag, duration_s=args.duration, seed=3, progress=False)
        t0 = time.perf_counter()
        live = run_live(bag, args.model, rate=1.0, print_alerts=False)
        wall = time.perf_counter() - t0
    latency = np.array([r.latency_ms for r in live.reports])
    print(f"live node at 10 Hz input: {len(live.reports)} of {live.key_frames} frames processed "
          f"({len(live.reports) / args.duration:.1f} frames/s of drive time), {len(live.drops)} superseded/dropped; "
          f"pipeline latency p50 {np.percentile(latency, 50):.0f} ms, p95 {np.percentile(latency, 95):.0f} ms; "
          f"{stage_table(live.reports)}; wall {wall:.0f} s")


if __name__ == "__main__":
    main()
