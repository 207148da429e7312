"""`ros2-lmd analyze`: a recorded drive through the same ingest, time sync and Pipeline as the live
node, as fast as the machine allows (frames batched through the model), writing output.mcap with
every topic the node publishes, frames.csv (every key-sensor message: processed or skipped, and
why), alerts.csv and report.html."""

from __future__ import annotations

import sys
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ros2_lmd import outputs
from ros2_lmd.ingest import Ingest
from ros2_lmd.monitor.pipeline import ComputedFrame, Pipeline, alert_config_from, cpu_cores
from ros2_lmd.monitor.report import FrameReport
from ros2_lmd.params import MonitorParams, load_params_file
from ros2_lmd.replay.bag import BagError, BagWriter, ReadStats, read_messages
from ros2_lmd.replay.report import AlertRow, FrameRow, write_alerts_csv, write_frames_csv, write_html
from ros2_lmd.sensors.sync import DroppedFrame

MAX_SNAPSHOTS = 8


@dataclass
class AnalyzeResult:
    out_dir: Path
    frames: list[FrameRow]
    alerts: list[AlertRow]
    problems: list[tuple[str, str]]
    stats: ReadStats
    reports: list[FrameReport] = field(default_factory=list, repr=False)

    @property
    def processed(self) -> int:
        return sum(r.status == "processed" for r in self.frames)


def analyze(bag: str | Path, model: Any, out_dir: str | Path, params: MonitorParams | None = None,
            faults_csv: str | Path | None = None, batch: int = 4, device: str = "cpu", progress: bool = True,
            model_name: str = "", on_alert: Callable[[AlertRow], None] | None = None,
            workers: int = 0) -> AnalyzeResult:
    """Analyse `bag` with `model` (a FusionModel). Raises BagError for an unreadable bag; a bag that
    breaks off part-way still gets every output for the frames read, and then BagError.

    Batches of `batch` frames go through the model and LMD in `workers` threads at once (0: as
    many as the CPU has cores, one torch thread each; 1 on a GPU) while this thread reads and
    decodes the bag; their results are concluded (alerts, outputs) in stamp order, so the output
    does not depend on `batch` or `workers`."""
    from tqdm import tqdm

    from ros2_lmd.msgtypes import rosbags_types

    bag, out_dir = Path(bag), Path(out_dir)
    params = params or MonitorParams()
    modalities = model.modalities
    if params.key_sensor in ("camera", "radar", "lidar") and params.key_sensor not in modalities:
        # e.g. a camera+radar model: the sweep of the last point sensor the model uses triggers frames
        from dataclasses import replace

        params = replace(params, key_sensor=modalities[-1])
    ingest = Ingest(params, modalities)
    pipeline = Pipeline(model, alert_config_from(params), device=device)
    types = rosbags_types()
    out_dir.mkdir(parents=True, exist_ok=True)
    output_bag = out_dir / "output.mcap"
    if output_bag.exists():
        import shutil

        shutil.rmtree(output_bag)
    stats = ReadStats()
    rows: list[FrameRow] = []
    alerts: list[AlertRow] = []
    reports: list[FrameReport] = []
    pending = []
    dropped = 0
    compute = ComputePool(pipeline, workers)

    def conclude(computed_frames, writer: BagWriter) -> None:
        for computed in computed_frames:
            report = pipeline.conclude(computed)
            rows.append(FrameRow.processed(report))
            for alert in report.alerts:
                row = AlertRow(report.stamp, alert.kind, alert.severity, alert.modality, alert.message)
                alerts.append(row)
                if on_alert:
                    on_alert(row)
            processed = sum(r.status == "processed" for r in rows)
            prefix = params.output_prefix.rstrip("/")
            for key, msgtype, message in outputs.frame_messages(
                    report, types, params.base_frame, processed, dropped, bev_image_scale=params.bev_image_scale,
                    component_logit_range=params.component_logit_range,
                    detection_threshold=params.detection_threshold):
                writer.write(f"{prefix}/{key}", msgtype, int(round(report.stamp * 1e9)), message)
            reports.append(_light(report))

    def run_pending(writer: BagWriter, wait: bool = False) -> None:
        """Submit the pending batch; conclude what is done (everything with `wait`)."""
        if pending:
            compute.submit(list(pending))
            pending.clear()
        for computed_frames in compute.done(wait):
            conclude(computed_frames, writer)

    def take(results, writer: BagWriter) -> None:
        nonlocal dropped
        for result in results:
            if isinstance(result, DroppedFrame):
                run_pending(writer, wait=True)
                rows.append(FrameRow.skipped(result.stamp, result.reason))
                dropped += 1
            else:
                pending.append(result)
                if len(pending) >= batch:
                    run_pending(writer)

    key = ingest.assembler.key_sensor if hasattr(ingest.assembler, "key_sensor") else None
    with compute, BagWriter(output_bag, types.typestore) as writer, \
            tqdm(desc="analysing", unit="msg", disable=not progress, file=sys.stderr) as bar:
        for topic, _msgtype, _log_time, message in read_messages(bag, ingest.topics(), types.typestore, stats):
            problems_before = len(ingest.problems)
            ingest.on_message(topic, message)
            if len(ingest.problems) > problems_before and _is_key_topic(ingest, topic, key):
                # a key-sensor message that could not be used is a frame that cannot be built
                stamp = _header_stamp(message)
                run_pending(writer, wait=True)
                rows.append(FrameRow.skipped(stamp, f"{topic}: {ingest.problems[-1][1]}"))
                dropped += 1
            take(ingest.pop_ready(), writer)
            bar.update(1)
        take(ingest.flush(), writer)
        run_pending(writer, wait=True)
    for topic, count in stats.undecodable.items():
        ingest.problems.append((topic, f"{count} message(s) could not be decoded"))
    rows.sort(key=lambda r: r.stamp)
    write_frames_csv(out_dir / "frames.csv", rows)
    write_alerts_csv(out_dir / "alerts.csv", alerts)
    faults = []
    if faults_csv:
        from ros2_lmd.sim import read_faults_csv

        faults = read_faults_csv(faults_csv)
    t0 = _drive_start(bag, rows)
    snapshots = _snapshots(reports)
    write_html(out_dir / "report.html", f"ros2_lmd analysis of {bag.name}", rows, alerts, faults, snapshots, t0,
               modalities, model_name or getattr(model.config, "architecture", "model"))
    result = AnalyzeResult(out_dir, rows, alerts, ingest.problems, stats, reports)
    if stats.error:
        raise BagError(f"{bag}: {stats.error}; the {result.processed} frames read before it were analysed "
                       f"and written to {out_dir}")
    return result


def _is_key_topic(ingest: Ingest, topic: str, key: str | None) -> bool:
    sensor = ingest.by_topic.get(topic)
    return sensor is not None and (sensor.name == key or (key is None and sensor.modality == ingest.params.key_sensor))


def _header_stamp(message: Any) -> float:
    try:
        return float(message.header.stamp.sec) + float(message.header.stamp.nanosec) * 1e-9
    except AttributeError:
        return float("nan")


class ComputePool:
    """`Pipeline.compute` on batches of frames in worker threads; results come back in submission
    order. At most `workers` batches are in flight (`submit` waits for the oldest). On a CPU each
    worker gets cores // workers torch threads for the duration (several single-threaded workers
    beat one multi-threaded model call on small models: less waiting at every operator)."""

    def __init__(self, pipeline: Pipeline, workers: int = 0) -> None:
        import torch

        cores = cpu_cores()
        on_cpu = pipeline.device.type == "cpu"
        self.workers = workers if workers > 0 else (cores if on_cpu else 1)
        self.pipeline = pipeline
        self._torch = torch
        self._threads_before = torch.get_num_threads()
        if on_cpu:
            torch.set_num_threads(max(1, cores // self.workers))
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="lmd_compute")
        self._in_flight: deque[Future] = deque()
        self._finished: list[list[ComputedFrame]] = []

    def submit(self, frames: list) -> None:
        while len(self._in_flight) >= self.workers:
            self._finished.append(self._in_flight.popleft().result())
        self._in_flight.append(self._pool.submit(self.pipeline.compute, frames))

    def done(self, wait: bool = False) -> list[list[ComputedFrame]]:
        """Finished batches, oldest first, up to the first unfinished one (all, with `wait`)."""
        finished, self._finished = self._finished, []
        while self._in_flight and (wait or self._in_flight[0].done()):
            finished.append(self._in_flight.popleft().result())
        return finished

    def __enter__(self) -> "ComputePool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._torch.set_num_threads(self._threads_before)


def _light(report: FrameReport) -> FrameReport:
    """Reports are kept for the HTML snapshots; nothing to trim (maps are small at 200 x 200)."""
    return report


def _snapshots(reports: list[FrameReport]) -> list[FrameReport]:
    """Frames whose alerts include a sensor-state alert (the first of each run), at most a few."""
    from ros2_lmd.replay.report import SENSOR_STATE_ALERTS

    chosen = [r for r in reports if any(a.kind in SENSOR_STATE_ALERTS for a in r.alerts)]
    return chosen[:MAX_SNAPSHOTS]


def _drive_start(bag: Path, rows: list[FrameRow]) -> float:
    """Start of the drive: the bag's first message time (what faults.csv counts from)."""
    try:
        from rosbags.rosbag2 import Reader

        with Reader(bag) as reader:
            return reader.start_time * 1e-9
    except Exception:
        return rows[0].stamp if rows else 0.0


def load_params(path: str | None) -> MonitorParams:
    return load_params_file(path) if path else MonitorParams()


__all__ = ["analyze", "AnalyzeResult"]
