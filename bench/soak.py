"""Soak test of the monitor: does it stay correct and bounded over time and under overload?

1. Offline: a long fault-free simulated drive (default 30 minutes at 10 Hz, the full sensor set)
   streamed message by message through the same Ingest, OrderedRunner and Pipeline as `analyze`
   (no bag on disk: 30 minutes of camera frames would be gigabytes). Prints RSS at the start, its
   peak and at the end, frames processed / dropped (with reasons), messages lost, stamps rejected,
   and every incident (all false: nothing was injected) and sensor-state alert.
2. Live (--live-seconds, default 60): a short drive played in a loop at --rate (default 3x) by
   `ros2-lmd play` in its own process into the monitor node in this process, with the default
   sensor-data QoS: the node falls behind, so the middleware loses messages and the keep-latest
   queue supersedes frames; prints what was processed, dropped (why), estimated lost before the
   node, time jumps (every loop of the bag is one), incidents, and RSS.

    source .venv/lmd_env.sh && python bench/soak.py [--minutes 30] [--live-seconds 60] [--rate 3]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rss_mb() -> float:
    """Resident set size of this process now (MB), from /proc."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def offline(minutes: float, model_name: str, seed: int, camera_size: tuple[int, int]) -> None:
    from ros2_lmd.messages.types import rosbags_types
    from ros2_lmd.models.io import load_model
    from ros2_lmd.monitor.ingest import ingest_for_model
    from ros2_lmd.monitor.params import MonitorParams
    from ros2_lmd.monitor.pipeline import pipeline_for
    from ros2_lmd.replay.analyze import monitor_messages
    from ros2_lmd.replay.simulate import drive_messages
    from ros2_lmd.sim import SimConfig, simulate_drive

    start_rss = rss_mb()
    params = MonitorParams()
    model = load_model(model_name)
    ingest, _ = ingest_for_model(params, model, adapt_key_sensor=True)
    pipeline = pipeline_for(model, params, "cpu")
    config = SimConfig(camera_width=camera_size[0], camera_height=camera_size[1])
    drive = simulate_drive(seed, duration_s=minutes * 60, config=config)
    messages = ((t, log, m) for t, _type, log, m in drive_messages(drive, rosbags_types()))
    counts: Counter[str] = Counter()
    problems: Counter[str] = Counter()
    state_alerts: list[str] = []
    checks: list[float] = []
    lost = [0]
    t0 = time.perf_counter()
    samples = []

    def on_frame(item, sensor_messages, report) -> None:
        lost[0] = sum(n for _, n in sensor_messages.values())
        if report is None:
            counts[f"dropped: {item.reason.split(':')[0]}"] += 1
            return
        counts["processed"] += 1
        if report.decomposition_error == report.decomposition_error:
            checks.append(report.decomposition_error)
        state_alerts.extend(
            f"{a.kind} {a.modality}: {a.message}" for a in report.alerts if a.kind.startswith("SENSOR_")
        )
        if counts["processed"] % 1000 == 0:
            samples.append((counts["processed"], rss_mb()))
            print(
                f"  {counts['processed']} frames, RSS {rss_mb():.0f} MB, {time.perf_counter() - t0:.0f} s",
                flush=True,
            )

    def on_problem(topic, reason) -> None:
        problems[f"{topic}: {reason.split(' (')[0][:80]}"] += 1

    monitor_messages(messages, ingest, pipeline, on_frame, on_problem)
    elapsed = time.perf_counter() - t0
    incidents = pipeline.incidents.incidents if pipeline.incidents else []
    print(
        f"offline soak: {minutes:g} min fault-free drive (seed {seed}, cameras "
        f"{camera_size[0]}x{camera_size[1]}), model {model_name}, {elapsed:.0f} s wall"
    )
    print(
        f"  RSS start {start_rss:.0f} MB, peak {peak_rss_mb():.0f} MB, end {rss_mb():.0f} MB; "
        f"at every 1000 frames: {[round(m) for _, m in samples]}"
    )
    print(
        f"  frames: {dict(counts)}; messages lost before the monitor: {lost[0]}; "
        f"stamps rejected: {ingest.stamps.rejected}; time jumps: {ingest.stamps.time_jumps}"
    )
    print(f"  message problems: {dict(problems) or 'none'}")
    print(
        f"  decomposition self-check: {len(checks)} frames, max error {max(checks, default=float('nan')):.2e}"
    )
    print(
        f"  false incidents: {len(incidents)} ({len(incidents) / minutes * 10:.2f} per 10 min); "
        f"sensor-state alerts: {len(state_alerts)}"
    )
    for incident in incidents:
        print(f"    INCIDENT {incident.summary()}")
    for line in state_alerts[:10]:
        print(f"    {line}")


def live(seconds: float, rate: float, model_name: str) -> None:
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from ros2_lmd.replay.simulate import simulate_to_bag
    from ros2_lmd.ros.node import MonitorNode

    domain = random.randint(100, 199)
    with tempfile.TemporaryDirectory() as tmp:
        bag = Path(tmp) / "drive"
        simulate_to_bag(bag, duration_s=20.0, seed=5, progress=False)
        context = Context()
        rclpy.init(context=context, domain_id=domain)
        node = MonitorNode(context=context, parameter_overrides=[Parameter("model", value=model_name)])
        incidents, drops = [], Counter()
        node.report_listeners.append(
            lambda frame, report: incidents.extend(c for c in report.incidents if c.change == "OPENED")
        )
        node.drop_listeners.append(lambda stamp, reason: drops.update([reason.split(":")[0]]))
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        node.trigger_configure()
        node.trigger_activate()
        stop = threading.Event()
        spinner = threading.Thread(target=lambda: [executor.spin_once(0.05) for _ in iter(stop.is_set, True)])
        spinner.start()
        start_rss = rss_mb()
        env = {**os.environ, "ROS_DOMAIN_ID": str(domain)}
        player = subprocess.Popen(
            [sys.executable, "-m", "ros2_lmd.cli", "play", str(bag), "--rate", str(rate), "--loop"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        peak = start_rss
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            time.sleep(1.0)
            peak = max(peak, rss_mb())
        player.terminate()
        player.wait(timeout=30)
        time.sleep(1.0)
        records = {r.hardware_id: r for r in node.diagnostic_records()}
        monitor = records[node.get_name()].values
        stop.set()
        spinner.join()
        health = node.sensor_health
        received = health.messages("lidar_top")
        print(
            f"live soak: {seconds:g} s of a 20 s drive looped at {rate:g}x ({10 * rate:g} sweeps/s offered), "
            f"model {model_name}"
        )
        print(f"  RSS start {start_rss:.0f} MB, peak {peak:.0f} MB, end {rss_mb():.0f} MB")
        print(
            f"  frames processed {node.frames_processed}, dropped {dict(drops)}; LiDAR sweeps received "
            f"{received}; messages lost before the node (estimated): {monitor['messages_lost']}; "
            f"stamps rejected {monitor['stamps_rejected']}; time jumps {monitor['time_jumps']}"
        )
        print(f"  incidents opened: {len(incidents)}")
        for change in incidents[:10]:
            print(f"    INCIDENT {change.incident.summary()}")
        node.close()
        node.destroy_node()
        executor.shutdown()
        rclpy.shutdown(context=context)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=30.0, help="offline drive length (0: skip)")
    parser.add_argument("--live-seconds", type=float, default=60.0, help="live overload (0: skip)")
    parser.add_argument("--rate", type=float, default=3.0, help="live playback rate")
    parser.add_argument("--model", default="compact_crl")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--camera-size", default="448x256", help="WxH of the simulated cameras")
    args = parser.parse_args()
    width, height = (int(v) for v in args.camera_size.split("x"))
    if args.minutes > 0:
        offline(args.minutes, args.model, args.seed, (width, height))
    if args.live_seconds > 0:
        live(args.live_seconds, args.rate, args.model)


if __name__ == "__main__":
    main()
