"""Measures synthetic-world generation speed: a 20 s drive at 10 Hz with every sensor at the
default camera resolution (the real-time question), plus per-sensor costs and training-frame
rates at smaller settings. Records numbers; asserts nothing.

    .venv/bin/python bench/bench_sim.py [--duration 20] [--seed 0]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

from ros2_lmd.sim import SimConfig, Simulator, World, random_frame, simulate_drive


def bench_drive(config: SimConfig, duration: float, rate: float, seed: int) -> float:
    t0 = time.perf_counter()
    n = sum(1 for _ in simulate_drive(seed, duration_s=duration, rate_hz=rate, config=config))
    wall = time.perf_counter() - t0
    fps = n / wall
    print(
        f"  {n} frames in {wall:.2f} s: {fps:.1f} frames/s, {duration / wall:.2f}x real time "
        f"({1000 * wall / n:.1f} ms/frame)"
    )
    return fps


def bench_sensors(config: SimConfig, seed: int, frames: int = 20) -> None:
    world = World.generate(seed, config.world, duration_s=frames / 10)
    sim = Simulator(world, config)
    for spec in sim.sensors:
        sim.render(spec, 0.0, 0)  # warm caches
    totals: dict[str, float] = {}
    for i in range(frames):
        for spec in sim.sensors:
            t0 = time.perf_counter()
            sim.render(spec, i / 10, i)
            totals[spec.modality] = totals.get(spec.modality, 0.0) + time.perf_counter() - t0
    for modality, total in totals.items():
        print(f"  {modality:7s} {1000 * total / frames:6.1f} ms/frame (all its sensors)")


def bench_random_frames(config: SimConfig, label: str, n: int = 30) -> None:
    t0 = time.perf_counter()
    for seed in range(n):
        random_frame(seed, config)
    wall = time.perf_counter() - t0
    print(f"  random_frame {label:32s} {n / wall:6.1f} frames/s ({1000 * wall / n:.1f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    default = SimConfig()
    print(
        f"drive {args.duration:g} s @ {args.rate:g} Hz, all sensors, cameras "
        f"{default.camera_width}x{default.camera_height}, LiDAR 32x{default.lidar_azimuth_steps}:"
    )
    bench_drive(default, args.duration, args.rate, args.seed)
    small = replace(default, camera_width=224, camera_height=128)
    print("same drive, cameras 224x128:")
    bench_drive(small, args.duration, args.rate, args.seed)
    print("per-modality render cost (default resolution):")
    bench_sensors(default, args.seed)
    print("training frames (independent randomised scenes, scene generation included):")
    bench_random_frames(default, "all sensors 448x256")
    bench_random_frames(small, "all sensors 224x128")
    bench_random_frames(replace(default, modalities=("radar", "lidar")), "radar + lidar only")


if __name__ == "__main__":
    main()
