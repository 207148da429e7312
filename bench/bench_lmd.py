"""Benchmark of the LMD engine on a Simple-BEV-like decoder (200 x 200 BEV, 128 channels by default):
the model alone, the model on M + 1 samples stacked in the batch (the floor a decomposition that
carries M + 1 planes can reach), decompose with a derived bias (eager, and compiled as the monitor
runs it: lmd/compiled.py, built before timing), decompose with an explicit bias, and a
paper-faithful two-pass implementation, each measured in this one run and printed as a ratio to the
model alone, with peak memory. Each method runs in its own subprocess so that CPU peak RSS is per
method. With --model, the network is a shipped model's fuse on the features of a simulated frame.

    .venv/bin/python bench/bench_lmd.py [--size 200] [--channels 128] [--modalities 2] [--device cpu]
    .venv/bin/python bench/bench_lmd.py --model compact_crl --threads 1

On CPU, glibc by default returns large freed blocks to the kernel, so every new activation map is
paid again in page faults. The monitor sets the allocator to keep them
(ros2_lmd.monitor.resources.keep_freed_memory, called by the node and `analyze`); this bench runs every
method both ways, side by side, with the minor page faults per call.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

METHODS = ("fn", "fn_stacked", "decompose_derived", "decompose_compiled", "decompose_explicit", "two_pass")


def _setup(args):
    """(network, features, the output decomposed): the decoder in miniature, or with --model the
    fuse part of a shipped model on the features of a simulated frame."""
    import torch

    from ros2_lmd.lmd.reference_nets import SimpleBEVDecoder, randomise_norm_statistics

    if args.model:
        from ros2_lmd.models.io import load_model
        from ros2_lmd.sim.drive import random_frame

        model = load_model(args.model, args.device).eval()
        with torch.inference_mode():
            inputs = model.prepare([random_frame(seed=0).to_sensor_frame()], args.device)
            features = model.encode(inputs)
        return model.fuse, features, "bev_logits"
    torch.manual_seed(0)
    names = ["camera", "radar", "lidar", "extra"][: args.modalities]
    channels = {m: args.channels if m == "camera" else 16 for m in names}
    model = randomise_norm_statistics(SimpleBEVDecoder(channels, latent=args.channels)).eval().to(args.device)
    features = {m: torch.randn(1, c, args.size, args.size, device=args.device) for m, c in channels.items()}
    return model, features, "segmentation"


def _run_one(args) -> dict:
    import torch

    from ros2_lmd.monitor.resources import keep_freed_memory

    if args.keep_freed and not keep_freed_memory():
        raise SystemExit("keep_freed_memory refused (no glibc?)")
    from two_pass_lmd import two_pass_decompose

    from ros2_lmd.lmd import CompiledDecomposition, RuleVariants, decompose

    torch.set_num_threads(args.threads or torch.get_num_threads())
    model, features, output = _setup(args)
    compiled = CompiledDecomposition(model, [output])
    if args.method == "decompose_compiled":
        graph = compiled.prepare(features)  # built before the measurement, as the monitor does
        if graph.call is None:
            raise SystemExit(f"compiling failed: {graph.reason}")
    # the same network on M + 1 samples stacked in the batch: the work a derived-bias decomposition
    # must do at least, measured (on CPU, time grows faster than the batch for large maps)
    stacked = {m: x.repeat(len(features) + 1, *([1] * (x.dim() - 1))) for m, x in features.items()}
    calls = {
        "fn": lambda: model(features),
        "fn_stacked": lambda: model(stacked),
        "decompose_derived": lambda: decompose(model, features),
        "decompose_compiled": lambda: compiled(features),
        "decompose_explicit": lambda: decompose(model, features, rules=RuleVariants(bias="explicit")),
        "two_pass": lambda: two_pass_decompose(model, features),
    }
    call = calls[args.method]
    cuda = args.device.startswith("cuda")

    def sync():
        if cuda:
            torch.cuda.synchronize()

    with torch.inference_mode():
        # Peak memory of the first call over what the model and inputs already hold. On CPU large
        # tensors are mmap-ed and returned on free, so peak RSS growth is the live-tensor peak.
        if cuda:
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
        baseline_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        call()
        sync()
        peak = (
            torch.cuda.max_memory_allocated() - before
            if cuda
            else (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline_rss) * 1024
        )
        times = []
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            call()
            sync()
            times.append(time.perf_counter() - t0)
        faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / args.repeats
    return {
        "method": args.method,
        "page_faults": faults,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "peak_bytes": peak,
        "rss_peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=200)
    parser.add_argument("--channels", type=int, default=128)
    parser.add_argument("--modalities", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", help="a shipped model (e.g. compact_crl): its fuse on a simulated frame")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--method", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--keep-freed", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    if args.method:
        print(json.dumps(_run_one(args)))
        return

    results: dict[str, dict[str, dict]] = {"glibc default": {}, "keep_freed_memory": {}}
    for allocator, runs in results.items():
        for method in METHODS:
            if args.model and method == "two_pass":
                continue  # the paper-faithful two-pass reference covers the decoder only
            cmd = [
                sys.executable,
                __file__,
                "--method",
                method,
                "--size",
                str(args.size),
                "--channels",
                str(args.channels),
                "--modalities",
                str(args.modalities),
                "--device",
                args.device,
                "--repeats",
                str(args.repeats),
                "--threads",
                str(args.threads),
                *(["--model", args.model] if args.model else []),
                *(["--keep-freed"] if allocator == "keep_freed_memory" else []),
            ]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=os.environ.copy())
            runs[method] = json.loads(out.stdout.strip().splitlines()[-1])
    m = args.modalities if not args.model else len(_model_modalities(args.model))
    threads = args.threads or os.environ.get("OMP_NUM_THREADS", "default")
    network = (
        f"{args.model} fuse on a simulated frame"
        if args.model
        else f"Simple-BEV-like decoder, {args.size}x{args.size} BEV, {args.channels} channels"
    )
    print(
        f"LMD benchmark: {network}, M={m} modalities, device={args.device}, torch threads={threads}, "
        f"median of {args.repeats}"
    )
    for allocator, runs in results.items():
        base = runs["fn"]["median_s"]
        print(f"\nallocator: {allocator}")
        print(
            f"{'method':<22}{'median s':>10}{'x fn':>8}{'page faults':>13}{'peak extra MiB':>16}"
            f"{'process peak RSS MiB':>22}"
        )
        for method, r in runs.items():
            print(
                f"{method:<22}{r['median_s']:>10.3f}{r['median_s'] / base:>8.2f}{r['page_faults']:>13.0f}"
                f"{r['peak_bytes'] / 2**20:>16.0f}{r['rss_peak_bytes'] / 2**20:>22.0f}"
            )
        derived = runs["decompose_derived"]["median_s"]
        stacked = runs["fn_stacked"]["median_s"]
        for method in ("decompose_derived", "decompose_compiled"):
            took = runs[method]["median_s"]
            print(
                f"{method} / fn: {took / base:.2f}; / ((M+1) x fn): {took / ((m + 1) * base):.3f} "
                f"(target <= 1); / fn on M+1 stacked samples: {took / stacked:.3f}"
            )
        if "two_pass" in runs:
            two_pass = runs["two_pass"]["median_s"]
            print(
                f"decompose (derived) / two-pass: {derived / two_pass:.3f} "
                f"({(1 - derived / two_pass) * 100:.0f}% faster)"
            )
    default, kept = (results[a]["decompose_derived"]["median_s"] for a in results)
    print(f"\ndecompose, keep_freed_memory / glibc default: {kept / default:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results}, indent=2))


def _model_modalities(name: str) -> tuple[str, ...]:
    from ros2_lmd.models.io import load_model

    return tuple(load_model(name).modalities)


if __name__ == "__main__":
    main()
