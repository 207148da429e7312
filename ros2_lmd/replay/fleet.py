"""`ros2-lmd fleet`: many rosbag2 drives analysed on Ray, one task per bag, each writing exactly what
`analyze` writes (replay.analyze.analyze) into `<out>/<bag name>/`, then the fleet report over all
of them (replay/fleet_report.py).

Ray does the scheduling: a local Ray started in this process (`num_cpus` = workers), or an existing
cluster (`address`). Each worker is a Ray actor that loads the model once and analyses bag after
bag (ray.util.ActorPool hands out the bags); several workers share a machine, so each runs torch
single-threaded (locally the machine's cores are split among them as `analyze`'s inference
threads). A bag is concluded in stamp order inside its worker, so its outputs do not depend on how
many workers there are. A bag that fails is reported with its error and the others go on; a worker
process that dies (a crash, the memory killer) takes only its bag with it: a new worker takes its
place, as many times as there are workers.

Resumable: a bag's folder holds `fleet_bag.json` (what the fleet ran: bag, model, parameters,
batch; status and error). A rerun reuses a bag whose outputs are all there, whose run matches this
one and whose summary.json is newer than every file of the bag; it analyses the others again."""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ros2_lmd.errors import LMDError
from ros2_lmd.monitor.params import MonitorParams
from ros2_lmd.monitor.resources import cpu_cores
from ros2_lmd.replay.analyze import OUTPUTS
from ros2_lmd.replay.bag import resolve_bag
from ros2_lmd.replay.fleet_records import ANALYSED, FAILED, PARTIAL, REUSED, BagOutcome, FleetBag
from ros2_lmd.replay.fleet_report import write_fleet_report
from ros2_lmd.replay.levels import OUTPUT_LEVELS

RUN_FILE = "fleet_bag.json"  # in each bag's output folder: what the fleet ran there, and how it ended
METADATA = "metadata.yaml"  # what makes a folder a rosbag2
DEVICE = "cpu"  # workers scale out over cores and machines; one GPU per bag is `analyze`'s job
OBJECT_STORE_BYTES = 256 * 1024**2  # only bag paths and outcomes travel through it


class FleetError(LMDError, ValueError):
    """A `fleet` argument that cannot work (paths, output folder, workers, Ray address), found
    before any bag is analysed; the message names the argument and what is wrong with it."""


@dataclass
class FleetResult:
    out: Path
    outcomes: list[BagOutcome]  # sorted by bag name
    workers: list[dict[str, Any]] = field(default_factory=list)  # BagAnalyst.info() of each worker
    timings: dict[str, float] = field(default_factory=dict)  # seconds: ray_start, analysis, report, total
    summary: dict[str, Any] = field(default_factory=dict)  # fleet_summary.json

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)


# --- which bags ------------------------------------------------------------------------------------


def find_bags(paths: Sequence[str | Path], exclude: Path | None = None) -> list[FleetBag]:
    """The rosbag2 folders named by `paths`: a bag folder (or a storage file in it) is itself; any
    other folder stands for every rosbag2 below it (a folder with metadata.yaml; not searched
    further). Hidden folders and `exclude` (the output folder, whose per-bag `output/` are bags
    too) are skipped. Sorted by path, each once, with distinct output names (`bag_names`)."""
    if not paths:
        raise FleetError("no bags given: name rosbag2 folders or folders that hold them")
    excluded = exclude.resolve() if exclude is not None else None
    found: list[Path] = []
    for given in paths:
        path = Path(given)
        if not path.exists():
            raise FleetError(f"{path}: no such file or folder")
        path = resolve_bag(path).resolve()
        if path.is_file():
            raise FleetError(f"{path}: not a rosbag2 (a folder with {METADATA}) nor a folder holding some")
        below = _bags_below(path, excluded)
        if not below:
            raise FleetError(f"{path}: no rosbag2 below it (a rosbag2 is a folder with {METADATA})")
        found += below
    unique = sorted(set(found))
    names = bag_names(unique)
    return [FleetBag(path, names[path]) for path in unique]


def _bags_below(root: Path, excluded: Path | None) -> list[Path]:
    bags = []
    for folder, subfolders, files in os.walk(root):
        here = Path(folder)
        if METADATA in files:
            bags.append(here)
            subfolders.clear()
            continue
        subfolders[:] = sorted(
            s for s in subfolders if not s.startswith(".") and (excluded is None or here / s != excluded)
        )
    return bags


def bag_names(bags: Sequence[Path]) -> dict[Path, str]:
    """Output folder name of each bag: its folder name, or where two bags share it, as many of the
    parent folders as tell them apart joined with "__" (a/drive, b/drive -> a__drive, b__drive).
    Names depend only on the set of bags, never on their order."""
    depth = {bag: 1 for bag in bags}

    def name(bag: Path) -> str:
        parts = bag.parts[1:] if bag.is_absolute() else bag.parts  # without the root
        return "__".join(parts[-depth[bag] :])

    while True:
        groups: dict[str, list[Path]] = {}
        for bag in bags:
            groups.setdefault(name(bag), []).append(bag)
        clashing = [bag for group in groups.values() if len(group) > 1 for bag in group]
        deeper = [bag for bag in clashing if depth[bag] < len(bag.parts) - 1]
        if not deeper:
            break
        for bag in deeper:
            depth[bag] += 1
    names = {bag: name(bag) for bag in bags}
    if len(set(names.values())) != len(names):  # only for paths that differ by more than folders
        raise FleetError(f"bags whose output names cannot be told apart: {sorted(map(str, bags))}")
    return names


# --- resumability ---------------------------------------------------------------------------------


def run_record(
    bag: FleetBag, model_name: str, params: MonitorParams, batch: int, outputs: str = "summary"
) -> dict[str, Any]:
    """What identifies a bag's analysis: a rerun reuses outputs only if this is unchanged."""
    return json.loads(
        json.dumps(
            {
                "bag": str(bag.path),
                "model": model_name,
                "params": asdict(params),
                "batch": batch,
                "outputs": outputs,
            },
            sort_keys=True,
            default=str,
        )
    )


def is_complete(bag: FleetBag, folder: Path, record: dict[str, Any]) -> bool:
    """The outputs in `folder` are a complete analysis of `bag` as `record` describes it, newer than
    every file of the bag (a bag recorded again is analysed again)."""
    try:
        written = json.loads((folder / RUN_FILE).read_text())
        summary = folder / "summary.json"
        if written.get("status") != ANALYSED or written.get("run") != record:
            return False
        if not all((folder / name).exists() for name in OUTPUTS):
            return False
        return summary.stat().st_mtime >= _newest_change(bag.path)
    except (OSError, ValueError, AttributeError):
        return False


def _newest_change(bag: Path) -> float:
    return max([bag.stat().st_mtime, *(p.stat().st_mtime for p in bag.iterdir() if p.is_file())])


def _write_run_file(folder: Path, record: dict[str, Any], status: str, error: str) -> None:
    text = json.dumps({"run": record, "status": status, "error": error}, indent=2, sort_keys=True)
    (folder / RUN_FILE).write_text(text + "\n")


# --- the worker -----------------------------------------------------------------------------------


class BagAnalyst:
    """One fleet worker (a Ray actor): loads the model once, then analyses bags one at a time with
    `inference_threads` single-threaded inference workers. Never raises for a bag: the outcome says
    how it ended (an error in one bag must not stop the fleet)."""

    def __init__(
        self,
        model: str,
        model_name: str,
        params: MonitorParams,
        batch: int,
        inference_threads: int,
    ) -> None:
        import torch

        from ros2_lmd.models.io import load_model

        torch.set_num_threads(1)
        start = time.perf_counter()
        self.model = load_model(model, DEVICE)
        self.model_load_s = time.perf_counter() - start
        self.model_name, self.params, self.batch = model_name, params, batch
        self.inference_threads = inference_threads
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.bags, self.busy_s = 0, 0.0

    def analyze(self, bag: str, folder: str, name: str, record: dict[str, Any]) -> BagOutcome:
        from ros2_lmd.replay.analyze import analyze
        from ros2_lmd.replay.simulate import recorded_faults

        start = time.perf_counter()
        out = Path(folder)
        summary = out / "summary.json"
        before = summary.stat().st_mtime_ns if summary.is_file() else None
        try:
            analyze(
                bag,
                self.model,
                out,
                self.params,
                recorded_faults(bag),  # a simulated drive's timeline, scored in its report.html
                batch=self.batch,
                device=DEVICE,
                progress=False,
                model_name=self.model_name,
                workers=self.inference_threads,
                threads=1,
                outputs=record.get("outputs", "summary"),
            )
            status, error = ANALYSED, ""
        except Exception as exc:  # any failure is this bag's, reported with it
            error = _one_line(exc)
            # analyze writes a broken-off bag's outputs, then raises: partial, not failed
            wrote = summary.is_file() and summary.stat().st_mtime_ns != before
            status = PARTIAL if wrote else FAILED
        if out.is_dir():  # a failure before analyze made the folder leaves no trace
            _write_run_file(out, record, status, error)
        seconds = time.perf_counter() - start
        self.bags += 1
        self.busy_s += seconds
        return BagOutcome(name, bag, status, error, seconds, self.worker)

    def info(self) -> dict[str, Any]:
        return {
            "worker": self.worker,
            "model_load_s": self.model_load_s,
            "bags": self.bags,
            "busy_s": self.busy_s,
            "inference_threads": self.inference_threads,
            "package": str(Path(__file__).resolve().parents[1]),  # which ros2_lmd this worker runs
        }


def _ray_error_line(error: BaseException) -> str:
    """A Ray error (a worker that died) as one line: its type and the root cause, Ray's last line,
    without the terminal colours of the traceback it carries."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[-1] if lines else 'no message'}"


def _one_line(error: BaseException) -> str:
    """A bag's error as one line: our errors are written to be read as they are, others get their
    type in front."""
    from ros2_lmd.monitor.params import ParameterError
    from ros2_lmd.replay.analyze import AnalyzeError
    from ros2_lmd.replay.bag import BagError

    text = " ".join(str(error).split())
    if isinstance(error, (BagError, AnalyzeError, ParameterError)):
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


# --- the run --------------------------------------------------------------------------------------


def check_arguments(out: str | Path, workers: int | None, batch: int, quality_frames: int) -> Path:
    """The arguments that need neither bags nor Ray: FleetError naming the first that cannot work.
    Returns the output folder, absolute."""
    if workers is not None and workers < 1:
        raise FleetError(f"--workers must be >= 1, got {workers}")
    if batch < 1:
        raise FleetError(f"--batch must be >= 1, got {batch}")
    if quality_frames < 0:
        raise FleetError(f"--quality-frames must be >= 0, got {quality_frames}")
    out = Path(out).resolve()
    for folder in (out, *out.parents):
        if folder.exists() and not folder.is_dir():
            raise FleetError(f"output folder {out}: {folder} is not a folder")
    return out


def run_fleet(
    paths: Sequence[str | Path],
    out: str | Path,
    model: str = "compact_crl",
    params: MonitorParams | None = None,
    workers: int | None = None,
    address: str | None = None,
    batch: int = 4,
    quality_frames: int | None = None,
    progress: bool = True,
    force: bool = False,
    model_name: str = "",
    outputs: str = "summary",
) -> FleetResult:
    """Analyse every bag of `paths` (see find_bags) into `out/<bag name>/` on `workers` Ray workers
    (default: this machine's cores, or the cluster's CPUs with `address`), then write the fleet
    report into `out` (replay/fleet_report.py). `model`: a registry name or a
    model path, loaded by every worker (on a cluster: the same path on every machine). Ray: the
    running one if this process has initialised it, else the cluster at `address`, else a local
    one started here and shut down at the end. `quality_frames` simulated scenes measure each
    modality's quality alone for the imbalance diagnosis (0: no diagnosis). `force` analyses every
    bag again. `outputs`: the level of each bag's output bag (replay/levels.py; a bag analysed at
    another level is analysed again). FleetError for arguments that cannot work, before any bag is
    analysed."""
    from ros2_lmd.eval.imbalance import QUALITY_FRAMES
    from ros2_lmd.models.io import load_model
    from ros2_lmd.models.registry import MODEL_NAMES

    started = time.perf_counter()
    quality_frames = QUALITY_FRAMES if quality_frames is None else quality_frames
    out = check_arguments(out, workers, batch, quality_frames)
    if outputs not in OUTPUT_LEVELS:
        raise FleetError(f"outputs must be one of {', '.join(OUTPUT_LEVELS)}, got {outputs!r}")
    params = params or MonitorParams()
    bags = find_bags(paths, exclude=out)
    model_ref = model if model in MODEL_NAMES else str(Path(model).resolve())  # workers have another cwd
    model_name = model_name or model
    loaded = load_model(model_ref, DEVICE)  # a model that cannot load fails here, before Ray starts
    records = {bag.name: run_record(bag, model_name, params, batch, outputs) for bag in bags}
    outcomes: dict[str, BagOutcome] = {}
    todo = []
    for bag in bags:
        if not force and is_complete(bag, out / bag.name, records[bag.name]):
            outcomes[bag.name] = BagOutcome(bag.name, str(bag.path), REUSED)
        else:
            todo.append(bag)
    timings: dict[str, float] = {}
    worker_info: list[dict[str, Any]] = []
    if todo:
        analysed, worker_info, ray_timings = _analyse_on_ray(
            todo, out, records, model_ref, model_name, params, workers, address, batch, progress, len(bags)
        )
        outcomes.update(analysed)
        timings.update(ray_timings)
    else:
        out.mkdir(parents=True, exist_ok=True)
    ordered = [outcomes[bag.name] for bag in bags]
    report_start = time.perf_counter()
    quality = None
    if quality_frames:
        from ros2_lmd.eval.imbalance import modality_quality

        quality = modality_quality(loaded, quality_frames)
    summary = write_fleet_report(
        out,
        [(bag, outcome) for bag, outcome in zip(bags, ordered)],
        model_name,
        loaded.modalities,
        quality,
    )
    timings["report"] = time.perf_counter() - report_start
    timings["total"] = time.perf_counter() - started
    return FleetResult(out, ordered, worker_info, timings, summary)


def connect_ray(address: str | None, workers: int | None) -> bool:
    """Make sure Ray runs in this process: the one already initialised, else the cluster at `address`,
    else a local one with `workers` CPUs. True when this call started it (and must shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": "error"}
    if address:
        unreachable = _unreachable(address)
        if unreachable:  # Ray itself would retry for minutes
            raise FleetError(f"--address {address}: {unreachable}")
        try:
            ray.init(address=address, **quiet)
        except Exception as error:  # ConnectionError, RuntimeError, ValueError: all mean "no cluster"
            raise FleetError(
                f"--address {address}: cannot connect to a Ray cluster ({_one_line(error)}); is the address "
                "right, and where the cluster uses token authentication, are RAY_AUTH_MODE=token and its "
                "token (RAY_AUTH_TOKEN or ~/.ray/auth_token) set here?"
            ) from None
        cpus = ray.cluster_resources().get("CPU", 0)
        if workers is not None and cpus < workers:
            ray.shutdown()
            raise FleetError(
                f"--address {address}: the cluster has {cpus:g} CPUs, fewer than --workers {workers}"
            )
        return True
    # The workers import this very ros2_lmd (a worker's own sys.path could find another checkout).
    package_root = str(Path(__file__).resolve().parents[2])
    python_path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)
    ray.init(
        address="local",  # a new instance: never a cluster someone started on this machine with `ray start`
        num_cpus=workers or cpu_cores(),
        object_store_memory=OBJECT_STORE_BYTES,
        runtime_env={"env_vars": {"PYTHONPATH": python_path}},
        **quiet,
    )
    return True


def _unreachable(address: str, timeout_s: float = 5.0) -> str:
    """Why nothing could answer at a HOST:PORT address, or "" (also for Ray's other address forms,
    ray://... and auto, which ray.init checks itself)."""
    match = re.fullmatch(r"\[?([^\[\]/]+?)\]?:(\d+)", address)
    if not match:
        return ""
    try:
        socket.create_connection((match.group(1), int(match.group(2))), timeout=timeout_s).close()
    except OSError as error:
        return f"nothing answers there ({error.strerror or error}): is `ray start --head` running on it?"
    return ""


def _analyse_on_ray(
    todo: list[FleetBag],
    out: Path,
    records: dict[str, dict[str, Any]],
    model_ref: str,
    model_name: str,
    params: MonitorParams,
    workers: int | None,
    address: str | None,
    batch: int,
    progress: bool,
    total: int,
) -> tuple[dict[str, BagOutcome], list[dict[str, Any]], dict[str, float]]:
    import ray
    from ray.util import ActorPool
    from tqdm import tqdm

    start = time.perf_counter()
    started = connect_ray(address, workers)
    timings = {"ray_start": time.perf_counter() - start}
    out.mkdir(parents=True, exist_ok=True)  # only now: a cluster that cannot be reached leaves nothing
    try:
        if workers is None:  # as many as Ray has CPUs: this machine's, or the cluster's
            workers = max(1, int(ray.available_resources().get("CPU", 1)))
        count = min(workers, len(todo))
        # locally the workers split this machine's cores; on a cluster each has one CPU
        inference_threads = 1 if address else max(1, cpu_cores() // workers)
        analyst = ray.remote(BagAnalyst).options(num_cpus=1)

        def new_worker() -> Any:
            return analyst.remote(model_ref, model_name, params, batch, inference_threads)

        actors = [new_worker() for _ in range(count)]
        pool = ActorPool(actors)
        for bag in todo:
            pool.submit(
                lambda actor, job: actor.analyze.remote(*job),
                (str(bag.path), str(out / bag.name), bag.name, records[bag.name]),
            )
        outcomes: dict[str, BagOutcome] = {}
        crashes: list[str] = []
        spare = count  # dead workers replaced, in all: one that cannot even start would die again
        analysis_start = time.perf_counter()
        with tqdm(
            total=total,
            initial=total - len(todo),
            desc="fleet",
            unit="bag",
            disable=not progress,
            file=sys.stderr,
        ) as bar:
            while pool.has_next():
                try:
                    outcome = pool.get_next_unordered()
                except ray.exceptions.RayError as error:  # the worker process died, and its bag with it
                    crashes.append(_ray_error_line(error))
                    if spare:  # the pool drops a dead worker: a new one takes its place
                        spare -= 1
                        actors.append(new_worker())
                        pool.push(actors[-1])
                else:
                    outcomes[outcome.name] = outcome
                bar.update(1)
                failed = sum(o.status in (FAILED, PARTIAL) for o in outcomes.values()) + len(crashes)
                if failed:
                    bar.set_postfix(failed=failed)
            for bag in todo:  # the bags whose worker died, and any left when every worker had
                if bag.name not in outcomes:
                    reason = crashes[-1] if crashes else "no result from Ray"
                    outcomes[bag.name] = BagOutcome(
                        bag.name, str(bag.path), FAILED, f"its worker died: {reason}"
                    )
            bar.update(total - bar.n)
        timings["analysis"] = time.perf_counter() - analysis_start
        info = _worker_info(actors)
        for actor in actors:
            ray.kill(actor)
    finally:
        if started:
            ray.shutdown()
    return outcomes, info, timings


def _worker_info(actors: Iterable[Any]) -> list[dict[str, Any]]:
    import ray

    info = []
    for actor in actors:
        try:
            info.append(ray.get(actor.info.remote(), timeout=30))
        except ray.exceptions.RayError as error:
            info.append({"worker": "?", "error": _one_line(error)})
    return info


__all__ = [
    "FleetError",
    "FleetBag",
    "BagOutcome",
    "FleetResult",
    "BagAnalyst",
    "find_bags",
    "bag_names",
    "is_complete",
    "run_fleet",
    "check_arguments",
    "connect_ray",
    "ANALYSED",
    "REUSED",
    "PARTIAL",
    "FAILED",
    "RUN_FILE",
]
