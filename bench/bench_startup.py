"""Start-up of `ros2-lmd analyze` (interpreter, imports, model load, warm-up, compiling the
decomposition) with inductor's compile cache empty (a fresh machine) and warm (every later start:
since the cache lives in $XDG_CACHE_HOME/ros2_lmd/torchinductor it survives a reboot), side by side
in one run, on a 0.5 s drive so that the frames themselves cost little. Each figure is the whole
command's wall time; the decomposition's own compile time is what the run logs.

    source .venv/lmd_env.sh && python bench/bench_startup.py [--runs 3] [--model compact_crl]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def timed_analyze(bag: Path, out: Path, model: str, cache: Path) -> float:
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(cache)}
    command = [sys.executable, "-m", "ros2_lmd.cli", "analyze", str(bag), "--out", str(out)]
    command += ["--model", model, "--outputs", "summary"]
    t0 = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--model", default="compact_crl")
    args = parser.parse_args()

    from ros2_lmd.replay.simulate import simulate_to_bag

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bag = simulate_to_bag(root / "drive", duration_s=0.5, seed=1, progress=False).bag
        warm_cache = root / "warm-cache"
        timed_analyze(bag, root / "fill", args.model, warm_cache)  # fills the warm cache
        cold, warm = [], []
        for run in range(args.runs):  # alternating, so that load on the machine hits both alike
            cold.append(timed_analyze(bag, root / f"cold{run}", args.model, root / f"cold-cache{run}"))
            warm.append(timed_analyze(bag, root / f"warm{run}", args.model, warm_cache))
        print(f"analyze of a 0.5 s drive, model {args.model}, {os.cpu_count()} CPUs, {args.runs} runs each")
        print(f"  compile cache empty: {spread(cold)} (min / median / max)")
        print(f"  compile cache warm:  {spread(warm)}")
        print(f"  warm / empty (medians): {median(warm) / median(cold):.2f}")


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def spread(values: list[float]) -> str:
    return f"{min(values):.1f} / {median(values):.1f} / {max(values):.1f} s"


if __name__ == "__main__":
    main()
