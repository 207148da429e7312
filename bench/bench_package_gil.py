"""Whether a run of the ahead-of-time decomposition lets other Python threads go on: compact_crl's
compiled decomposition (batch 4, one torch thread) as its package, run by torch's package loader
and through the library's C interface (lmd/package_abi.py, what the monitor uses), side by side in
one process: time per call alone, and with a Python thread counting beside it (the rate that thread
reaches: the interpreter lock's share it got), and the two results compared.

    source .venv/lmd_env.sh && python bench/bench_package_gil.py [--batch 4] [--seconds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="compact_crl")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()

    import torch

    from ros2_lmd.lmd.artifacts import PACKAGE_FILE, PackageRunner, artifact_dir, artifact_key
    from ros2_lmd.lmd.compiled import CompiledDecomposition, use_persistent_compile_cache
    from ros2_lmd.models.io import load_model
    from ros2_lmd.monitor.resources import keep_freed_memory
    from ros2_lmd.sensors.frame import SensorFrame

    keep_freed_memory()  # as the monitor runs
    torch.set_num_threads(1)
    model = load_model(args.model).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.inference_mode():  # the feature shapes of `batch` frames, as Pipeline.warm_up takes them
        blank = model.encode(model.prepare([SensorFrame(stamp=0.0, frame_index=-1)] * args.batch, "cpu"))
    features = {m: torch.randn(x.shape, generator=generator) for m, x in blank.items()}
    compiled = CompiledDecomposition(model.fuse, ["bev_logits"], build_on_demand=False, ahead_of_time=True)
    graph = compiled.prepare(features)  # builds the package, or loads it from the cache
    key = artifact_key(model.fuse, ["bev_logits"], compiled.rules, features)
    if key is None or graph.call is None:
        raise SystemExit(f"no package for {args.model}: {graph.reason}")
    package = artifact_dir(use_persistent_compile_cache()) / key.digest / PACKAGE_FILE
    c_interface = PackageRunner(package, 2)
    loader = PackageRunner(package, 2, c_interface=False)  # torch's loader, as the fallback runs it
    inputs = list(features.values())
    print(
        f"{args.model} decomposition, batch {args.batch}, 1 torch thread; package {package.parent.name}; "
        f"C interface opened: {c_interface.releases_gil}"
    )

    def alone(runner: PackageRunner) -> float:
        times = []
        for _ in range(8):
            start = time.perf_counter()
            runner(*inputs)
            times.append(time.perf_counter() - start)
        return statistics.median(times) * 1e3

    def beside(runner: PackageRunner) -> tuple[float, float]:
        def calls() -> tuple[float, int]:
            start, made = time.perf_counter(), 0
            while time.perf_counter() - start < args.seconds:
                runner(*inputs)
                made += 1
            return time.perf_counter() - start, made

        (elapsed, made), rate = counted_beside(calls)
        return elapsed / made * 1e3, rate

    with torch.inference_mode():
        same = all(torch.equal(a, b) for a, b in zip(c_interface(*inputs), loader(*inputs)))
        print(f"results equal bit for bit: {same}")
        _, idle = counted_beside(lambda: time.sleep(args.seconds))
        print(f"counting thread alone: {idle:.2f} M iterations/s")
        rates = {}
        for label, runner in (("torch's loader", loader), ("C interface", c_interface)):
            call_ms = alone(runner)
            beside_ms, rate = beside(runner)
            rates[label] = rate
            print(
                f"{label}: {call_ms:.0f} ms a call alone, {beside_ms:.0f} ms with the counting thread, "
                f"which made {rate:.2f} M iterations/s ({rate / idle:.2f} of its rate alone)",
                flush=True,
            )
        ratio = rates["C interface"] / rates["torch's loader"]
        print(f"counting thread's rate, C interface / torch's loader: {ratio:.1f} x")


def counted_beside(work: Callable[[], T]) -> tuple[T, float]:
    """`work()` run while another Python thread counts loop iterations: (what work returned, that
    thread's rate in M iterations/s over the time work took). A call that keeps the interpreter lock
    leaves the counting thread almost nothing."""
    stop, counted = threading.Event(), []

    def count() -> None:
        n = 0
        while not stop.is_set():
            n += 1
        counted.append(n)

    thread = threading.Thread(target=count)
    thread.start()
    start = time.perf_counter()
    result = work()
    elapsed = time.perf_counter() - start
    stop.set()
    thread.join()
    return result, counted[0] / elapsed / 1e6


if __name__ == "__main__":
    main()
