"""The GPU path, measured in one prepared run (issue #25, part 4): compact_crl (shipped weights) and
the paper's three-modality Simple-BEV (simplebev_crml: ResNet-101 camera encoder at 448 x 800, random
weights) on a nuScenes-sized frame (six 1600 x 900 images, a 34 k-point LiDAR sweep, 600 radar
returns), batch 1: time per frame of plain inference (prepare + encode + fuse), of the fused part
alone, and of inference + decomposition with LMD eager and compiled (torch.compile), peak GPU memory
of each, and the agreement with the CPU: the same features decomposed on the CPU and on the device,
the largest difference of the output and of each component relative to the output's largest value,
and the conservation error on the device. Everything side by side in one process; CUDA timings are
synchronised. Never part of CI (the tests' GPU checks run with `LMD_TORCH=cuda make test`).

    source .venv/lmd_env.sh && python bench/bench_gpu.py [--device cuda] [--frames 30]
        [--models compact_crl,simplebev_crml]

`--device cpu` runs the same on the CPU (to try the script; slow for Simple-BEV).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--frames", type=int, default=30, help="timed frames per method (after 3 untimed)")
    parser.add_argument("--models", default="compact_crl,simplebev_crml")
    args = parser.parse_args()

    import torch
    from bench_models import nuscenes_like_frame

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(
            f"no CUDA device here (torch {torch.__version__}): use --device cpu to try the script"
        )
    card = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU, {torch.get_num_threads()} threads"
    )
    print(
        f"torch {torch.__version__}, {card}; a nuScenes-sized frame, batch 1, {args.frames} frames per method"
    )
    frame = nuscenes_like_frame()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def timed(fn: Callable[[], object]) -> tuple[float, float, float]:
        """(median ms, p95 ms, peak MiB on the device: the CPU reports none)."""
        for _ in range(3):
            fn()
        sync()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        times = []
        for _ in range(args.frames):
            start = time.perf_counter()
            fn()
            sync()
            times.append((time.perf_counter() - start) * 1e3)
        peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else float("nan")
        times.sort()
        return statistics.median(times), times[min(len(times) - 1, int(0.95 * len(times)))], peak

    for name in args.models.split(","):
        measure(name, frame, device, args, timed)
        if device.type == "cuda":
            torch.cuda.empty_cache()


def measure(name: str, frame: Any, device: Any, args: argparse.Namespace, timed: Callable) -> None:
    """One model's rows: its timings and its agreement with the CPU."""
    import torch

    from ros2_lmd.lmd import decompose
    from ros2_lmd.lmd.compiled import CompiledDecomposition
    from ros2_lmd.models import build_model
    from ros2_lmd.models.io import load_model

    try:
        model, weights = load_model(name, device), "shipped weights"
    except FileNotFoundError:  # simplebev_crml: no trained weights ship; its speed is the point
        model, weights = build_model(name).to(device).eval(), "random weights"
    with torch.inference_mode():
        inputs = model.prepare([frame], device)
        features = model.encode(inputs)
    output = next(iter(model.fuse(features)))
    compiled = CompiledDecomposition(model.fuse, [output], ahead_of_time=False)

    def inference() -> None:
        model.fuse(model.encode(model.prepare([frame], device)))

    def with_lmd(decomposition: Callable) -> Callable[[], None]:
        def run() -> None:
            decomposition(model.encode(model.prepare([frame], device)))

        return run

    rows = {
        "inference (prepare + encode + fuse)": inference,
        "fuse alone": lambda: model.fuse(features),
        "inference + LMD eager": with_lmd(lambda f: decompose(model.fuse, f)[output]),
        "inference + LMD compiled": with_lmd(lambda f: compiled(f)[output]),
    }
    print(f"\n{name} ({weights}), output {output!r}")
    base = None
    with torch.inference_mode():
        for label, fn in rows.items():
            median, p95, peak = timed(fn)
            base = base or median
            print(
                f"  {label:38s} {median:8.1f} ms median, {p95:8.1f} p95, {1e3 / median:6.1f} frames/s, "
                f"{median / base:5.2f} x inference, peak {peak:8.0f} MiB",
                flush=True,
            )
        on_device = decompose(model.fuse, features)[output]
        cpu_model = model.to("cpu") if device.type != "cpu" else model
        on_cpu = decompose(cpu_model.fuse, {m: x.cpu() for m, x in features.items()})[output]
        scale = float(on_cpu.total.abs().max())
        total = float((on_device.total.cpu() - on_cpu.total).abs().max()) / scale
        parts = {
            m: float((on_device.components[m].cpu() - on_cpu.components[m]).abs().max()) / scale
            for m in on_cpu.components
        }
        print(
            f"  {args.device} against CPU, relative to max |output| {scale:.3g}: output {total:.1e}, "
            + ", ".join(f"{m} {v:.1e}" for m, v in parts.items())
            + f"; conservation error on {args.device} {on_device.conservation_error:.1e}"
        )


if __name__ == "__main__":
    main()
