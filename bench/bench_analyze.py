"""Throughput of `ros2-lmd analyze` on CPU with the compact camera+radar+lidar model: a simulated
drive (full sensor set) analysed end to end (bag reading, decoding, sync, model + LMD, all outputs
written), frames per second at several batch sizes and worker-thread counts, with the
decomposition compiled (the default) and eager, and camera JPEGs decoded reduced (the default) and
at full size, measured side by side in one run; with per-stage medians per frame (decode of one
camera image in the reading thread; prepare = resize and batching, encode, decompose, the signal
checks' features (in the parallel step) and their judging (in stamp order), postprocess in the
pipeline). Each setting is warmed up first (model, and compiling the decomposition for that batch
size and thread count, timed and printed apart: analyze does it once per run, before reading), so
frames per second are the steady state of a long bag.

    source .venv/lmd_env.sh && python bench/bench_analyze.py [--duration 30] [--batches 1,4] [--workers 1,2]
        [--camera-size 1600x900] [--frame-rate 20 | --rig nuscenes] [--camera-decodes reduced,full]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

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
    parser.add_argument("--camera-size", default="448x256", help="WIDTHxHEIGHT of the simulated cameras")
    parser.add_argument("--frame-rate", type=float, default=10.0, help="every sensor's rate (Hz)")
    parser.add_argument(
        "--rig",
        choices=("uniform", "nuscenes"),
        default="uniform",
        help="nuscenes: `simulate --rig nuscenes`",
    )
    parser.add_argument("--camera-decodes", default="reduced", help="camera_decode settings to compare")
    parser.add_argument(
        "--ahead-of-time",
        default="",
        help="$ROS2_LMD_AHEAD_OF_TIME values to compare, each with a freshly loaded model (e.g. 1,0,1,0); "
        "empty: as the environment says",
    )
    args = parser.parse_args()
    width, height = (int(v) for v in args.camera_size.lower().split("x"))

    import torch

    from ros2_lmd.lmd.compiled import AHEAD_OF_TIME_ENV
    from ros2_lmd.models.io import load_model
    from ros2_lmd.monitor.params import MonitorParams
    from ros2_lmd.monitor.pipeline import pipeline_for
    from ros2_lmd.monitor.resources import cpu_cores, inference_plan
    from ros2_lmd.replay.analyze import analyze
    from ros2_lmd.replay.simulate import simulate_to_bag
    from ros2_lmd.sim import NUSCENES_RATES_HZ

    model = load_model(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        bag = Path(tmp) / "drive"
        simulate_to_bag(
            bag,
            duration_s=args.duration,
            seed=5,
            progress=False,
            rate_hz=args.frame_rate,
            camera_size=(width, height),
            rig=args.rig,
        )
        key_hz = args.frame_rate if args.rig == "uniform" else NUSCENES_RATES_HZ["lidar"]
        timing = f"{key_hz:g} Hz" if args.rig == "uniform" else "nuScenes rig: LiDAR 20 Hz"
        print(
            f"{cpu_cores()} CPU cores; {args.duration:g} s drive ({timing}, cameras {width}x{height}), "
            f"model {args.model}"
        )
        settings = [
            (aot, decode, decomposition, int(workers), int(batch))
            for aot in args.ahead_of_time.split(",")
            for decode in args.camera_decodes.split(",")
            for decomposition in args.decompositions.split(",")
            for workers in args.workers.split(",")
            for batch in args.batches.split(",")
        ]
        loaded_for = None
        for aot, decode, decomposition, workers, batch in settings:
            if aot and aot != loaded_for:  # read when the model's compiled decomposition is made
                os.environ[AHEAD_OF_TIME_ENV] = aot
                model, loaded_for = load_model(args.model), aot
            params = MonitorParams(model=args.model, decomposition=decomposition, camera_decode=decode)
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
                keep_reports=True,
                outputs="summary",
            )
            elapsed = time.perf_counter() - t0
            stages = {
                name: float(np.median([r.timings_ms.get(name, 0.0) for r in result.reports]))
                for name in STAGES
            }
            mode = f"ahead-of-time {aot}, " if aot else ""
            print(
                f"{mode}decode {decode}, {decomposition}, workers {workers} x {threads} threads, "
                f"batch {batch} "
                f"(warm-up {warm_s:.1f} s): {result.processed} frames in {elapsed:.1f} s = "
                f"{result.processed / elapsed:.1f} frames/s "
                f"({result.processed / elapsed / key_hz:.2f}x real time)\n"
                f"    per frame, median ms: decode one camera {camera_decode_ms(bag, params, model):.1f}, "
                + ", ".join(f"{name} {ms:.1f}" for name, ms in stages.items()),
                flush=True,
            )


STAGES = ("prepare", "encode", "decompose", "sensor_features", "sensor_checks", "postprocess")


def camera_decode_ms(bag: Path, params: object, model: object) -> float:
    """Median time to convert one camera message of `bag` as the monitor's Ingest does."""
    from rosbags.highlevel import AnyReader

    from ros2_lmd.monitor.ingest import InputSensor, camera_decode_size, convert_reading

    at_least = camera_decode_size(params, model)  # type: ignore[arg-type]
    sensor = InputSensor("cam_front", "camera", "/cam_front/image_rect_compressed")
    times = []
    with AnyReader([bag]) as reader:
        connections = [c for c in reader.connections if c.topic == sensor.topic]
        for i, (connection, _, raw) in enumerate(reader.messages(connections=connections)):
            if i >= 20:
                break
            msg = reader.deserialize(raw, connection.msgtype)
            t0 = time.perf_counter()
            convert_reading(sensor, msg, None, camera_at_least=at_least)
            times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


if __name__ == "__main__":
    main()
