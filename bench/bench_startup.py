"""Start-up of `ros2-lmd analyze` (interpreter, imports, model load, warm-up, building the compiled
decomposition) with the compile cache empty (a fresh machine) and warm (every later start: since the
cache lives in $XDG_CACHE_HOME/ros2_lmd/torchinductor it survives a reboot), side by side in one run,
on a 0.5 s drive so that the frames themselves cost little; each with the decomposition's
ahead-of-time packages (lmd/artifacts.py; the default, $ROS2_LMD_AHEAD_OF_TIME=1) and without them
($ROS2_LMD_AHEAD_OF_TIME=0: torch.compile at every start).

Two figures per case: the whole command's wall time (`ros2-lmd analyze`, as a user runs it), and a
stage breakdown of the same work done step by step in a child process: interpreter start, `import
torch`, the rest of the imports, model load, Ingest and Pipeline, `Pipeline.warm_up` with each
compiled graph's own stages (key: hashing the weights and sources; load and check: opening a
package and comparing it with its recorded eager result; eager_reference, trace, compile: building
one), then `analyze` of the drive itself (its frames, the outputs and report.html).

`--baseline DIR` times another source tree beside them (an earlier commit:
`git archive <commit> | tar -x -C DIR`), as "baseline", with its own defaults.

    source .venv/lmd_env.sh && python bench/bench_startup.py [--runs 2] [--stage-runs 1]
        [--model compact_crl] [--modes ahead-of-time,torch.compile] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = "--stages-child"  # internal: the staged start-up, in its own process (its tree: PYTHONPATH)
if CHILD not in sys.argv:
    sys.path.insert(0, str(ROOT))

MODES = {"ahead-of-time": "1", "torch.compile": "0"}  # $ROS2_LMD_AHEAD_OF_TIME


@dataclass(frozen=True)
class Case:
    """What is timed: a source tree and its $ROS2_LMD_AHEAD_OF_TIME ("": left unset)."""

    label: str
    tree: Path
    aot: str


def environment(case: Case, cache: Path) -> dict[str, str]:
    # the case's source tree first, whatever the editable install of the environment points at
    path = os.pathsep.join(p for p in (str(case.tree), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(cache), "PYTHONPATH": path}
    env.pop("ROS2_LMD_AHEAD_OF_TIME", None)
    if case.aot:
        env["ROS2_LMD_AHEAD_OF_TIME"] = case.aot
    return env


def timed_analyze(bag: Path, out: Path, model: str, cache: Path, case: Case) -> float:
    command = [sys.executable, "-m", "ros2_lmd.cli", "analyze", str(bag), "--out", str(out)]
    command += ["--model", model, "--outputs", "summary"]
    t0 = time.perf_counter()
    subprocess.run(command, env=environment(case, cache), check=True, capture_output=True, cwd=case.tree)
    return time.perf_counter() - t0


def staged(bag: Path, out: Path, model: str, cache: Path, case: Case) -> dict[str, float]:
    """Seconds per stage of one start-up and analysis, from the child's time stamps."""
    command = [sys.executable, str(Path(__file__).resolve()), CHILD, str(bag), str(out), model]
    launched = time.time()
    env = environment(case, cache)
    done = subprocess.run(command, env=env, capture_output=True, cwd=case.tree)
    if done.returncode:
        sys.exit(f"{case.label}: the staged start-up failed:\n{done.stderr.decode()[-3000:]}")
    stamps = json.loads(done.stdout.decode().strip().splitlines()[-1])
    stages = {"interpreter": stamps.pop("start") - launched}
    warm = stamps.pop("warm")
    stages.update(stamps)
    stages["start-up: launch to warmed up"] = warm - launched
    return stages


def child(bag: str, out: str, model_name: str) -> None:
    """The start-up of `ros2-lmd analyze` step by step, printing {stage: seconds} as JSON."""
    start = time.time()
    stages: dict[str, float] = {"start": start}
    mark = time.perf_counter()

    def stamp(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        stages[name] = now - mark
        mark = now

    import torch

    stamp("import torch")
    from ros2_lmd.cli.bags import BATCH_FRAMES
    from ros2_lmd.models.io import load_model
    from ros2_lmd.monitor.ingest import ingest_for_model
    from ros2_lmd.monitor.params import MonitorParams
    from ros2_lmd.monitor.pipeline import pipeline_for
    from ros2_lmd.monitor.resources import inference_plan
    from ros2_lmd.replay.analyze import analyze

    stamp("import ros2_lmd")
    model = load_model(model_name)
    stamp("load model")
    params = MonitorParams()
    ingest, _ = ingest_for_model(params, model, adapt_key_sensor=True)
    pipeline = pipeline_for(model, ingest.params, "cpu")
    stamp("ingest + pipeline")
    _, threads = inference_plan(True, prefer="throughput")  # as analyze warms up
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    pipeline.warm_up(BATCH_FRAMES)
    torch.set_num_threads(before)
    warm = time.perf_counter() - mark
    for label, compiled in (("graph", pipeline.compiled), ("self-check graph", pipeline.compiled_checking)):
        for graph in compiled.graphs.values() if compiled is not None else ():
            source = getattr(graph, "source", "") or ("torch.compile" if graph.call is not None else "eager")
            for stage, seconds in getattr(graph, "stages_s", {"build": graph.build_s}).items():
                stages[f"warm_up: {label} {stage} ({source})"] = seconds
                warm -= seconds
    stages["warm_up: model, rest"] = warm
    stages["warm"] = time.time()
    mark = time.perf_counter()
    analyze(bag, model, out, params, batch=BATCH_FRAMES, progress=False, outputs="summary")
    stamp("analyze the drive (5 frames, outputs, report)")
    stages["total"] = time.time() - start
    print(json.dumps(stages))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == CHILD:
        child(*sys.argv[2:5])
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=2, help="whole-command timings per case and cache")
    parser.add_argument("--stage-runs", type=int, default=1, help="stage breakdowns per case and cache")
    parser.add_argument("--model", default="compact_crl")
    parser.add_argument("--modes", default=",".join(MODES), help=f"of {', '.join(MODES)}")
    parser.add_argument("--baseline", type=Path, default=None, help="another source tree to time beside")
    args = parser.parse_args()
    cases = [Case("baseline", args.baseline.resolve(), "")] if args.baseline else []
    cases += [Case(mode, ROOT, MODES[mode]) for mode in args.modes.split(",") if mode]

    from ros2_lmd.replay.simulate import simulate_to_bag

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bag = simulate_to_bag(root / "drive", duration_s=0.5, seed=1, progress=False).bag
        warm_cache = {case: root / f"warm-cache-{i}" for i, case in enumerate(cases)}
        for case in cases:  # fill each case's warm cache
            timed_analyze(bag, root / "fill", args.model, warm_cache[case], case)
        walls: dict[tuple[Case, str], list[float]] = {}
        stages: dict[tuple[Case, str], list[dict[str, float]]] = {}
        n = 0

        def cache_for(case: Case, cache: str) -> Path:
            nonlocal n
            n += 1
            return warm_cache[case] if cache == "warm" else root / f"cold-cache{n}"

        for run in range(max(args.runs, args.stage_runs)):  # interleaved: load hits every case alike
            for case in cases:
                for cache in ("empty", "warm"):
                    if run < args.runs:
                        where = cache_for(case, cache)
                        walls.setdefault((case, cache), []).append(
                            timed_analyze(bag, root / f"out{n}", args.model, where, case)
                        )
                    if run < args.stage_runs:
                        where = cache_for(case, cache)
                        stages.setdefault((case, cache), []).append(
                            staged(bag, root / f"out{n}", args.model, where, case)
                        )
        print(f"analyze of a 0.5 s drive, model {args.model}, {os.cpu_count()} CPUs")
        print(f"whole command ({args.runs} runs each), min / median / max:")
        for (case, cache), values in walls.items():
            print(f"  {case.label:14s} compile cache {cache:5s}: {spread(values)}")
        for case in cases:
            if (case, "warm") in walls:
                ratio = median(walls[(case, "warm")]) / median(walls[(case, "empty")])
                print(f"  {case.label:14s} warm / empty (medians): {ratio:.2f}")
        if not stages:
            return
        print(f"stages ({args.stage_runs} runs each), median seconds (-: not run in that case):")
        names = list(dict.fromkeys(name for runs in stages.values() for run in runs for name in run))
        keys = list(stages)
        print("  " + " " * 58 + "".join(f"{c.label[:13]:>14s}" for c, _ in keys))
        print("  " + " " * 58 + "".join(f"{cache:>14s}" for _, cache in keys))
        for name in names:
            cells = []
            for key in keys:
                values = [run[name] for run in stages[key] if name in run]
                cells.append(f"{median(values):14.2f}" if values else f"{'-':>14s}")
            print(f"  {name[:58]:58s}" + "".join(cells))


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def spread(values: list[float]) -> str:
    return f"{min(values):.1f} / {median(values):.1f} / {max(values):.1f} s"


if __name__ == "__main__":
    main()
