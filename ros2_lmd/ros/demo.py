"""`ros2-lmd demo` (`make demo`): the whole monitor on one simulated drive. It simulates a short drive
with injected sensor faults into a rosbag2, plays it through the real ROS 2 middleware (a player
node publishing, the monitor node subscribing, both in this process on a private domain), prints the
monitor's alerts as they happen, and writes the analysis report of what the live node saw."""

from __future__ import annotations

import os
import random
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_FAULTS = (
    "cam_front:glare@3-4.5,camera:blackout@5.5-7.5,radar_front:ghosts:60@8.5-10,lidar:dropout@11-12.5"
)
SENSOR_STATE_KINDS = (
    "SENSOR_DEGRADED",
    "SENSOR_FAILED",
    "SENSOR_MISSING",
    "SENSOR_STALE",
    "SENSOR_RECOVERED",
)
HANG_GUARD_S = 120.0  # after the last message was published


@dataclass
class DemoResult:
    out_dir: Path
    reports: list[Any] = field(default_factory=list)
    drops: list[tuple[float, str]] = field(default_factory=list)
    key_frames: int = 0
    incidents: dict[int, Any] = field(default_factory=dict)  # id -> the incident's latest state
    sensor_modality: dict[str, str] = field(default_factory=dict)
    # the node's /diagnostics records as they stood at the last sensor message of the drive
    diagnostics: list[Any] = field(default_factory=list)


def _colour(severity: int, text: str) -> str:
    if not sys.stdout.isatty():
        return text
    return {0: "\033[36m", 1: "\033[33m", 2: "\033[31m"}.get(severity, "") + text + "\033[0m"


def run_live(
    bag: Path,
    model: str,
    rate: float,
    queue_depth: int = 1,
    domain_id: int | None = None,
    print_alerts: bool = True,
    t0: float | None = None,
    sync_max_delay_s: float | None = None,
    inference_workers: int = 0,
    cpu_threads: int = 0,
) -> DemoResult:
    """Play `bag` to an in-process monitor node over the middleware; collect what it concluded.
    `inference_workers` and `cpu_threads` are the node's parameters (0: automatic)."""
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from ros2_lmd.messages.types import project_typestore
    from ros2_lmd.replay.bag import ReadStats, read_messages
    from ros2_lmd.ros.node import QUIET_FLUSH_S, SYNC_TICK_S, MonitorNode
    from ros2_lmd.ros.player import BagPlayer
    from ros2_lmd.ros.transport import use_shipped_transport

    stats = ReadStats()
    key_frames = sum(1 for _ in read_messages(bag, ["/lidar_top"], project_typestore(), stats))
    result = DemoResult(bag.parent, key_frames=key_frames)
    lock = threading.Lock()

    def on_report(frame, report) -> None:
        with lock:
            result.reports.append(report)
            result.sensor_modality.update(frame.sensor_modality)
            for change in report.incidents:
                result.incidents[change.incident.id] = change.incident
        if print_alerts:
            # incidents as they open and close; alerts are in the report (per-object ones are
            # digested: one line per kind, modality and window)
            start = t0 if t0 is not None else 0.0
            for change in report.incidents:
                incident = change.incident
                t = report.stamp - start
                text = (
                    f"  [t={t:5.1f} s] INCIDENT #{incident.id} {change.change:<9} {incident.summary(start)}"
                )
                severity = incident.peak_severity if change.change != "CLOSED" else 0
                print(_colour(severity, text), flush=True)

    def on_drop(stamp: float, reason: str) -> None:
        with lock:
            result.drops.append((stamp, reason))

    use_shipped_transport()  # before rclpy.init: Fast DDS reads it once
    context = Context()
    rclpy.init(context=context, domain_id=domain_id if domain_id is not None else random.randint(100, 199))
    node = player_node = player = None
    # One thread: the node's callbacks share one callback group (they could not run in parallel),
    # and the multi-threaded executor's per-callback overhead cost a third of the frame rate here.
    executor = SingleThreadedExecutor(context=context)
    try:
        # Replayed in one process, every message must arrive: reliable sensor QoS on both ends (with
        # best effort, messages are lost whenever the node lags more than the 5-message history).
        overrides = [
            Parameter("model", value=model),
            Parameter("queue_depth", value=queue_depth),
            Parameter("sensor_qos", value="reliable"),
        ]
        overrides += [
            Parameter("inference_workers", value=inference_workers),
            Parameter("cpu_threads", value=cpu_threads),
        ]
        if sync_max_delay_s is not None:
            overrides.append(Parameter("sync_max_delay_s", value=float(sync_max_delay_s)))
        node = MonitorNode(context=context, parameter_overrides=overrides)
        node.report_listeners.append(on_report)
        node.drop_listeners.append(on_drop)
        executor.add_node(node)
        from rclpy.lifecycle import TransitionCallbackReturn

        if (
            node.trigger_configure() != TransitionCallbackReturn.SUCCESS
            or node.trigger_activate() != TransitionCallbackReturn.SUCCESS
        ):
            raise RuntimeError("the monitor node failed to configure/activate (see its log above)")
        player_node = rclpy.create_node("lmd_demo_player", context=context)
        player = BagPlayer(bag, player_node, rate=rate, reliable_sensors=True)
        spinner = threading.Thread(target=executor.spin, daemon=True)
        spinner.start()
        # Discovery of 19 endpoint pairs can take seconds on a loaded machine; messages published to
        # a topic before its subscription is matched are lost (volatile QoS), so wait for all.
        player.wait_for_subscribers(60.0)
        player.play(should_stop=lambda: not context.ok())
        # Done when the node holds no frame (time sync, queue, inference) after the time sync's
        # quiet flush had its chance; a frame count fixed in advance would not know how many
        # frames the fallback key adds while the LiDAR is silent.
        finished = time.monotonic()
        settle = QUIET_FLUSH_S + 2 * SYNC_TICK_S
        while node.frames_pending() or time.monotonic() - finished < settle:
            if time.monotonic() - finished > HANG_GUARD_S:
                print(
                    f"ros2-lmd demo: {node.frames_pending()} frames still pending after {HANG_GUARD_S:g} s",
                    file=sys.stderr,
                )
                break
            time.sleep(0.05)
        result.diagnostics = node.diagnostic_records(now=node.last_message_at)
        node.trigger_deactivate()
    finally:
        if player is not None:
            player.close()
        executor.shutdown()
        for n in (player_node, node):
            if n is not None:
                if n is node:
                    n.close()
                n.destroy_node()
        rclpy.try_shutdown(context=context)
    return result


def write_live_report(
    result: DemoResult, out_dir: Path, faults_csv: Path | None, t0: float, model_name: str, modalities
) -> None:
    from ros2_lmd.replay.report import snapshot_frames, write_html
    from ros2_lmd.replay.tables import (
        AlertRow,
        FrameRow,
        write_alerts_csv,
        write_frames_csv,
        write_incidents_csv,
    )

    rows = [FrameRow.processed(r) for r in result.reports] + [
        FrameRow.skipped(s, why) for s, why in result.drops
    ]
    rows.sort(key=lambda r: r.stamp)
    alerts = [
        AlertRow(r.stamp, a.kind, a.severity, a.modality, a.message, a.sensor)
        for r in sorted(result.reports, key=lambda r: r.stamp)
        for a in r.alerts
    ]
    write_frames_csv(out_dir / "frames.csv", rows, t0)
    write_alerts_csv(out_dir / "alerts.csv", alerts, t0)
    incidents = [result.incidents[i] for i in sorted(result.incidents)]
    write_incidents_csv(out_dir / "incidents.csv", incidents, t0)
    faults = []
    if faults_csv is not None and faults_csv.exists():
        from ros2_lmd.sim import read_faults_csv

        faults = read_faults_csv(faults_csv)
    write_html(
        out_dir / "report.html",
        "ros2_lmd demo: live monitor on a simulated drive",
        rows,
        alerts,
        faults,
        snapshot_frames(sorted(result.reports, key=lambda r: r.stamp)),
        t0,
        modalities,
        model_name,
        incidents,
        result.sensor_modality,
    )


DEFAULT_RATE = 0.5  # on 2 CPU cores the node ingests six 448x256 JPEG streams + LiDAR at ~5 Hz


def main(
    out: str = "demo_out",
    duration: float = 14.0,
    faults: str = DEFAULT_FAULTS,
    seed: int = 7,
    model: str = "compact_crl",
    rate: float = DEFAULT_RATE,
) -> int:
    from ros2_lmd.models.io import load_model
    from ros2_lmd.replay.simulate import simulate_to_bag

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    bag = out_dir / "drive"  # rosbag2 names: drive/drive_0.mcap
    if bag.exists():
        import shutil

        shutil.rmtree(bag)
    started = time.perf_counter()
    print(
        f"== 1/3 simulating a {duration:g} s drive (seed {seed}) with faults {faults!r} -> {bag}", flush=True
    )
    # cameras at the model's input size: the node decodes six JPEG streams in Python callbacks
    sim = simulate_to_bag(bag, duration_s=duration, seed=seed, faults=faults or None, camera_size=(224, 128))
    t0 = 1.7e9  # the simulator's start stamp: alert times below count from the start of the drive
    modalities = load_model(model).modalities
    print(
        f"== 2/3 playing it through ROS 2 ({os.environ.get('RMW_IMPLEMENTATION', 'default middleware')}) to "
        f"the monitor node (model {model}, {'+'.join(modalities)}); incidents as they open and close:",
        flush=True,
    )
    # every frame processed (a deep queue; the time sync waits for late messages): the demo shows
    # what the monitor concludes about the whole drive; bench/bench_node.py measures real time
    live = run_live(bag, model, rate, queue_depth=100, t0=t0, sync_max_delay_s=5.0)
    processed = len(live.reports)
    print(
        f"== 3/3 report: {processed} frames processed, {len(live.drops)} dropped, from "
        f"{live.key_frames} LiDAR sweeps"
        + (f" ({', '.join(sorted({why.split(':')[0] for _, why in live.drops}))})" if live.drops else ""),
        flush=True,
    )
    write_live_report(live, out_dir, sim.faults_csv, t0, model, modalities)
    counts = Counter(
        f"{alert.kind} ({alert.modality})"
        for report in live.reports
        for alert in report.alerts
        if alert.kind not in SENSOR_STATE_KINDS
    )
    print(f"   sensor incidents: {len(live.incidents)}")
    for number in sorted(live.incidents):
        print(f"     #{number} {live.incidents[number].summary(t0)}")
    if counts:
        print(
            "   per-object alert digests (model habits): "
            + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
        )
    if live.reports:
        import numpy as np

        latency = np.array([r.latency_ms for r in live.reports])
        shares = {m: np.mean([r.shares.get(m, 0.0) for r in live.reports]) for m in modalities}
        print(
            "   mean share: "
            + ", ".join(f"{m} {v:.2f}" for m, v in shares.items())
            + f"; pipeline latency p50 {np.percentile(latency, 50):.0f} ms, "
            + f"p95 {np.percentile(latency, 95):.0f} ms"
        )
    print(
        f"   wrote {out_dir}/report.html, frames.csv, alerts.csv, incidents.csv (and the drive: {bag}, its "
        f"fault timeline in {sim.faults_csv})"
    )
    print(f"   done in {time.perf_counter() - started:.0f} s")
    return 0
