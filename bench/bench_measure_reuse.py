"""What measuring a reused camera image once saves (issue #25): on the nuScenes rig (cameras 12 Hz,
LiDAR 20 Hz, radars 13 Hz, each with its own phase) the time sync hands most camera images to two
LiDAR frames, and `SensorChecks.measure` measured them twice. The same frames (a simulated drive
through the Ingest and time sync, as `analyze` builds them) go through `measure` with the cache
(the monitor's way) and with it cleared before every frame (every image measured, as before),
interleaved frame by frame so machine load falls on both alike; one thread. Prints the median
and p95 per frame of each and their ratio.

    .venv/bin/python bench/bench_measure_reuse.py [--seconds 10] [--camera-size 448x256] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ros2_lmd.cli.args import image_size
from ros2_lmd.messages.types import rosbags_types
from ros2_lmd.models.io import load_model
from ros2_lmd.monitor.ingest import ingest_for_model
from ros2_lmd.monitor.params import MonitorParams
from ros2_lmd.monitor.sensor_checks import SensorChecks
from ros2_lmd.replay.simulate import drive_messages, in_log_order
from ros2_lmd.sensors.frame import SensorFrame
from ros2_lmd.sim import NUSCENES_RATES_HZ, SimConfig, simulate_drive


def nuscenes_rig_frames(seconds: float, size: tuple[int, int]) -> list[SensorFrame]:
    """The SensorFrames `analyze` would build from a simulated nuScenes-rig drive."""
    model = load_model("compact_crl")
    ingest, _ = ingest_for_model(MonitorParams(model="compact_crl"), model, adapt_key_sensor=True)
    config = SimConfig(camera_width=size[0], camera_height=size[1])
    drive = simulate_drive(0, seconds, 20.0, None, config, rates=NUSCENES_RATES_HZ)
    frames: list[SensorFrame] = []
    for topic, _, log_time, msg in in_log_order(drive_messages(drive, rosbags_types())):
        ingest.on_message(topic, msg, log_time * 1e-9)
        frames += [f for f in ingest.pop_ready() if isinstance(f, SensorFrame)]
    return frames + [f for f in ingest.flush() if isinstance(f, SensorFrame)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--camera-size", default="448x256", help="WIDTHxHEIGHT")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    frames = nuscenes_rig_frames(args.seconds, image_size(args.camera_size))
    reused = sum(
        1
        for previous, frame in zip(frames, frames[1:], strict=False)
        for camera in frame.cameras
        if any(camera.image is p.image for p in previous.cameras)
    )
    cameras = sum(len(f.cameras) for f in frames)
    cached, uncached = SensorChecks(), SensorChecks()
    times: dict[str, list[float]] = {"cached": [], "every image": []}
    for _ in range(args.repeats):
        for frame in frames:
            start = time.perf_counter()
            cached.measure(frame)
            times["cached"].append(time.perf_counter() - start)
            uncached.reset()  # forgets the measured images: every image measured again
            start = time.perf_counter()
            uncached.measure(frame)
            times["every image"].append(time.perf_counter() - start)
    print(
        f"nuScenes rig, {args.camera_size} cameras, {len(frames)} frames ({args.seconds:g} s), "
        f"{reused} of {cameras} camera images the same as in the frame before; {args.repeats} passes"
    )
    for name, values in times.items():
        ms = 1e3 * np.asarray(values)
        print(f"  measure, {name:11s}: median {np.median(ms):6.1f} ms, p95 {np.percentile(ms, 95):6.1f} ms")
    ratio = np.median(times["every image"]) / np.median(times["cached"])
    print(f"  every image / cached: {ratio:.2f} x (median per frame)")


if __name__ == "__main__":
    main()
