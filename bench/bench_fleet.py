"""Throughput of `ros2-lmd fleet` on this machine: bags per minute with 1 and 2 Ray workers, side by
side with a plain loop of `analyze` over the same bags in one process, and the Ray overhead per bag,
measured in one run: `--repeat` rounds with the settings interleaved, the best of each reported
(load from other work on the machine hits all settings alike). Simulated drives (full sensor set,
cameras 448x256, 10 Hz); the shipped compact_crl model.

Every figure counts from the start (model load, worker start and the decomposition's compile
included: a fleet worker compiles it once, then reuses it for every bag), as a user waits for it.
The Ray overhead per bag is (1-worker fleet - plain loop) / bags: the same work in the same number
of threads, so the difference is Ray starting, its worker processes importing torch and loading the
model, and handing bags out. Nothing is asserted; on a shared machine the numbers are noisy.

    source .venv/lmd_env.sh && python bench/bench_fleet.py [--bags 4] [--duration 4] [--workers 1,2]
        [--repeat 2] [--decomposition compiled|eager]
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
    parser.add_argument("--bags", type=int, default=4)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per drive")
    parser.add_argument("--workers", default="1,2", help="fleet worker counts to measure")
    parser.add_argument("--model", default="compact_crl")
    parser.add_argument("--decomposition", default="compiled", choices=("compiled", "eager"))
    parser.add_argument("--repeat", type=int, default=2, help="rounds; the best of each setting is reported")
    args = parser.parse_args()

    from ros2_lmd.models.io import load_model
    from ros2_lmd.monitor.params import MonitorParams
    from ros2_lmd.monitor.resources import cpu_cores
    from ros2_lmd.replay.analyze import analyze
    from ros2_lmd.replay.fleet import ANALYSED, run_fleet
    from ros2_lmd.replay.simulate import simulate_to_bag

    params = MonitorParams(model=args.model, decomposition=args.decomposition)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        faults = [None, "camera:blackout@1-2.5", "lidar:dropout@1-2.5", "radar:dropout@1-2.5"]
        for k in range(args.bags):
            simulate_to_bag(
                root / "bags" / f"drive{k}",
                duration_s=args.duration,
                seed=k,
                faults=faults[k % len(faults)],
                progress=False,
            )
        print(
            f"{cpu_cores()} CPU cores; {args.bags} drives of {args.duration:g} s (10 Hz, cameras 448x256), "
            f"model {args.model}, decomposition {args.decomposition}"
        )
        worker_counts = [int(w) for w in args.workers.split(",")]
        runs: dict[str, list[float]] = {}  # setting -> wall seconds of each round
        details: dict[str, str] = {}
        for round_ in range(args.repeat):  # the settings interleaved: load from other work hits all alike
            start = time.perf_counter()
            model = load_model(args.model)
            for k in range(args.bags):
                out = root / f"loop{round_}" / f"drive{k}"
                analyze(root / "bags" / f"drive{k}", model, out, params, progress=False)
            runs.setdefault(LOOP, []).append(time.perf_counter() - start)
            for workers in worker_counts:
                start = time.perf_counter()
                result = run_fleet(
                    [root / "bags"],
                    root / f"fleet{workers}-{round_}",
                    args.model,
                    params,
                    workers=workers,
                    quality_frames=0,
                    progress=False,
                )
                name = f"fleet, {workers} Ray worker{'s' if workers > 1 else ''}"
                runs.setdefault(name, []).append(time.perf_counter() - start)
                assert all(o.status == ANALYSED for o in result.outcomes), result.outcomes
                busy = sum(o.seconds for o in result.outcomes)
                timings = result.timings
                details[name] = (
                    f"last round: ray.init {timings['ray_start']:.1f} s, then {timings['analysis']:.1f} s "
                    f"to the last bag (analyse inside the workers {busy:.1f} s in all, model load "
                    f"{max(w['model_load_s'] for w in result.workers):.2f} s)"
                )

        print(f"\n{'':32s} {'best wall [s]':>13s} {'bags/min':>9s}   every round [s]")
        for name, seconds in runs.items():
            best = min(seconds)
            rounds = ", ".join(f"{s:.1f}" for s in seconds)
            print(
                f"{name:32s} {best:13.1f} {60 * args.bags / best:9.2f}   {rounds}   {details.get(name, '')}"
            )
        one = "fleet, 1 Ray worker"
        if one in runs:
            overhead = (min(runs[one]) - min(runs[LOOP])) / args.bags
            print(f"\nRay overhead per bag, (best 1-worker fleet - best plain loop) / bags: {overhead:.2f} s")


LOOP = "plain loop of analyze"


if __name__ == "__main__":
    main()
