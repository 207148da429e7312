"""Throughput of `ros2-lmd analyze` on CPU with the compact camera+radar+lidar model: a simulated
drive (full sensor set) analysed end to end (bag reading, decoding, sync, model + LMD, all outputs
written), frames per second at several batch sizes and worker-thread counts, with the
decomposition compiled (the default) and eager, measured side by side in one run. Each setting is
warmed up first (model, and compiling the decomposition for that batch size and thread count,
timed and printed apart: analyze does it once per run, before reading), so frames per second are
the steady state of a long bag.

    source .venv/lmd_env.sh && python bench/bench_analyze.py [--duration 30] [--batches 1,4] [--workers 1,2]
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
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--model", default="compact_crl")
    parser.add_argument("--batches", default="1,4")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--decompositions", default="compiled,eager")
    args = parser.parse_args()

    import torch

    from ros2_lmd.models.io import load_model
    from ros2_lmd.monitor.params import MonitorParams
    from ros2_lmd.monitor.pipeline import pipeline_for
    from ros2_lmd.monitor.resources import cpu_cores, inference_plan
    from ros2_lmd.replay.analyze import analyze
    from ros2_lmd.replay.simulate import simulate_to_bag

    model = load_model(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        bag = Path(tmp) / "drive"
        simulate_to_bag(bag, duration_s=args.duration, seed=5, progress=False)
        print(
            f"{cpu_cores()} CPU cores; {args.duration:g} s drive (10 Hz, cameras 448x256), model {args.model}"
        )
        settings = [
            (decomposition, int(workers), int(batch))
            for decomposition in args.decompositions.split(",")
            for workers in args.workers.split(",")
            for batch in args.batches.split(",")
        ]
        for decomposition, workers, batch in settings:
            params = MonitorParams(model=args.model, decomposition=decomposition)
            _, threads = inference_plan(True, workers, 0, prefer="throughput")  # as analyze plans it
            before = torch.get_num_threads()
            torch.set_num_threads(threads)
            warm_s = pipeline_for(model, params).warm_up(batch)  # pipelines over `model` share it
            torch.set_num_threads(before)
            t0 = time.perf_counter()
            result = analyze(
                bag,
                model,
                Path(tmp) / f"out-{decomposition}-{batch}-{workers}",
                params=params,
                batch=batch,
                workers=workers,
                progress=False,
            )
            elapsed = time.perf_counter() - t0
            print(
                f"{decomposition}, workers {workers} x {threads} threads, batch {batch} (warm-up "
                f"{warm_s:.1f} s): {result.processed} frames in {elapsed:.1f} s = "
                f"{result.processed / elapsed:.1f} frames/s "
                f"({result.processed / elapsed / 10:.2f}x real time)",
                flush=True,
            )


if __name__ == "__main__":
    main()
