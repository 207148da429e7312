"""Throughput of `ros2-lmd analyze` on CPU with the compact camera+radar+lidar model: a simulated
drive (full sensor set) analysed end to end (bag reading, decoding, sync, model + LMD, all outputs
written), frames per second at several batch sizes and worker-thread counts, measured side by side
in one run.

    source .venv/lmd_env.sh && python bench/bench_analyze.py [--duration 10] [--batches 1,4] [--workers 1,2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--model", default="compact_crl")
    parser.add_argument("--batches", default="1,4")
    parser.add_argument("--workers", default="1,2")
    args = parser.parse_args()

    from ros2_lmd.models.io import load_model
    from ros2_lmd.monitor.runner import cpu_cores
    from ros2_lmd.replay.analyze import analyze
    from ros2_lmd.replay.simulate import simulate_to_bag

    model = load_model(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        bag = Path(tmp) / "drive.mcap"
        simulate_to_bag(bag, duration_s=args.duration, seed=5, progress=False)
        print(
            f"{cpu_cores()} CPU cores; {args.duration:g} s drive (10 Hz, cameras 448x256), model {args.model}"
        )
        for workers in (int(w) for w in args.workers.split(",")):
            for batch in (int(b) for b in args.batches.split(",")):
                t0 = time.perf_counter()
                result = analyze(
                    bag,
                    model,
                    Path(tmp) / f"out{batch}-{workers}",
                    batch=batch,
                    workers=workers,
                    progress=False,
                )
                elapsed = time.perf_counter() - t0
                print(
                    f"workers {workers} x {max(1, cpu_cores() // workers)} threads, batch {batch}: "
                    f"{result.processed} frames in {elapsed:.1f} s = {result.processed / elapsed:.1f} "
                    f"frames/s ({result.processed / elapsed / 10:.2f}x real time)",
                    flush=True,
                )


if __name__ == "__main__":
    main()
