"""End-to-end incident scorecard: every fault kind the simulator injects, on one sensor and on a whole
modality, over several seeds, plus fault-free drives, through the monitor exactly as `analyze` runs it
(ros2_lmd.replay.analyze.monitor_messages: the Ingest with its stamp checks and time sync, the
OrderedRunner, the Pipeline with the shipped model, the signal checks and the IncidentTracker). The
drives are simulated in memory and their messages fed in log-time order, as a bag reader returns
them; nothing goes to disk.

Printed (the targets are the issue's): recall within 1.5 s of onset (>= 95 %), median and p95 delay
(p95 <= 1.0 s), right sensor named (>= 90 %), false incidents per 10 fault-free minutes (<= 1), time to
clear after the fault ends. Scoring is ros2_lmd.replay.scoring.score_incidents, the same as
`analyze --faults`.

    .venv/bin/python bench/bench_faults.py [--seeds 3] [--fault-free-minutes 30] [--varied-minutes 10]
        [--jobs N] [--only camera:glare] [--model compact_crl]

`--corrupt` scores the `ros2-lmd corrupt` kinds instead (issue #24), the tuning and the held-out set
(`ros2_lmd.corrupt.registry`, docs/incidents.md): per seed one clean drive is simulated to a bag, each
kind written into a copy on one sensor (a different one per seed) at 3-6 s with `corrupt_bag`, and the
copy analysed as `analyze` does; recall within 2 s by kind and severity, right sensor, delay, and
the model's vehicle IoU drop during the fault (IoU of the fused output against the simulator's ground
truth over the fault window, intersection and union summed over its frames, a frame without output
counting as empty; the clean bag, analysed once per seed, less the corrupted copy: a kind that drops
the IoU and opens no incident is the worst cell); incidents in the clean bags are false ones:

    .venv/bin/python bench/bench_faults.py --corrupt [--severities 1,3,5] [--seeds 1] [--jobs 2]
        [--only lidar:rotation,radar:stuck]
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

RATE_HZ = 10.0
ONSET_S, END_S, DRIVE_S = 3.0, 6.0, 9.0  # 3 s of healthy history first (the checks need 2)
FAULT_FREE_DRIVE_S = 120.0
SCENARIOS: dict[str, tuple[str, ...]] = {
    "camera": ("blackout", "glare", "frozen", "night", "occlusion", "occlusion:0.6", "dropout", "delay"),
    "lidar": ("dropout", "sector_dropout", "fog", "delay"),
    "radar": ("dropout", "ghosts", "ghosts:60", "delay"),
}


@dataclass
class DriveOutcome:
    spec: str
    duration_s: float
    run: Any  # ros2_lmd.replay.analyze.DriveRun
    faults: list[Any] = field(default_factory=list)
    seconds: float = 0.0
    varied: bool = False


def run_drive(job: tuple[int, str, float, str, bool]) -> DriveOutcome:
    from ros2_lmd.models.io import load_model
    from ros2_lmd.monitor.params import MonitorParams
    from ros2_lmd.replay.analyze import monitor_drive
    from ros2_lmd.sim import SimConfig, default_rig, simulate_drive
    from ros2_lmd.sim.faults import expand_faults
    from ros2_lmd.sim.world import WorldConfig

    seed, spec, duration, model_name, varied = job
    start = time.perf_counter()
    # randomised worlds: road layout, traffic, ego speed down to standing (WorldConfig.randomised)
    world = WorldConfig().randomised(np.random.default_rng([seed, 77])) if varied else WorldConfig()
    model = load_model(model_name)
    run = monitor_drive(
        simulate_drive(seed, duration, RATE_HZ, spec or None, SimConfig(world=world)),
        model,
        MonitorParams(model=model_name),
        threads=1,
    )
    outcome = DriveOutcome(spec, duration, run, expand_faults(spec or None, default_rig()), varied=varied)
    outcome.seconds = time.perf_counter() - start
    label = spec or f"fault-free seed {seed}" + (" (randomised world)" if varied else "")
    print(
        f"  {label}: {run.processed} frames, {len(run.incidents)} incidents ({outcome.seconds:.0f} s)",
        flush=True,
    )
    return outcome


def _scope(spec: str) -> str:
    return "modality" if spec.split(":")[0] in SCENARIOS else "one sensor"


def simulate_clean_bag(job: tuple[int, str]) -> str:
    from ros2_lmd.replay.simulate import simulate_to_bag

    seed, folder = job
    bag = f"{folder}/clean_{seed}"
    simulate_to_bag(bag, duration_s=DRIVE_S, seed=seed, rate_hz=RATE_HZ, progress=False)
    return bag


def window_iou(grids: dict[int, np.ndarray], seed: int) -> float:
    """Vehicle IoU of the fused outputs (frame index -> logits >= 0) against the ground truth of the
    seed's clean drive over the fault window, intersection and union summed over its frames; a frame
    with no output predicts nothing. The truth needs only the world (simulate_to_bag's defaults)."""
    from ros2_lmd.sim import SimConfig
    from ros2_lmd.sim.drive import START_STAMP
    from ros2_lmd.sim.truth import ground_truth
    from ros2_lmd.sim.world import World

    config = SimConfig()
    world = World.generate(seed, config.world, DRIVE_S)
    intersection = union = 0
    for index in range(int(round(ONSET_S * RATE_HZ)), int(round(END_S * RATE_HZ))):
        t = index / RATE_HZ
        truth = ground_truth(world, t, START_STAMP + t, config.grid).occupancy.astype(bool)
        predicted = grids.get(index, np.zeros_like(truth))
        intersection += int((predicted & truth).sum())
        union += int((predicted | truth).sum())
    return intersection / union if union else float("nan")


def run_clean(job: tuple[str, int, str]) -> tuple[int, list[str], float]:
    """A clean bag analysed: (seed, its incidents (all false), the fault window's IoU)."""
    from ros2_lmd.models.io import load_model
    from ros2_lmd.monitor.params import MonitorParams

    bag, seed, model_name = job
    grids: dict[int, np.ndarray] = {}
    incidents, t0 = monitor_bag(bag, load_model(model_name), MonitorParams(model=model_name), grids)
    return seed, [i.summary(t0) for i in incidents], window_iou(grids, seed)


def run_corrupted(
    job: tuple[str, str, str, str, int, str, str, int],
) -> tuple[str, str, int, Any, float, float, list[str]]:
    """One kind at one severity on one sensor of a clean bag, analysed: (modality, kind, severity,
    the FaultOutcome, seconds, the fault window's IoU, the incidents matching no fault)."""
    from ros2_lmd.models.io import load_model
    from ros2_lmd.monitor.params import MonitorParams
    from ros2_lmd.replay.corrupt import Fault, corrupt_bag
    from ros2_lmd.replay.scoring import score_incidents
    from ros2_lmd.sim.faults import read_faults_csv

    clean, modality, sensor, kind, severity, folder, model_name, seed = job
    start = time.perf_counter()
    name = f"{folder}/{os.path.basename(clean)}_{sensor}_{kind}_{severity}"
    result = corrupt_bag(clean, name, [Fault(sensor, kind, severity, ONSET_S, END_S)], seed=severity)
    params = MonitorParams(model=model_name)
    grids: dict[int, np.ndarray] = {}
    incidents, t0 = monitor_bag(result.bag, load_model(model_name), params, grids)
    faults = read_faults_csv(result.faults_csv)
    score = score_incidents(incidents, faults, t0, _sensor_modalities(params), within_s=2.0)
    iou = window_iou(grids, seed)
    seconds = time.perf_counter() - start
    (outcome,) = score.faults
    print(
        f"  {sensor} {kind}:{severity}: {'detected' if outcome.detected else 'MISSED'}"
        + (f" after {outcome.delay_s:.2f} s, right sensor {outcome.right_sensor}" if outcome.detected else "")
        + f", window IoU {iou:.3f}, {len(score.false_incidents)} false incidents ({seconds:.0f} s)",
        flush=True,
    )
    false = [i.summary(t0) for i in score.false_incidents]
    return modality, kind, severity, outcome, seconds, iou, false


def monitor_bag(
    bag: Any, model: Any, params: Any, grids: dict[int, np.ndarray] | None = None
) -> tuple[list[Any], float]:
    """(incidents, the bag's start) of a bag through the monitor as `analyze` runs it
    (replay.analyze.monitor_bag); `grids`, when given, gets each frame's fused output (logits >= 0)
    by its simulated frame index (from its stamp)."""
    from ros2_lmd.replay.analyze import monitor_bag as run_bag
    from ros2_lmd.sim.drive import START_STAMP

    def on_report(report: Any) -> None:
        if grids is not None:
            grids[int(round((report.stamp - START_STAMP) * RATE_HZ))] = report.fused >= 0

    run = run_bag(bag, model, params, on_report)
    return run.incidents, run.t0


def _sensor_modalities(params: Any) -> dict[str, str]:
    from ros2_lmd.monitor.ingest import input_sensors
    from ros2_lmd.sensors.frame import MODALITIES

    return {s.name: s.modality for s in input_sensors(params, MODALITIES)}


def corrupt_scorecard(args: argparse.Namespace) -> None:
    import tempfile

    from ros2_lmd.corrupt.registry import HELD_OUT, TUNING
    from ros2_lmd.sim import default_rig

    rig = default_rig()
    severities = [int(s) for s in args.severities.split(",")]
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    wall = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder, ProcessPoolExecutor(max_workers=args.jobs) as pool:
        clean = list(pool.map(simulate_clean_bag, [(seed, folder) for seed in range(args.seeds)]))
        jobs = []
        for table in (HELD_OUT, TUNING):  # held-out first: a run cut short still has the whole held-out set
            for modality, kinds in table.items():
                sensors = rig.of_modality(modality)
                for kind in kinds:
                    if only and f"{modality}:{kind}" not in only:
                        continue
                    for seed, bag in enumerate(clean):
                        sensor = sensors[seed % len(sensors)].name
                        for severity in severities:
                            jobs.append((bag, modality, sensor, kind, severity, folder, args.model, seed))
        cleans = list(pool.map(run_clean, [(bag, seed, args.model) for seed, bag in enumerate(clean)]))
        outcomes = list(pool.map(run_corrupted, jobs))
    wall = time.perf_counter() - wall
    print(
        f"\n# corruption scorecard: model {args.model}, {args.seeds} seeds, one sensor per fault at "
        f"{ONSET_S:g}-{END_S:g} s of {DRIVE_S:g} s drives, severities {args.severities}; {len(jobs)} "
        f"drives in {wall / 60:.1f} min, {args.jobs} at once\n"
    )
    clean_iou = {seed: iou for seed, _, iou in cleans}
    found: dict[tuple[str, str, int], list[Any]] = defaultdict(list)
    drops: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    for job, (modality, kind, severity, outcome, _, iou, _) in zip(jobs, outcomes, strict=True):
        found[(modality, kind, severity)].append(outcome)
        drops[(modality, kind, severity)].append(clean_iou[job[-1]] - iou)
    header = " | ".join(f"severity {s}" for s in severities)
    for label, table in (("tuning", TUNING), ("held-out", HELD_OUT)):
        print(f"\n{label} set: recall within 2 s (right sensor) [IoU drop], per severity\n")
        print(f"| kind | {header} | delay median s |")
        print("|---|" + "---|" * len(severities) + "---|")
        every, high = [], []
        for modality, kinds in table.items():
            for kind in kinds:
                cells, delays = [], []
                for severity in severities:
                    outs = found.get((modality, kind, severity), [])
                    if not outs:
                        cells.append("-")
                        continue
                    every += outs
                    high += outs if severity >= 3 else []
                    delays += [o.delay_s for o in outs if o.detected]
                    recall = np.mean([o.detected for o in outs])
                    cells.append(
                        f"{recall:.0%} ({np.mean([o.right_sensor for o in outs]):.0%}) "
                        f"[{np.median(drops[(modality, kind, severity)]):+.3f}]"
                    )
                if any(c != "-" for c in cells):
                    delay = f"{np.median(delays):.2f}" if delays else "-"
                    print(f"| {modality} {kind} | " + " | ".join(cells) + f" | {delay} |")
        if every:
            delays = [o.delay_s for o in high if o.detected]
            print(
                f"\n{label}: recall {np.mean([o.detected for o in every]):.0%} of {len(every)} faults, "
                f"at severity >= 3 {np.mean([o.detected for o in high]) if high else float('nan'):.0%} of "
                f"{len(high)}; right sensor {np.mean([o.right_sensor for o in every]):.0%}; delay p95 "
                + (f"{np.percentile(delays, 95):.2f} s" if delays else "-")
            )
    false_clean = [line for _, lines, _ in cleans for line in lines]
    false_faulted = [line for *_, lines in outcomes for line in lines]
    print(
        f"\nclean bags: window IoU {', '.join(f'{iou:.3f}' for iou in clean_iou.values())}; "
        f"{len(false_clean)} incidents in {len(cleans) * DRIVE_S:g} fault-free s; "
        f"{len(false_faulted)} incidents in the corrupted copies matching no fault"
    )
    for line in (false_clean + false_faulted)[:20]:
        print(f"    {line}")


def main() -> None:
    from ros2_lmd.replay.scoring import score_incidents
    from ros2_lmd.sim import default_rig

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--fault-free-minutes", type=float, default=30.0, help="in the default world")
    parser.add_argument("--varied-minutes", type=float, default=10.0, help="fault-free, randomised worlds")
    parser.add_argument(
        "--varied-seed",
        type=int,
        default=2000,
        help="seed of the first randomised world (others follow): new worlds for a new measurement",
    )
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="drives run at once")
    parser.add_argument("--only", default="", help="modality:kind[,...] to run (default: all)")
    parser.add_argument("--model", default="compact_crl")
    parser.add_argument("--corrupt", action="store_true", help="score the `corrupt` kinds (issue #24)")
    parser.add_argument("--severities", default="1,3,5", help="with --corrupt: severities to run")
    args = parser.parse_args()
    if args.corrupt:
        corrupt_scorecard(args)
        return
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    rig = default_rig()
    jobs = []
    for modality, kinds in SCENARIOS.items():
        sensors = rig.of_modality(modality)
        for kind in kinds:
            if only and f"{modality}:{kind}" not in only:
                continue
            for seed in range(args.seeds):
                one = sensors[seed % len(sensors)].name  # a different sensor per seed
                jobs.append((seed, f"{one}:{kind}@{ONSET_S:g}-{END_S:g}", DRIVE_S, args.model, False))
                if len(sensors) > 1:
                    jobs.append(
                        (seed, f"{modality}:{kind}@{ONSET_S:g}-{END_S:g}", DRIVE_S, args.model, False)
                    )
    n_clean = int(np.ceil(args.fault_free_minutes * 60 / FAULT_FREE_DRIVE_S))
    jobs += [(1000 + i, "", FAULT_FREE_DRIVE_S, args.model, False) for i in range(n_clean)]
    n_varied = int(np.ceil(args.varied_minutes * 60 / FAULT_FREE_DRIVE_S))
    jobs += [(args.varied_seed + i, "", FAULT_FREE_DRIVE_S, args.model, True) for i in range(n_varied)]
    wall = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        outcomes = list(pool.map(run_drive, jobs))
    wall = time.perf_counter() - wall
    faulted = [o for o in outcomes if o.spec]
    clean = [o for o in outcomes if not o.spec]
    frames = sum(o.run.processed + o.run.dropped for o in outcomes)
    print(
        f"# incident scorecard: model {args.model}, {args.seeds} seeds, faults at {ONSET_S:g}-{END_S:g} s "
        f"of {DRIVE_S:g} s drives; {sum(o.duration_s for o in outcomes) / 60:.1f} simulated minutes, "
        f"{frames} frames ({sum(o.run.dropped for o in outcomes)} dropped) in {wall / 60:.1f} min, "
        f"{args.jobs} drives at once\n"
    )
    rows: dict[str, list[Any]] = defaultdict(list)
    false_in_faulted: list[str] = []
    for o in faulted:
        score = score_incidents(o.run.incidents, o.faults, o.run.t0, o.run.sensor_modality)
        target = o.spec.split(":")[0]
        modality = target if target in SCENARIOS else o.run.sensor_modality[target]
        kind = o.spec.split("@")[0].split(":", 1)[1]
        rows[f"{modality} {kind} ({_scope(o.spec)})"] += score.faults
        false_in_faulted += [f"{o.spec}: {i.summary(o.run.t0)}" for i in score.false_incidents]
    print(
        "| fault | events | recall <= 1.5 s | delay median / p95 s | right sensor | clear after end "
        "median / max s |"
    )
    print("|---|---|---|---|---|---|")
    everything = []
    for label, outs in rows.items():
        everything += outs
        delays = [f.delay_s for f in outs if f.detected]
        clears = [f.clear_s for f in outs if f.detected and f.clear_s is not None]
        open_at_end = sum(f.detected and f.clear_s is None for f in outs)
        print(
            f"| {label} | {len(outs)} | {np.mean([f.detected for f in outs]):.0%} | "
            + (f"{np.median(delays):.2f} / {np.percentile(delays, 95):.2f}" if delays else "-")
            + f" | {np.mean([f.right_sensor for f in outs]):.0%} | "
            + (f"{np.median(clears):.2f} / {np.max(clears):.2f}" if clears else "-")
            + (f" ({open_at_end} still open)" if open_at_end else "")
            + " |"
        )
    delays = [f.delay_s for f in everything if f.detected]
    if everything:
        print(
            f"\noverall: recall {np.mean([f.detected for f in everything]):.1%} of {len(everything)} faults "
            f"(target >= 95 %), right sensor {np.mean([f.right_sensor for f in everything]):.1%} "
            f"(target >= 90 %), delay median {np.median(delays):.2f} s, p95 "
            f"{np.percentile(delays, 95):.2f} s (target <= 1.0 s); {len(false_in_faulted)} incidents in "
            "faulted drives matching no fault"
        )
        for line in false_in_faulted[:20]:
            print(f"    {line}")
    for label, drives in (
        ("default world", [o for o in clean if not o.varied]),
        ("randomised worlds", [o for o in clean if o.varied]),
    ):
        if not drives:
            continue
        minutes = sum(o.duration_s for o in drives) / 60
        false_clean = [i.summary(o.run.t0) for o in drives for i in o.run.incidents]
        print(
            f"fault-free, {label}: {len(false_clean)} incidents in {minutes:.1f} min = "
            f"{10 * len(false_clean) / max(minutes, 1e-9):.2f} per 10 min (target <= 1)"
        )
        for line in false_clean[:20]:
            print(f"    {line}")
    missed = [f for f in everything if not f.detected]
    for f in missed[:20]:
        print(f"    missed: {f.target} {f.kind} {f.start:g}-{f.end:g} s")


if __name__ == "__main__":
    main()
