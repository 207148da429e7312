"""End-to-end benchmark of the monitor with the full nuScenes-like sensor set (6 cameras, 5 radars,
1 LiDAR) and the compact camera+radar+lidar model, measured side by side in one run:

1. pipeline alone: `Pipeline.process` on pre-built SensorFrames, back to back (the ceiling), with
   1 and with all CPU threads;
2. live node: a simulated drive played at real time (10 Hz LiDAR) by `ros2-lmd play` in its own
   process (as sensor drivers are on a vehicle: sensor-data QoS) to the monitor node in this
   process, with its default keep-latest queue, for several inference_workers x cpu_threads
   settings. Frame rate = frames processed per second of drive; end-to-end latency = key
   message received -> outputs published (the `latency_ms` of /lmd/decomposition). Each live
   setting runs in its own process, with the shipped Fast DDS profile (config/fastdds_shm.xml,
   shared memory) and with Fast DDS's defaults (ROS2_LMD_TRANSPORT=default), for the player and
   the node alike: "received" counts the LiDAR sweeps that reached the node.

Both with the decomposition compiled (the default, lmd/compiled.py; built at configure, before the
drive starts) and eager.

    source .venv/lmd_env.sh && python bench/bench_node.py [--duration 10] [--model compact_crl]
        [--rig nuscenes] [--camera-size 1600x900]

`--rig nuscenes` plays a drive with each sensor at its nuScenes rate (cameras 12 Hz, LiDAR 20 Hz,
radars 13 Hz, each with its own phase; `simulate --rig nuscenes`); the pipeline-alone figures then
use every sensor at the LiDAR's 20 Hz.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import threading
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


def pipeline_alone(model: str, frames, threads: int, decomposition: str) -> str:
    import torch

    from ros2_lmd.models.io import load_model
    from ros2_lmd.monitor.params import MonitorParams
    from ros2_lmd.monitor.pipeline import pipeline_for

    torch.set_num_threads(threads)
    pipeline = pipeline_for(load_model(model), MonitorParams(model=model, decomposition=decomposition), "cpu")
    warm_s = pipeline.warm_up(1)
    for frame in frames[:3]:
        pipeline.process(frame)  # warm-up: lifting tables, allocator, f'(0) caches
    t0 = time.perf_counter()
    reports = [pipeline.process(f) for f in frames]
    elapsed = time.perf_counter() - t0
    latency = np.array([r.latency_ms for r in reports])
    return (
        f"pipeline alone, {decomposition}, {threads} thread(s) (warm-up {warm_s:.1f} s): "
        f"{len(reports) / elapsed:.1f} frames/s; latency p50 "
        f"{np.percentile(latency, 50):.0f} ms, p95 {np.percentile(latency, 95):.0f} ms; "
        f"{stage_table(reports)}"
    )


def live_node(
    bag: Path, model: str, workers: int, threads: int, key_frames: int, duration: float, decomposition: str
) -> str:
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter

    from ros2_lmd.msg import DecompositionSummary
    from ros2_lmd.ros.node import MonitorNode

    domain = random.randint(100, 199)
    context = Context()
    rclpy.init(context=context, domain_id=domain)
    node = MonitorNode(
        context=context,
        parameter_overrides=[
            Parameter("model", value=model),
            Parameter("inference_workers", value=workers),
            Parameter("cpu_threads", value=threads),
            Parameter("decomposition", value=decomposition),
        ],
    )
    reports, latencies = [], []
    node.report_listeners.append(lambda frame, report: reports.append(report))
    probe = rclpy.create_node("bench_probe", context=context)
    probe.create_subscription(
        DecompositionSummary, "/lmd/decomposition", lambda msg: latencies.append(msg.latency_ms), 100
    )
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    executor.add_node(probe)
    try:
        if (
            node.trigger_configure() != TransitionCallbackReturn.SUCCESS
            or node.trigger_activate() != TransitionCallbackReturn.SUCCESS
        ):
            raise RuntimeError("the monitor node failed to configure/activate")
        spinner = threading.Thread(target=executor.spin, daemon=True)
        spinner.start()
        env = {**os.environ, "ROS_DOMAIN_ID": str(domain)}
        subprocess.run(
            [sys.executable, "-m", "ros2_lmd.cli", "play", str(bag), "--rate", "1", "--delay", "3"],
            env=env,
            check=True,
            capture_output=True,
        )
        time.sleep(1.5)  # the last frames
        received = node.sensor_health.messages("lidar_top")
        from ros2_lmd.sim import default_rig

        delivered = {
            m: sum(node.sensor_health.messages(spec.name) for spec in default_rig().of_modality(m))
            for m in ("camera", "radar")
        }
        processed, drops = node.frames_processed, node.drop_counts()
        node.trigger_deactivate()
    finally:
        executor.shutdown()
        node.close()
        node.destroy_node()
        probe.destroy_node()
        rclpy.try_shutdown(context=context)
    lat = np.array(latencies or [np.nan])
    label = f"{decomposition}, {workers} worker(s) x {threads} thread(s)"
    return (
        f"live node, {label}: {key_frames} sweeps published, {received} delivered, {processed} "
        f"processed ({processed / duration:.1f} frames/s), dropped {drops or 0}; camera messages "
        f"delivered {delivered['camera']}, radar {delivered['radar']}; "
        f"end-to-end latency p50 {np.percentile(lat, 50):.0f} ms, p95 {np.percentile(lat, 95):.0f} ms; "
        f"{stage_table(reports) if reports else 'no frames'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=10.0, help="sensor rate, Hz (the LiDAR sweeps at it)")
    parser.add_argument("--skip-pipeline", action="store_true", help="only the live settings")
    parser.add_argument("--rig", choices=("uniform", "nuscenes"), default="uniform")
    parser.add_argument("--camera-size", default="448x256", help="WIDTHxHEIGHT of the cameras")
    parser.add_argument("--model", default="compact_crl")
    parser.add_argument(
        "--live",
        nargs=5,
        metavar=("BAG", "WORKERS", "THREADS", "FRAMES", "DECOMPOSITION"),
        help=argparse.SUPPRESS,
    )
    args = parser.parse_args()
    if args.live:  # one live setting, in this fresh process (Fast DDS reads its profile once)
        from ros2_lmd.ros.transport import use_shipped_transport

        use_shipped_transport()
        bag, workers, threads, frames, decomposition = args.live
        print(
            live_node(
                Path(bag), args.model, int(workers), int(threads), int(frames), args.duration, decomposition
            )
        )
        return

    import torch

    from ros2_lmd.monitor.resources import cpu_cores, inference_plan
    from ros2_lmd.replay.simulate import simulate_to_bag
    from ros2_lmd.sim import NUSCENES_RATES_HZ, SimConfig, simulate_drive

    cores = cpu_cores()
    width, height = (int(v) for v in args.camera_size.lower().split("x"))
    rate = args.rate if args.rig == "uniform" else NUSCENES_RATES_HZ["lidar"]
    timing = f"at {rate:g} Hz" if args.rig == "uniform" else "on the nuScenes rig (LiDAR 20 Hz)"
    print(
        f"torch {torch.__version__}, {cores} CPU cores, model {args.model}, "
        f"{args.duration:g} s drive {timing}, cameras {width}x{height}"
    )
    config = SimConfig(camera_width=width, camera_height=height)
    frames = [
        f.to_sensor_frame() for f in simulate_drive(3, duration_s=args.duration, rate_hz=rate, config=config)
    ]
    for threads in sorted({1, cores}) if not args.skip_pipeline else ():
        for decomposition in ("compiled", "eager"):
            print(pipeline_alone(args.model, frames, threads, decomposition), flush=True)
    auto = inference_plan(True, reserved_cores=1, prefer="latency")  # the node's default
    # (transport, decomposition, workers, threads): the default set-up against one change at a time
    settings = [("shipped", "compiled", *auto), ("shipped", "eager", *auto), ("default", "compiled", *auto)]
    settings += [("shipped", "compiled", *s) for s in ((1, cores), (2, 1)) if s != auto]
    with tempfile.TemporaryDirectory() as tmp:
        bag = Path(tmp) / "drive"
        simulate_to_bag(
            bag,
            duration_s=args.duration,
            seed=3,
            rate_hz=rate,
            rig=args.rig,
            camera_size=(width, height),
            progress=False,
        )
        for transport, decomposition, workers, threads in settings:
            env = {**os.environ, "ROS2_LMD_TRANSPORT": transport}
            note = " (default)" if (transport, decomposition, workers, threads) == settings[0] else ""
            command = [sys.executable, __file__, "--duration", str(args.duration), "--model", args.model]
            command += ["--live", str(bag), str(workers), str(threads), str(len(frames)), decomposition]
            out = subprocess.run(command, env=env, capture_output=True, text=True)
            lines = [line for line in out.stdout.splitlines() if line.startswith("live node")]
            # (Fast DDS may abort at process exit after the run: the line printed counts)
            result = lines[-1] if lines else f"no result (exit {out.returncode}): {out.stderr[-300:]}"
            print(f"[transport {transport}] {result}{note}", flush=True)
        print(f"published: {published_per_modality(bag)}")


def published_per_modality(bag: Path) -> str:
    """Camera and radar messages in `bag` (what `play` publishes), to read the delivered counts by."""
    from rosbags.rosbag2 import Reader

    with Reader(bag) as reader:
        counts = {
            "camera": sum(
                c.msgcount for c in reader.connections if c.topic.endswith("image_rect_compressed")
            ),
            "radar": sum(c.msgcount for c in reader.connections if c.topic.startswith("/radar_")),
        }
    return f"camera messages {counts['camera']}, radar {counts['radar']}"


if __name__ == "__main__":
    main()
