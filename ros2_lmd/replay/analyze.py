"""`ros2-lmd analyze`: a recorded drive through the same ingest, time sync and Pipeline as the live
node, as fast as the machine allows (frames batched through the model), writing the output bag
(output/output_0.mcap) with every topic the node publishes, frames.csv (every key-sensor message:
processed or skipped, and why), alerts.csv, incidents.csv, summary.json and report.html.

What can be checked before the work is (`check_inputs`: the bag's index, the faults file, the output
folder, the device; then the bag's topics against the model's inputs), so a bad argument costs no
analysis time. The outputs are written into a hidden folder inside the output folder and moved into
place only when the analysis ends: a failed or interrupted run leaves the output folder as it was
(an earlier run's results intact, or no folder at all). A connection whose message type its topic
cannot carry is skipped and named in the problems; a bag with none of the sensor topics the model
reads is an error, not an empty analysis."""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ros2_lmd.errors import LMDError
from ros2_lmd.messages import outputs
from ros2_lmd.messages.types import project_typestore, rosbags_types
from ros2_lmd.monitor.diagnostics import DIAGNOSTICS_PERIOD_S, Intake, MonitorStatus, drop_kind
from ros2_lmd.monitor.ingest import Ingest, MessageOutcome, ingest_for_model, input_sensors
from ros2_lmd.monitor.params import MonitorParams
from ros2_lmd.monitor.pipeline import ComputedFrame, Pipeline, pipeline_for, resolve_device
from ros2_lmd.monitor.report import FrameReport
from ros2_lmd.monitor.resources import inference_plan
from ros2_lmd.monitor.runner import OrderedRunner
from ros2_lmd.monitor.status import StatusRecord
from ros2_lmd.replay.bag import (
    EXPECTED_TYPES,
    BagError,
    BagWriter,
    ReadStats,
    bag_connections,
    message_count,
    read_messages,
    resolve_bag,
    type_problems,
)
from ros2_lmd.replay.levels import OutputLevel
from ros2_lmd.replay.report import MAX_SNAPSHOTS, is_snapshot, snapshot_frames, write_html
from ros2_lmd.replay.summary import analysis_summary, write_summary_json
from ros2_lmd.replay.tables import AlertRow, FrameRow, write_alerts_csv, write_frames_csv, write_incidents_csv
from ros2_lmd.sensors.frame import MODALITIES
from ros2_lmd.sensors.sync import AssemblyResult, DroppedFrame

if TYPE_CHECKING:
    from ros2_lmd.sim.faults import FaultEvent

# What analyze writes into the output folder: name -> whether it is a folder (the rosbag2).
OUTPUTS = {
    "output": True,
    "frames.csv": False,
    "alerts.csv": False,
    "incidents.csv": False,
    "report.html": False,
    "summary.json": False,
}
STAGING_PREFIX = ".analyze-partial-"


class AnalyzeError(LMDError, ValueError):
    """An argument of `analyze` that cannot work (faults file, output folder, device), found before
    any work starts; the message names the argument and what is wrong with it."""


class OutputError(LMDError, OSError):
    """The outputs could not be written (a full disk, a lost mount, permissions): names the output
    folder and what was being written. The folder is left as it was."""


@dataclass(frozen=True)
class CheckedInputs:
    """What `check_inputs` found: the fault timeline, the torch device and the bag's topics
    (topic -> message types; None for a broken recording whose index cannot be read)."""

    faults: list[FaultEvent]
    device: torch.device
    topics: dict[str, set[str]] | None


def check_inputs(
    bag: str | Path, out_dir: str | Path, faults_csv: str | Path | None = None, device: str = "cpu"
) -> CheckedInputs:
    """Check the arguments of `analyze` that need no model, without writing anything: BagError for
    a path that is not a rosbag2, AnalyzeError for the others."""
    topics = bag_connections(bag)
    faults = _read_faults(faults_csv) if faults_csv else []
    _check_out_dir(Path(out_dir))
    return CheckedInputs(faults, _check_device(device), topics)


def _read_faults(path: str | Path) -> list[FaultEvent]:
    from ros2_lmd.sim import read_faults_csv

    try:
        return read_faults_csv(path)
    except OSError as error:
        raise AnalyzeError(f"faults file {path}: {error.strerror or error}") from None
    except ValueError as error:
        raise AnalyzeError(str(error)) from None


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise AnalyzeError(f"output folder {out_dir} exists and is not a folder")
    for folder in out_dir.parents:
        if folder.exists() and not folder.is_dir():
            raise AnalyzeError(f"output folder {out_dir}: {folder} is not a folder")
    for name, is_folder in OUTPUTS.items():
        path = out_dir / name
        if path.exists() and path.is_dir() != is_folder:
            raise AnalyzeError(
                f"output folder {out_dir}: {path} exists and is not a {'folder' if is_folder else 'file'}"
            )


def _check_device(device: str) -> torch.device:
    if device != "auto" and device.split(":")[0] not in ("cpu", "cuda"):
        raise AnalyzeError(f"device {device!r}: expected auto, cpu, cuda or cuda:N")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise AnalyzeError(f"device {device!r}: CUDA is not available on this machine (use auto or cpu)")
    try:
        resolved = resolve_device(device)
    except RuntimeError as error:
        raise AnalyzeError(f"device {device!r}: {str(error).splitlines()[0]}") from None
    if resolved.type == "cuda" and (resolved.index or 0) >= torch.cuda.device_count():
        raise AnalyzeError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return resolved


def _check_topics(bag: Path, found: Mapping[str, set[str]], ingest: Ingest) -> None:
    """A bag with none of the sensor topics the model reads (with a type they can carry), or none
    of the topics that start a frame (the key sensor's, the fallback key's), would give an empty
    analysis: an error naming what was expected and what the bag has."""
    kinds = ingest.topics()

    def usable(topic: str) -> bool:
        return bool(found.get(topic, set()) & set(EXPECTED_TYPES[kinds[topic]]))

    has = ", ".join(f"{topic} ({', '.join(sorted(types))})" for topic, types in sorted(found.items()))
    has = f"the bag has: {has or 'no topics'}"
    sensor_topics = [topic for topic, kind in kinds.items() if kind in ("image", "points")]
    if not any(usable(topic) for topic in sensor_topics):
        raise BagError(
            f"{bag}: none of the sensor topics the model reads is in the bag with a usable message type "
            f"(expected: {', '.join(sensor_topics)}; {has})"
        )
    keys = {"key_sensor": ingest.assembler.key_sensor, "key_fallback": ingest.assembler.key_fallback}
    starters = {role: s.topic for s in ingest.sensors for role, name in keys.items() if s.name == name}
    if not any(usable(topic) for topic in starters.values()):
        expected = " or ".join(f"{topic} ({role})" for role, topic in starters.items())
        raise BagError(
            f"{bag}: no frame would start: it has no {expected} with a usable message type ({has})"
        )


@dataclass
class AnalyzeResult:
    out_dir: Path
    frames: list[FrameRow]
    alerts: list[AlertRow]
    problems: list[tuple[str, str]]  # (topic, what was wrong): skipped connections, bad messages
    stats: ReadStats
    # every FrameReport with analyze(keep_reports=True); otherwise only those the report shows
    reports: list[FrameReport] = field(default_factory=list, repr=False)
    incidents: list[Any] = field(default_factory=list)  # monitor.incidents.Incident, in start order
    t0: float = 0.0  # the bag's start (incident and fault times count from it)
    # the /diagnostics records after the last message: the last DiagnosticArray of the output bag
    diagnostics: list[StatusRecord] = field(default_factory=list)
    outputs: str = "standard"  # the level of the output bag (replay/levels.py)
    write_s: float = 0.0  # seconds spent building, encoding and writing the output bag's messages

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
    device: str = "auto",
    progress: bool = True,
    model_name: str = "",
    on_alert: Callable[[AlertRow], None] | None = None,
    workers: int = 0,
    keep_reports: bool = False,
    threads: int = 0,
    outputs: str = "standard",
) -> AnalyzeResult:
    """Analyse `bag` with `model` (a FusionModel) into the folder `out_dir`. Raises BagError for an
    unreadable bag or one without the model's sensor topics, AnalyzeError for a faults file, output
    folder or device that cannot work, both before any work; a bag that breaks off part-way still
    gets every output for the frames read, and then BagError. A run that fails leaves `out_dir` as
    it was.

    Batches of `batch` frames go through the model and LMD in `workers` threads at once (0: one
    single-threaded worker per core on a CPU, one on a GPU; monitor.resources.inference_plan) of
    `threads` torch threads each (0: the cores shared among the workers) while this thread reads
    and decodes the bag; the OrderedRunner concludes them (alerts, outputs) in stamp order, so the
    output does not depend on `batch`, `workers` or `threads`.

    `keep_reports`: keep every FrameReport in the result (five BEV maps each: about 0.8 MB a frame,
    14 GB for 30 minutes at 10 Hz); by default only the few the report shows are kept.

    `outputs`: what the output bag holds (summary, standard, full: replay/levels.py); everything
    else is the same at every level. OutputError when writing fails (a full disk)."""
    bag, out_dir = Path(bag), Path(out_dir)
    level = OutputLevel(outputs)
    checked = check_inputs(bag, out_dir, faults_csv, device)
    params = params or MonitorParams()
    ingest, _ = ingest_for_model(params, model, adapt_key_sensor=True)
    kinds = ingest.topics()
    if checked.topics is not None:
        _check_topics(bag, checked.topics, ingest)
    created = [folder for folder in (out_dir, *out_dir.parents) if not folder.exists()]
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out_dir))
    except OSError as error:
        _remove_folders(created)
        raise AnalyzeError(f"output folder {out_dir}: {error.strerror or error}") from None
    writing = ["the output bag (output/)"]  # what is being written, for an OutputError
    try:
        result = _analyze_into(
            staging,
            bag,
            model,
            ingest,
            kinds,
            checked,
            batch,
            progress,
            model_name,
            on_alert,
            workers,
            keep_reports,
            threads,
            level,
            writing,
        )
        writing[0] = "the finished outputs (moving them into place)"
        for name in OUTPUTS:  # the run is complete: replace the earlier outputs
            target = out_dir / name
            if target.is_symlink():
                target.unlink()
            elif target.is_dir():
                shutil.rmtree(target)
            (staging / name).replace(target)
        staging.rmdir()
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        _remove_folders(created)
        if isinstance(error, OSError) and not isinstance(error, LMDError):
            reason = error.strerror or str(error)
            raise OutputError(
                f"output folder {out_dir}: writing {writing[0]} failed: {reason}; the folder is as it was"
            ) from None
        raise
    result.out_dir = out_dir
    if result.stats.error:
        raise BagError(
            f"{bag}: {result.stats.error}; the {result.processed} frames read before it were analysed "
            f"and written to {out_dir}"
        )
    return result


def _remove_folders(folders: list[Path]) -> None:
    """Remove the folders a failed run created (innermost first), where they are empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            pass


def _analyze_into(
    out_dir: Path,
    bag: Path,
    model: Any,
    ingest: Ingest,
    kinds: dict[str, str],
    checked: CheckedInputs,
    batch: int,
    progress: bool,
    model_name: str,
    on_alert: Callable[[AlertRow], None] | None,
    workers: int,
    keep_reports: bool,
    threads: int = 0,
    level: OutputLevel | None = None,
    writing: list[str] | None = None,
) -> AnalyzeResult:
    """The analysis proper, writing every output into `out_dir` (the staging folder); `writing[0]`
    names what is being written (the message of an OSError); `level` thins the output bag."""
    from tqdm import tqdm

    params = ingest.params
    modalities = ingest.modalities
    level = level or OutputLevel("standard")
    writing = writing if writing is not None else [""]
    write_s = [0.0]  # building, encoding and writing the output bag's messages
    pipeline = pipeline_for(model, params, checked.device)
    types = rosbags_types()
    output_bag = out_dir / "output"
    stats = ReadStats()
    rows: list[FrameRow] = []
    alerts: list[AlertRow] = []
    reports: list[FrameReport] = []
    problems: list[tuple[str, str]] = []
    prefix = params.output_prefix.rstrip("/")
    # /diagnostics as the node publishes them (the same MonitorStatus, fed the same events), once
    # per DIAGNOSTICS_PERIOD_S of bag time: the reading side's state is taken as each frame leaves
    # the time sync, so the records do not depend on how far ahead the reading thread is.
    monitor_status = MonitorStatus.for_run(params, ingest, modalities)
    due: dict[int, Intake] = {}  # id(frame or drop) -> the reading side's state then
    last_diagnostics = [-float("inf")]

    def on_message(outcome: MessageOutcome, now: float) -> None:
        monitor_status.on_message(outcome, now)

    def on_assembled(result: AssemblyResult, now: float) -> None:
        if not isinstance(result, DroppedFrame):
            monitor_status.on_frame(result)
        if now - last_diagnostics[0] >= DIAGNOSTICS_PERIOD_S:
            last_diagnostics[0] = now
            due[id(result)] = monitor_status.intake(ingest, now)

    def write_diagnostics(records: list[StatusRecord], stamp_ns: int) -> None:
        start = time.perf_counter()
        array = outputs.diagnostic_array(records, types, stamp_ns * 1e-9)
        writer.write("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray", stamp_ns, array)
        write_s[0] += time.perf_counter() - start

    def diagnostics_after(item: AssemblyResult, report: FrameReport | None) -> None:
        intake = due.pop(id(item), None)
        if intake is not None:
            stamp_ns = report.stamp_ns if report is not None else int(item.stamp * 1e9)
            write_diagnostics(monitor_status.records(intake, pipeline.decomposition_status), stamp_ns)

    def on_frame(
        item: AssemblyResult, sensor_messages: dict[str, tuple[int, int]], report: FrameReport | None
    ) -> None:
        lost = sum(lost for _, lost in sensor_messages.values())
        if report is None:
            rows.append(FrameRow.skipped(item.stamp, item.reason, lost))
            monitor_status.on_drop(drop_kind(item), item.reason)
            diagnostics_after(item, None)
            return
        rows.append(FrameRow.processed(report, lost))
        monitor_status.on_report(report, pipeline)
        for alert in report.alerts:
            row = AlertRow(
                report.stamp, alert.kind, alert.severity, alert.modality, alert.message, alert.sensor
            )
            alerts.append(row)
            if on_alert:
                on_alert(row)
        start = time.perf_counter()
        event = bool(report.alerts or report.incidents)
        incident_open = bool(pipeline.incidents is not None and pipeline.incidents.open_incidents())
        for key, msgtype, message in outputs.frame_messages(
            report,
            types,
            params.base_frame,
            monitor_status.frames_processed,
            monitor_status.frames_dropped,
            bev_image_scale=params.bev_image_scale,
            component_logit_range=params.component_logit_range,
            detection_threshold=params.detection_threshold,
            sensor_messages=sensor_messages,
            skip_views=level.skip_views(report.stamp, report.components, event, incident_open),
            png_images=level.png_images,
        ):
            if outputs.is_view(key) or level.keeps(key):
                writer.write(f"{prefix}/{key}", msgtype, report.stamp_ns, message)
        write_s[0] += time.perf_counter() - start
        diagnostics_after(item, report)
        if keep_reports or (len(reports) < MAX_SNAPSHOTS and is_snapshot(report)):
            reports.append(report)

    with (
        BagWriter(output_bag, types.typestore) as writer,
        tqdm(
            desc="analysing",
            unit="msg",
            total=message_count(bag, kinds),  # for the bar's ETA
            disable=not progress,
            file=sys.stderr,
        ) as bar,
    ):
        stream = read_messages(bag, kinds, types.typestore, stats, kinds)
        last_log_ns: list[int] = []

        def messages() -> Iterator[tuple[str, int, Any]]:
            for topic, _type, log_time, message in _counted(stream, bar):
                last_log_ns[:] = [log_time]
                yield topic, log_time, message

        monitor_messages(
            messages(),
            ingest,
            pipeline,
            on_frame,
            lambda topic, reason: problems.append((topic, reason)),
            workers=workers,
            batch=batch,
            threads=threads,
            on_message=on_message,
            on_assembled=on_assembled,
        )
        # the state after the last message, as the node's next /diagnostics would show it
        final: list[StatusRecord] = []
        if last_log_ns:
            end_ns = last_log_ns[0]
            final = monitor_status.records(
                monitor_status.intake(ingest, end_ns * 1e-9), pipeline.decomposition_status
            )
            write_diagnostics(final, end_ns)
    problems[:0] = type_problems(stats.wrong_type, kinds)
    if stats.metadata_problem:
        problems.insert(0, ("metadata.yaml", stats.metadata_problem))
    for topic, count in stats.undecodable.items():
        problems.append((topic, f"{count} message(s) could not be decoded"))
    rows.sort(key=lambda r: r.stamp)
    t0 = _drive_start(bag, rows)
    writing[0] = "the tables (frames.csv, alerts.csv, incidents.csv)"
    write_frames_csv(out_dir / "frames.csv", rows, t0)
    write_alerts_csv(out_dir / "alerts.csv", alerts, t0)
    incidents = list(pipeline.incidents.incidents) if pipeline.incidents is not None else []
    write_incidents_csv(out_dir / "incidents.csv", incidents, t0)
    sensor_modality = {s.name: s.modality for s in ingest.sensors}
    snapshots = snapshot_frames(reports)
    writing[0] = "the report (report.html)"
    write_html(
        out_dir / "report.html",
        f"ros2_lmd analysis of {bag.name}",
        rows,
        alerts,
        checked.faults,
        snapshots,
        t0,
        modalities,
        model_name or getattr(model.config, "architecture", "model"),
        incidents,
        sensor_modality,
    )
    summary = analysis_summary(
        bag,
        model_name or getattr(model.config, "architecture", "model"),
        pipeline.decomposition_status,
        rows,
        alerts,
        incidents,
        problems,
        stats.messages,
        t0,
        modalities,
    )
    writing[0] = "the summary (summary.json)"
    write_summary_json(out_dir / "summary.json", summary)
    return AnalyzeResult(
        out_dir, rows, alerts, problems, stats, reports, incidents, t0, final, level.name, write_s[0]
    )


def _counted(stream: Iterable[Any], bar: Any) -> Iterator[Any]:
    for item in stream:
        bar.update(1)
        yield item


def monitor_messages(
    messages: Iterable[tuple[str, int, Any]],
    ingest: Ingest,
    pipeline: Pipeline,
    on_frame: Callable[[AssemblyResult, dict[str, tuple[int, int]], FrameReport | None], None],
    on_problem: Callable[[str, str], None],
    workers: int = 0,
    batch: int = 4,
    threads: int = 0,
    on_message: Callable[[MessageOutcome, float], None] | None = None,
    on_assembled: Callable[[AssemblyResult, float], None] | None = None,
) -> None:
    """The monitor over a stream of (topic, log time in ns, message), offline: the live node's
    Ingest (stamps checked against the log time), the OrderedRunner in `wait` mode (no frame is
    ever dropped for lack of time: reading waits for the model) and the Pipeline. `on_frame(item,
    sensor_messages, report)` is called for every key instant in stamp order, from the runner's
    threads one at a time: `report` is None for a frame that was dropped (item is a DroppedFrame
    then); `sensor_messages` is sensor -> (received, lost) when the frame left the time sync.
    `on_problem(topic, reason)` for every message that was bad or showed a time jump. In the
    reading thread, in log order: `on_message(outcome, log time s)` for every message and
    `on_assembled(frame or drop, log time s)` as each leaves the time sync.

    Batches of `batch` frames go through the model in `workers` threads (0: one single-threaded
    worker per CPU core, one on a GPU: resources.inference_plan) of `threads` torch threads each (0:
    the cores shared among the workers); results do not depend on any of them."""
    Item = tuple[AssemblyResult, dict[str, tuple[int, int]]]

    def compute(items: list[Item]) -> list[ComputedFrame | None]:
        frames = [item for item, _ in items if not isinstance(item, DroppedFrame)]
        computed = iter(pipeline.compute(frames))
        return [None if isinstance(item, DroppedFrame) else next(computed) for item, _ in items]

    def conclude(entry: Item, computed: ComputedFrame | None, error: BaseException | None) -> None:
        item, sensor_messages = entry
        if error is not None:
            raise error  # offline, a model failure ends the run (the node counts it and goes on)
        on_frame(item, sensor_messages, None if computed is None else pipeline.conclude(computed))

    workers, threads = inference_plan(pipeline.device.type == "cpu", workers, threads, prefer="throughput")
    threads_before = torch.get_num_threads()
    torch.set_num_threads(threads)  # process-wide: each worker's operators use this many
    try:
        pipeline.warm_up(batch)  # at the thread count the workers use (a compiled graph is built for it)
        with OrderedRunner(
            compute,
            conclude,
            workers=workers,
            batch=batch,
            depth=batch * workers,
            when_full="wait",
            name="lmd_analyze",
        ) as runner:
            now = 0.0
            for topic, log_time, message in messages:
                now = log_time * 1e-9
                outcome = ingest.on_message(topic, message, now)
                if outcome.bad:
                    on_problem(topic, outcome.bad)
                if outcome.time_jump:
                    on_problem(topic, f"time jumped: {outcome.time_jump}")
                if on_message is not None:
                    on_message(outcome, now)
                for result in ingest.pop_ready():
                    if on_assembled is not None:
                        on_assembled(result, now)
                    runner.put((result, ingest.sensor_messages()))
            for result in ingest.flush():
                if on_assembled is not None:
                    on_assembled(result, now)
                runner.put((result, ingest.sensor_messages()))
            runner.join()
    finally:
        torch.set_num_threads(threads_before)


@dataclass
class DriveRun:
    """What the monitor made of a simulated drive (`monitor_drive`): every incident, frames
    processed and dropped, message problems, and the drive's start (what fault times count from)."""

    incidents: list[Any]
    processed: int
    dropped: int
    problems: list[tuple[str, str]]
    t0: float
    sensor_modality: dict[str, str]


def monitor_drive(
    drive: Iterable[Any],
    model: Any,
    params: MonitorParams | None = None,
    on_report: Callable[[FrameReport], None] | None = None,
    workers: int = 1,
    batch: int = 1,
    threads: int = 0,
) -> DriveRun:
    """A simulated drive (ros2_lmd.sim SimFrames) through the monitor exactly as `analyze` runs a bag
    of it (its messages in log-time order, the Ingest, the runner, the Pipeline of `params`),
    without writing a bag: for benches and tests over many drives. `on_report` sees every report."""
    from ros2_lmd.replay.simulate import drive_messages, in_log_order

    first: list[Any] = []

    def frames() -> Iterator[Any]:
        for frame in drive:
            if not first:
                first.append(frame)
            yield frame

    messages = in_log_order(drive_messages(frames(), rosbags_types()))
    run = _monitor_stream(
        ((topic, log_time, msg) for topic, _, log_time, msg in messages),
        model,
        params or MonitorParams(),
        on_report,
        workers,
        batch,
        threads,
    )
    if not first:
        raise ValueError("monitor_drive: the drive has no frames")
    run.t0 = first[0].stamp - first[0].t
    run.sensor_modality = {spec.name: spec.modality for spec in first[0].rig.sensors}
    return run


def _monitor_stream(
    messages: Iterable[tuple[str, int, Any]],
    model: Any,
    params: MonitorParams,
    on_report: Callable[[FrameReport], None] | None,
    workers: int,
    batch: int,
    threads: int,
) -> DriveRun:
    """(topic, log time ns, message) through the Ingest, runner and Pipeline of `params`: the
    incidents, frame counts and message problems (`t0` 0 and the sensors of `params`: the caller
    knows the drive's start)."""
    ingest, _ = ingest_for_model(params, model, adapt_key_sensor=True)
    pipeline = pipeline_for(model, params, "cpu")
    counts = {"processed": 0, "dropped": 0}
    problems: list[tuple[str, str]] = []

    def on_frame(item: Any, _: Any, report: FrameReport | None) -> None:
        counts["processed" if report is not None else "dropped"] += 1
        if report is not None and on_report is not None:
            on_report(report)

    monitor_messages(
        messages,
        ingest,
        pipeline,
        on_frame,
        lambda topic, reason: problems.append((topic, reason)),
        workers=workers,
        batch=batch,
        threads=threads,
    )
    return DriveRun(
        list(pipeline.incidents.incidents) if pipeline.incidents is not None else [],
        counts["processed"],
        counts["dropped"],
        problems,
        0.0,
        {s.name: s.modality for s in input_sensors(params, MODALITIES)},
    )


def monitor_bag(
    bag: str | Path,
    model: Any,
    params: MonitorParams | None = None,
    on_report: Callable[[FrameReport], None] | None = None,
    threads: int = 1,
) -> DriveRun:
    """A bag through the monitor exactly as `analyze` runs it (the Ingest with its stamp checks, the
    time sync, the runner, the Pipeline of `params`), without analyze's outputs: for benches and
    tests over many short bags (e.g. `corrupt` copies of one drive). One worker, `threads` torch
    threads. `t0` is the bag's first message time (what a faults.csv counts from)."""
    from rosbags.rosbag2 import Reader

    params = params or MonitorParams()
    topics = ingest_for_model(params, model, adapt_key_sensor=True)[0].topics()
    messages = read_messages(resolve_bag(bag), list(topics), project_typestore(), ReadStats(), kinds=topics)
    run = _monitor_stream(
        ((topic, log_time, msg) for topic, _, log_time, msg in messages),
        model,
        params,
        on_report,
        1,
        1,
        threads,
    )
    with Reader(resolve_bag(bag)) as reader:
        run.t0 = reader.start_time * 1e-9
    return run


def _drive_start(bag: Path, rows: list[FrameRow]) -> float:
    """Start of the drive: the bag's first message time (what faults.csv counts from)."""
    try:
        from rosbags.rosbag2 import Reader

        with Reader(bag) as reader:
            return reader.start_time * 1e-9
    except Exception:
        return rows[0].stamp if rows else 0.0


__all__ = ["analyze", "AnalyzeError", "AnalyzeResult", "CheckedInputs", "OutputError", "check_inputs"]
