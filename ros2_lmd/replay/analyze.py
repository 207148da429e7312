"""`ros2-lmd analyze`: a recorded drive through the same ingest, time sync and Pipeline as the live
node, as fast as the machine allows (frames batched through the model), writing output.mcap with
every topic the node publishes, frames.csv (every key-sensor message: processed or skipped, and
why), alerts.csv and report.html."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ros2_lmd.messages import outputs
from ros2_lmd.messages.types import rosbags_types
from ros2_lmd.monitor.ingest import ingest_for_model
from ros2_lmd.monitor.params import MonitorParams
from ros2_lmd.monitor.pipeline import ComputedFrame, Pipeline, alert_config_from
from ros2_lmd.monitor.report import FrameReport
from ros2_lmd.monitor.runner import OrderedRunner, inference_plan
from ros2_lmd.replay.bag import BagError, BagWriter, ReadStats, read_messages
from ros2_lmd.replay.report import AlertRow, FrameRow, write_alerts_csv, write_frames_csv, write_html
from ros2_lmd.sensors.sync import AssemblyResult, DroppedFrame

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


def analyze(
    bag: str | Path,
    model: Any,
    out_dir: str | Path,
    params: MonitorParams | None = None,
    faults_csv: str | Path | None = None,
    batch: int = 4,
    device: str = "cpu",
    progress: bool = True,
    model_name: str = "",
    on_alert: Callable[[AlertRow], None] | None = None,
    workers: int = 0,
) -> AnalyzeResult:
    """Analyse `bag` with `model` (a FusionModel). Raises BagError for an unreadable bag; a bag that
    breaks off part-way still gets every output for the frames read, and then BagError.

    Batches of `batch` frames go through the model and LMD in `workers` threads at once (0: one
    single-threaded worker per core on a CPU, one on a GPU; monitor.runner.inference_plan) while
    this thread reads and decodes the bag; the OrderedRunner concludes them (alerts, outputs) in
    stamp order, so the output does not depend on `batch` or `workers`."""
    import torch
    from tqdm import tqdm

    bag, out_dir = Path(bag), Path(out_dir)
    params = params or MonitorParams()
    ingest, _ = ingest_for_model(params, model, adapt_key_sensor=True)
    params = ingest.params
    modalities = ingest.modalities
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
    problems: list[tuple[str, str]] = []
    counts = {"processed": 0, "dropped": 0}
    prefix = params.output_prefix.rstrip("/")
    workers, threads = inference_plan(pipeline.device.type == "cpu", workers, prefer="throughput")
    threads_before = torch.get_num_threads()

    def compute(items: list[AssemblyResult]) -> list[ComputedFrame | None]:
        frames = [item for item in items if not isinstance(item, DroppedFrame)]
        computed = iter(pipeline.compute(frames))
        return [None if isinstance(item, DroppedFrame) else next(computed) for item in items]

    def conclude(item: AssemblyResult, computed: ComputedFrame | None, error: BaseException | None) -> None:
        if error is not None:
            raise error  # offline, a model failure ends the analysis (the node counts and goes on)
        if isinstance(item, DroppedFrame):
            rows.append(FrameRow.skipped(item.stamp, item.reason))
            counts["dropped"] += 1
            return
        report = pipeline.conclude(computed)
        rows.append(FrameRow.processed(report))
        counts["processed"] += 1
        for alert in report.alerts:
            row = AlertRow(report.stamp, alert.kind, alert.severity, alert.modality, alert.message)
            alerts.append(row)
            if on_alert:
                on_alert(row)
        for key, msgtype, message in outputs.frame_messages(
            report,
            types,
            params.base_frame,
            counts["processed"],
            counts["dropped"],
            bev_image_scale=params.bev_image_scale,
            component_logit_range=params.component_logit_range,
            detection_threshold=params.detection_threshold,
        ):
            writer.write(f"{prefix}/{key}", msgtype, int(round(report.stamp * 1e9)), message)
        reports.append(report)

    torch.set_num_threads(threads)  # process-wide: each worker's operators use this many
    try:
        with (
            BagWriter(output_bag, types.typestore) as writer,
            OrderedRunner(
                compute,
                conclude,
                workers=workers,
                batch=batch,
                depth=batch * workers,
                when_full="wait",
                name="lmd_analyze",
            ) as runner,
            tqdm(desc="analysing", unit="msg", disable=not progress, file=sys.stderr) as bar,
        ):
            for topic, _msgtype, _log_time, message in read_messages(
                bag, ingest.topics(), types.typestore, stats
            ):
                outcome = ingest.on_message(topic, message)
                if outcome.bad:
                    problems.append((topic, outcome.bad))
                for result in ingest.pop_ready():
                    runner.put(result)
                bar.update(1)
            for result in ingest.flush():
                runner.put(result)
            runner.join()
    finally:
        torch.set_num_threads(threads_before)
    for topic, count in stats.undecodable.items():
        problems.append((topic, f"{count} message(s) could not be decoded"))
    rows.sort(key=lambda r: r.stamp)
    write_frames_csv(out_dir / "frames.csv", rows)
    write_alerts_csv(out_dir / "alerts.csv", alerts)
    faults = []
    if faults_csv:
        from ros2_lmd.sim import read_faults_csv

        faults = read_faults_csv(faults_csv)
    t0 = _drive_start(bag, rows)
    snapshots = _snapshots(reports)
    write_html(
        out_dir / "report.html",
        f"ros2_lmd analysis of {bag.name}",
        rows,
        alerts,
        faults,
        snapshots,
        t0,
        modalities,
        model_name or getattr(model.config, "architecture", "model"),
    )
    result = AnalyzeResult(out_dir, rows, alerts, problems, stats, reports)
    if stats.error:
        raise BagError(
            f"{bag}: {stats.error}; the {result.processed} frames read before it were analysed "
            f"and written to {out_dir}"
        )
    return result


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


__all__ = ["analyze", "AnalyzeResult"]
