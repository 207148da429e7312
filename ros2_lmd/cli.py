"""The `ros2-lmd` command: one subcommand per job (smoke, monitor, ...). Each subcommand is a pair
of functions, `_add_<name>` (its arguments) and `_run_<name>` (the job, returning an exit code),
listed in `SUBCOMMANDS`. Subcommands import what they need lazily, so `ros2-lmd --help` and the
ROS-free ones work without ROS 2.

A bad argument or input ends a job with one line on stderr, `ros2-lmd <job>: <what was wrong>`, and a
non-zero exit code (EXIT_USAGE for arguments, 1 for a bag that cannot be analysed), never with a
traceback; what can be checked (files, model, device) is checked before any work starts.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Any

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C


def _fail(job: str, message: object, code: int = EXIT_USAGE) -> int:
    """Print the one-line error of `job` and return its exit code."""
    text = " ".join(str(message).split())  # one line, whatever the message holds
    print(f"ros2-lmd {job}: {text}", file=sys.stderr)
    return code


# --- models: what --model accepts ------------------------------------------------------------------


def shipped_models() -> list[str]:
    """Registry names whose weights (and config) ship with the package: the names --model takes."""
    from ros2_lmd.models.io import model_files
    from ros2_lmd.models.registry import available_models, weights_path

    return [name for name in available_models() if all(f.is_file() for f in model_files(weights_path(name)))]


def _params_and_model(job: str, args: argparse.Namespace) -> tuple[Any, str] | int:
    """The jobs that read a bag with the node's settings (analyze, fleet): the MonitorParams of
    `--params-file` (else the defaults) and the model to load (`--model`, else the file's), both
    checked; or the exit code of the one-line error that names what is wrong."""
    from ros2_lmd.monitor.params import MonitorParams, ParameterError, load_params_file

    try:
        params = load_params_file(args.params_file) if args.params_file else MonitorParams()
    except ParameterError as error:
        return _fail(job, error)
    name = args.model or params.model
    from_file = args.params_file and not args.model
    problem = model_problem(name, f"model (from {args.params_file})" if from_file else "--model")
    if problem:
        return _fail(job, problem)
    return params, name


def model_problem(name: str, label: str = "--model") -> str:
    """Why `name` cannot be loaded as a model, or "" if it can: a registry name needs shipped
    weights, anything else is a path that needs its .safetensors file and JSON config."""
    from ros2_lmd.models.io import model_files
    from ros2_lmd.models.registry import MODEL_NAMES

    shipped = shipped_models()
    choices = (
        f"models with shipped weights: {', '.join(shipped)}; or a path to a .safetensors file "
        "with its .json config"
    )
    if name in MODEL_NAMES:
        return (
            ""
            if name in shipped
            else f"{label} {name}: this registry model has no shipped weights ({choices})"
        )
    weights, config = model_files(name)
    if not weights.is_file():
        return f"{label} {name}: no such model ({weights} not found; {choices})"
    if not config.is_file():
        return f"{label} {name}: {config} is missing (a .safetensors model needs its JSON config beside it)"
    return ""


def _model_help(default: str = "") -> str:
    shipped = ", ".join(shipped_models())
    tail = f" (default: {default})" if default else ""
    return f"{shipped}, or a path to a .safetensors file with its .json config{tail}"


# --- smoke: is the ROS 2 environment usable? -----------------------------------------------------


def _add_smoke(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds to wait for all messages (default: %(default)s)",
    )


def _run_smoke(args: argparse.Namespace, ros_args: list[str]) -> int:
    from ros2_lmd.ros import smoke

    return 0 if smoke.run(timeout_s=args.timeout) else 1


# --- monitor: the live node --------------------------------------------------------------------


def _add_monitor(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--params-file",
        metavar="FILE",
        help="ROS 2 parameter file (e.g. config/monitor.yaml); checked before the node starts",
    )


def _run_monitor(args: argparse.Namespace, ros_args: list[str]) -> int:
    if args.params_file:
        from ros2_lmd.monitor.params import ParameterError, load_params_file

        try:
            load_params_file(args.params_file)
        except ParameterError as error:
            print(f"ros2-lmd monitor: {error}", file=sys.stderr)
            return EXIT_USAGE
    node = importlib.import_module("ros2_lmd.ros.node")  # needs rclpy: imported only for this job
    # Contract with ros2_lmd/ros/node.py: main(params_file, ros_args) -> exit code, where ros_args
    # are the `--ros-args ...` arguments (remappings, more parameter files) for rclpy.init().
    return node.main(params_file=args.params_file, ros_args=ros_args)


# --- play: publish a rosbag2 (stand-in for `ros2 bag play`) ------------------------------------


def _add_play(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", help="rosbag2 directory (MCAP or sqlite3), or its storage file")
    parser.add_argument(
        "--rate",
        type=float,
        default=1.0,
        metavar="R",
        help="playback speed factor; 0 publishes as fast as possible (default: %(default)s)",
    )
    parser.add_argument("--loop", action="store_true", help="start again at the end")
    parser.add_argument(
        "--topics", nargs="+", metavar="TOPIC", help="publish only these topics (default: all)"
    )
    parser.add_argument(
        "--delay",
        type=float,
        default=0.5,
        metavar="S",
        help="seconds to wait before the first message, so that subscribers "
        "are discovered (default: %(default)s)",
    )
    parser.add_argument(
        "--clock",
        type=float,
        nargs="?",
        const=40.0,
        default=0.0,
        metavar="HZ",
        help="publish /clock with the bag time being played, HZ times a second (default when given: "
        "%(const)s), for nodes started with use_sim_time:=true",
    )
    parser.add_argument(
        "--remap",
        "-m",
        nargs="+",
        default=[],
        metavar="OLD:=NEW",
        help="publish a recorded topic under another name, e.g. /lidar_top:=/sensing/lidar",
    )
    parser.add_argument(
        "--qos-profile-overrides-path",
        metavar="YAML",
        help="QoS per (published) topic, rosbag2's format: '/topic: {reliability: reliable, depth: 10, "
        "durability: transient_local, history: keep_last}'",
    )


def _run_play(args: argparse.Namespace, ros_args: list[str]) -> int:
    if args.rate < 0 or args.delay < 0 or args.clock < 0:
        print("ros2-lmd play: --rate, --delay and --clock must be >= 0", file=sys.stderr)
        return EXIT_USAGE
    from ros2_lmd.ros import player

    return player.main(
        args.bag,
        topics=args.topics,
        rate=args.rate,
        loop=args.loop,
        delay_s=args.delay,
        ros_args=ros_args,
        remaps=args.remap,
        qos_overrides_path=args.qos_profile_overrides_path,
        clock_hz=args.clock,
    )


# --- demo: the whole monitor on a simulated drive -------------------------------------------------


def _add_demo(parser: argparse.ArgumentParser) -> None:
    from ros2_lmd.ros.demo import DEFAULT_FAULTS

    parser.add_argument("--out", default="demo_out", help="output folder (default: %(default)s)")
    parser.add_argument("--duration", type=float, default=14.0, metavar="S", help="default: %(default)s")
    parser.add_argument("--faults", default=DEFAULT_FAULTS, metavar="SPEC", help='default: "%(default)s"')
    parser.add_argument("--seed", type=int, default=7, help="default: %(default)s")
    parser.add_argument("--model", default="compact_crl", help=_model_help("%(default)s"))
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="playback speed (default: 0.5, what 2 CPU cores keep up with)",
    )


def _run_demo(args: argparse.Namespace, ros_args: list[str]) -> int:
    problem = model_problem(args.model)
    if problem:
        return _fail("demo", problem)
    from ros2_lmd.ros import demo

    rate = demo.DEFAULT_RATE if args.rate is None else args.rate
    return demo.main(args.out, args.duration, args.faults, args.seed, args.model, rate)


# --- simulate / analyze: synthetic drives and offline bag analysis --------------------------------


def _add_simulate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        required=True,
        help="rosbag2 directory to create, e.g. drive (written as drive/drive_0.mcap, as rosbag2 names "
        "bags; a .mcap suffix is dropped); faults.csv is written next to it",
    )
    parser.add_argument(
        "--duration", type=float, default=20.0, metavar="S", help="seconds (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=0, help="scene seed (default: %(default)s)")
    parser.add_argument(
        "--faults",
        default="",
        metavar="SPEC",
        help='e.g. "camera:blackout@5-9,lidar:dropout@12-16" (target:kind[:param]@start-end)',
    )
    parser.add_argument(
        "--modalities", default="camera,radar,lidar", help="sensors to record (default: %(default)s)"
    )
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    parser.add_argument(
        "--rate",
        type=float,
        default=10.0,
        metavar="HZ",
        help="frames per second: every sensor publishes at this rate (default: %(default)s; nuScenes' "
        "LiDAR sweeps at 20 Hz)",
    )
    parser.add_argument(
        "--camera-size", default="", metavar="WxH", help="camera resolution (default: 448x256)"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace an existing bag (a rosbag2 directory) and faults.csv at --out",
    )


def _run_simulate(args: argparse.Namespace, ros_args: list[str]) -> int:
    from ros2_lmd.replay.simulate import existing_outputs, simulate_to_bag

    size = None
    if args.camera_size:
        try:
            width, height = (int(v) for v in args.camera_size.lower().split("x"))
            size = (width, height)
        except ValueError:
            return _fail("simulate", f"--camera-size must look like 448x256, got {args.camera_size!r}")
    if not args.rate > 0:
        return _fail("simulate", f"--rate must be > 0, got {args.rate:g}")
    existing = existing_outputs(args.out)
    if existing and not args.force:
        names = " and ".join(str(path) for path in existing)
        return _fail(
            "simulate",
            f"{names} already exist{'s' if len(existing) == 1 else ''}: pass --force to replace "
            f"{'it' if len(existing) == 1 else 'them'}, or choose another --out",
        )
    try:
        result = simulate_to_bag(
            args.out,
            args.duration,
            args.seed,
            args.faults or None,
            tuple(m.strip() for m in args.modalities.split(",") if m.strip()),
            args.storage,
            rate_hz=args.rate,
            camera_size=size,
            force=args.force,
        )
    except (ValueError, OSError) as error:
        return _fail("simulate", error)
    print(
        f"wrote {result.frames} frames ({result.messages} messages) to {result.bag} and the fault "
        f"timeline to {result.faults_csv}"
    )
    return 0


def _add_analyze(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", help="rosbag2 directory (MCAP or sqlite3), or its storage file")
    parser.add_argument("--model", default="", help=_model_help("the params file's model, else compact_crl"))
    parser.add_argument("--params-file", default="", help="node parameter file (topics, thresholds)")
    parser.add_argument("--faults", default="", help="ground-truth faults.csv written by `simulate`")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--batch", type=int, default=4, help="frames per model call (default: %(default)s)")
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="model calls in parallel threads (default: the CPU cores; 1 on a GPU)",
    )
    parser.add_argument(
        "--device",
        default=None,
        choices=("cpu", "cuda", "auto"),
        help="where inference runs; auto: CUDA when available (default: the params file's device, "
        "else auto, as the node)",
    )
    parser.add_argument(
        "--fail-on-incidents",
        action="store_true",
        help="exit with status 3 when the bag has sensor incidents (to gate a batch of bags)",
    )


def _run_analyze(args: argparse.Namespace, ros_args: list[str]) -> int:
    from ros2_lmd.models.io import load_model
    from ros2_lmd.monitor.params import ParameterError
    from ros2_lmd.replay.analyze import AnalyzeError, analyze, check_inputs
    from ros2_lmd.replay.bag import BagError

    if args.batch < 1 or args.workers < 0:
        return _fail("analyze", f"--batch must be >= 1 and --workers >= 0 (got {args.batch}, {args.workers})")
    loaded = _params_and_model("analyze", args)
    if isinstance(loaded, int):
        return loaded
    params, name = loaded
    # everything else that needs no model (bag index, faults file, output folder, device), up front
    try:
        check_inputs(args.bag, args.out, args.faults or None, args.device or params.device)
    except AnalyzeError as error:
        return _fail("analyze", error)
    except BagError as error:
        return _fail("analyze", error, 1)
    try:
        model = load_model(name)
    except (ValueError, OSError) as error:
        return _fail("analyze", error)
    try:
        result = analyze(
            args.bag,
            model,
            args.out,
            params,
            args.faults or None,
            batch=args.batch,
            workers=args.workers,
            device=args.device or params.device,
            model_name=name,
        )
    except (AnalyzeError, ParameterError) as error:
        return _fail("analyze", error)
    except BagError as error:
        return _fail("analyze", error, 1)
    skipped = len(result.frames) - result.processed
    print(
        f"{len(result.frames)} frames: {result.processed} processed, {skipped} skipped; "
        f"{len(result.incidents)} sensor incidents, {len(result.alerts)} alerts; wrote "
        f"{args.out}/: output/ (a rosbag2 of every published topic), frames.csv, alerts.csv, "
        "incidents.csv, summary.json, report.html"
    )
    for incident in result.incidents:
        print(f"  INCIDENT #{incident.id} {incident.summary(result.t0)}")
    for topic, reason in result.problems[:20]:
        print(f"  {topic}: {reason}")
    if len(result.problems) > 20:
        print(f"  ... and {len(result.problems) - 20} more problems")
    return 3 if args.fail_on_incidents and result.incidents else 0


# --- nuscenes2bag: real drives as rosbag2 ---------------------------------------------------------


def _add_nuscenes2bag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataroot", required=True, metavar="DIR", help="folder holding samples/, sweeps/ and v1.0-*/"
    )
    parser.add_argument("--version", choices=("v1.0-mini", "v1.0-trainval"), default="v1.0-mini")
    parser.add_argument(
        "--scene",
        action="append",
        required=True,
        metavar="NAME",
        help="scene to convert, e.g. scene-0103; repeat for more",
    )
    parser.add_argument(
        "--out",
        required=True,
        help="the bag for one scene (written as BAG/BAG_0.mcap, as rosbag2 names bags); for several, a "
        "folder with one bag per scene (BAG/scene-0103/...)",
    )
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    parser.add_argument("--force", action="store_true", help="replace existing bags at --out")


def _run_nuscenes2bag(args: argparse.Namespace, ros_args: list[str]) -> int:
    from ros2_lmd.replay.nuscenes import nuscenes_to_bags

    try:
        results = nuscenes_to_bags(
            args.dataroot, args.version, args.scene, args.out, storage=args.storage, force=args.force
        )
    except (ValueError, OSError) as error:  # NuScenesError is a ValueError; existing outputs OSError
        return _fail("nuscenes2bag", error)
    for result in results:
        lidar = result.readings.get("LIDAR_TOP", 0)
        print(
            f"wrote {result.bag}: {result.duration_s:.1f} s, {result.messages} messages "
            f"({lidar} LiDAR sweeps, {sum(result.readings.values())} sensor readings)"
        )
    return 0


# --- info: what is in a bag ------------------------------------------------------------------------


def _add_info(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", help="rosbag2 directory (MCAP or sqlite3), or its storage file")


def _run_info(args: argparse.Namespace, ros_args: list[str]) -> int:
    from ros2_lmd.replay.bag import BagError, bag_info

    try:
        print(bag_info(args.bag).describe())
    except BagError as error:
        return _fail("info", error, 1)
    return 0


# --- fleet: many bags on Ray, and the fleet report ------------------------------------------------


def _add_fleet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "bags",
        nargs="+",
        metavar="BAG_OR_DIR",
        help="rosbag2 folders, or folders below which every rosbag2 (a folder with metadata.yaml) is "
        "analysed",
    )
    parser.add_argument(
        "--out",
        required=True,
        help="output folder: what `analyze` writes, per bag in <out>/<bag name>/, and the fleet report "
        "(fleet_report.html, fleet_summary.json, fleet_bags.csv, fleet_incidents.csv)",
    )
    parser.add_argument(
        "--address",
        default=None,
        metavar="ADDRESS",
        help="an existing Ray cluster, e.g. HEAD:6379 (default: a local Ray started by this command)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="Ray workers, each loading the model once (default: this machine's CPU cores; with "
        "--address, the cluster's CPUs)",
    )
    parser.add_argument("--model", default="", help=_model_help("the params file's model, else compact_crl"))
    parser.add_argument("--params-file", default="", help="node parameter file (topics, thresholds)")
    parser.add_argument("--batch", type=int, default=4, help="frames per model call (default: %(default)s)")
    parser.add_argument(
        "--quality-frames",
        type=int,
        default=16,
        metavar="N",
        help="simulated scenes on which each modality's quality alone is measured for the imbalance "
        "diagnosis; 0: no diagnosis (default: %(default)s)",
    )
    parser.add_argument(
        "--force", action="store_true", help="analyse every bag again, even those with complete outputs"
    )


def _run_fleet(args: argparse.Namespace, ros_args: list[str]) -> int:
    from ros2_lmd.replay.fleet import FAILED, PARTIAL, FleetError, check_arguments, find_bags, run_fleet

    loaded = _params_and_model("fleet", args)
    if isinstance(loaded, int):
        return loaded
    params, name = loaded
    try:  # everything that needs neither the model nor Ray, up front
        out = check_arguments(args.out, args.workers, args.batch, args.quality_frames)
        find_bags(args.bags, exclude=out)
    except FleetError as error:
        return _fail("fleet", error)
    try:
        result = run_fleet(
            args.bags,
            out,
            name,
            params,
            workers=args.workers,
            address=args.address,
            batch=args.batch,
            quality_frames=args.quality_frames,
            force=args.force,
        )
    except FleetError as error:
        return _fail("fleet", error)
    except (ValueError, OSError) as error:  # the model file, on this machine
        return _fail("fleet", error)
    incidents = result.summary["incidents"]
    print(
        f"{len(result.outcomes)} bags: {result.count('analysed')} analysed, {result.count('reused')} reused, "
        f"{result.count(PARTIAL)} partial, {result.count(FAILED)} failed; {incidents['count']} sensor "
        f"incidents in {result.summary['driving']['hours']:.2f} h of driving; wrote {out}/: "
        "fleet_report.html, fleet_summary.json, fleet_bags.csv, fleet_incidents.csv and one folder per bag"
    )
    for outcome in result.outcomes:
        if outcome.error:
            print(f"  {outcome.status.upper()} {outcome.name}: {outcome.error}")
    leans = result.summary["imbalance"].get("leans_on")
    if leans:
        print(f"  the model leans on {', '.join(leans)} (fleet_report.html, Modality imbalance)")
    return 1 if result.count(FAILED) or result.count(PARTIAL) else 0


# --- train: the compact models on synthetic data or nuScenes ------------------------------------


def _add_train(parser: argparse.ArgumentParser) -> None:
    from ros2_lmd.training import TrainConfig

    defaults = TrainConfig()
    parser.add_argument("--model", default=defaults.model, help="registry name (default: %(default)s)")
    for name in ("train_frames", "val_frames"):
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            type=int,
            default=None,
            help=f"default: {getattr(defaults, name)} synthetic scenes; with --dataset nuscenes every sample "
            "of the split (0: all)",
        )
    for name in ("steps", "batch_size", "eval_every", "seed", "threads"):
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            type=int,
            default=getattr(defaults, name),
            help="default: %(default)s",
        )
    for name in ("lr", "weight_decay", "modality_dropout", "camera_faults", "pos_weight"):
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            type=float,
            default=getattr(defaults, name),
            help="default: %(default)s",
        )
    parser.add_argument(
        "--out",
        default="",
        help="weights path without extension (default: the shipped weights, ros2_lmd/models/weights/<model>; "
        "required with --dataset nuscenes)",
    )
    parser.add_argument(
        "--checkpoint",
        default="",
        help="resumable checkpoint (default: .cache/ros2_lmd/<model>.ckpt, <model>-nuscenes-<version>.ckpt "
        "for nuScenes; an existing one is resumed)",
    )
    _add_dataset_arguments(parser, "train and val splits")
    parser.add_argument(
        "--device",
        default=defaults.device,
        choices=("cpu", "cuda", "auto"),
        help="where the model trains; auto: CUDA when available (default: %(default)s)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=defaults.workers,
        help="threads that load and prepare the dataset's frames (default: %(default)s: the main thread)",
    )


def _add_dataset_arguments(parser: argparse.ArgumentParser, splits: str) -> None:
    """--dataset, --dataroot, --version: the data `train` and `evaluate` read."""
    parser.add_argument(
        "--dataset",
        choices=("synthetic", "nuscenes"),
        default="synthetic",
        help=f"synthetic (the simulator) or nuscenes (its {splits}; needs --dataroot) (default: %(default)s)",
    )
    parser.add_argument(
        "--dataroot", default="", metavar="DIR", help="nuScenes folder holding samples/, sweeps/ and v1.0-*/"
    )
    parser.add_argument(
        "--version",
        choices=("v1.0-mini", "v1.0-trainval"),
        default="v1.0-mini",
        help="nuScenes version (default: %(default)s)",
    )


def _dataset_problem(args: argparse.Namespace) -> str:
    """Why the dataset arguments cannot work, or "" (checked before any work)."""
    from pathlib import Path

    if args.dataset == "synthetic":
        return "--dataroot and --version are for --dataset nuscenes" if args.dataroot else ""
    if not args.dataroot:
        return "--dataset nuscenes needs --dataroot (the folder holding samples/, sweeps/ and v1.0-*/)"
    folder = Path(args.dataroot) / args.version
    if not folder.is_dir():
        return f"--dataroot {args.dataroot}: no {args.version}/ folder in it (--version picks which)"
    return ""


def _device_or_problem(name: str) -> tuple[str, str]:
    """(the torch device `name` resolves to, "") or ("", why it cannot be used)."""
    from ros2_lmd.monitor.pipeline import resolve_device

    try:
        return str(resolve_device(name)), ""
    except RuntimeError as error:
        return "", f"--device {name}: {error}"


def _run_train(args: argparse.Namespace, ros_args: list[str]) -> int:
    from dataclasses import fields

    from ros2_lmd.training import TrainConfig, train

    problem = _dataset_problem(args)
    if args.dataset != "synthetic" and not args.out:
        problem = problem or "--dataset nuscenes needs --out (the default is the shipped synthetic weights)"
    device, device_problem = _device_or_problem(args.device)
    problem = problem or device_problem
    if args.workers < 0:
        problem = problem or f"--workers must be >= 0, got {args.workers}"
    if problem:
        return _fail("train", problem)
    defaults = TrainConfig()
    for name in ("train_frames", "val_frames"):
        if getattr(args, name) is None:
            setattr(args, name, getattr(defaults, name) if args.dataset == "synthetic" else 0)
    args.device = device
    config = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    try:
        train(config)
    except (ValueError, OSError) as error:  # a dataset that cannot be read: named, without a traceback
        return _fail("train", error)
    return 0


# --- evaluate: the paper's metrics ---------------------------------------------------------------


def _add_evaluate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="compact_crl", help=_model_help("%(default)s"))
    parser.add_argument(
        "--frames",
        type=int,
        default=24,
        help="synthetic validation frames (default: %(default)s); nuScenes: the whole split",
    )
    parser.add_argument(
        "--offsets", type=int, default=12, help="perturbation offsets m = 1..N (default: %(default)s)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="first validation seed offset (default: %(default)s)"
    )
    parser.add_argument(
        "--methods", default="", help="comma-separated subset of the paper's rows (default: all)"
    )
    parser.add_argument("--out", required=True, help="output folder")
    _add_dataset_arguments(parser, "val split, in Simple-BEV's sample order")
    parser.add_argument(
        "--anchors",
        type=int,
        default=0,
        help="pair only this many samples k, spread over the set, each with its partners k + s*m over "
        "the whole set (default: 0, every sample, as the paper)",
    )
    parser.add_argument("--batch", type=int, default=8, help="pairs per model call (default: %(default)s)")
    parser.add_argument(
        "--device",
        default="cpu",
        choices=("cpu", "cuda", "auto"),
        help="where the model runs; auto: CUDA when available (default: %(default)s)",
    )


def _run_evaluate(args: argparse.Namespace, ros_args: list[str]) -> int:
    from pathlib import Path

    from ros2_lmd.eval.perturbation import paper_methods
    from ros2_lmd.eval.runner import EncodedFrames, evaluate
    from ros2_lmd.models.io import load_model
    from ros2_lmd.training import VAL_SEED_BASE, simulated_sample

    problem = model_problem(args.model) or _dataset_problem(args)
    device, device_problem = _device_or_problem(args.device)
    problem = problem or device_problem
    if args.anchors < 0 or args.batch < 1:
        problem = problem or f"--anchors must be >= 0 and --batch >= 1 (got {args.anchors}, {args.batch})"
    if problem:
        return _fail("evaluate", problem)
    model = load_model(args.model, device=device)
    methods = paper_methods()
    if args.methods:
        wanted = [m.strip() for m in args.methods.split(",")]
        unknown = sorted(set(wanted) - {m.name for m in methods})
        if unknown:
            print(
                f"ros2-lmd evaluate: unknown methods {unknown}; known: {[m.name for m in methods]}",
                file=sys.stderr,
            )
            return EXIT_USAGE
        methods = [m for m in methods if m.name in wanted]
    anchors = args.anchors or None
    if args.dataset == "synthetic":
        frames = [simulated_sample(VAL_SEED_BASE + args.seed + i)[0] for i in range(args.frames)]
        evaluate(
            model,
            frames,
            Path(args.out),
            args.model,
            offsets=args.offsets,
            methods=methods,
            anchors=anchors,
            batch=args.batch,
        )
        return 0
    from ros2_lmd.datasets.nuscenes import NuScenesTables
    from ros2_lmd.datasets.nuscenes_frames import NuScenesFrames

    try:
        val = NuScenesFrames(NuScenesTables(args.dataroot, args.version), "val", model.grid)
        if len(val) < 2:
            return _fail(
                "evaluate", f"nuScenes {args.version} at {args.dataroot}: {len(val)} val samples; need 2"
            )
        samples = EncodedFrames(model, val.frame, len(val))
        label = f"nuScenes {args.version} val samples (Simple-BEV order)"
        if anchors and anchors < len(val):
            label += f", pairs of {anchors} anchors spread over them"
        evaluate(
            model,
            [],
            Path(args.out),
            args.model,
            offsets=args.offsets,
            methods=methods,
            samples=samples,
            anchors=anchors,
            batch=args.batch,
            data_label=label,
        )
    except (ValueError, OSError) as error:  # a dataset file that cannot be read, named
        return _fail("evaluate", error)
    return 0


# --- convert-simplebev: official checkpoints to safetensors --------------------------------------


def _add_convert_simplebev(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", help="official Simple-BEV checkpoint (.pth / .ckpt)")
    parser.add_argument("dst", help="output path without extension (writes .safetensors and .json)")
    parser.add_argument(
        "--variant", default=None, help="c, cr, crm or cl (default: inferred from the weights)"
    )
    parser.add_argument(
        "--image-size",
        default="",
        metavar="HxW",
        help="camera input the converted model resizes images to (default: 448x800, the resolution the "
        "official checkpoints were trained and evaluated at; both multiples of 16)",
    )


def _run_convert_simplebev(args: argparse.Namespace, ros_args: list[str]) -> int:
    from ros2_lmd.models.conversion import convert_simplebev_checkpoint

    overrides = {}
    if args.image_size:
        try:
            height, width = (int(v) for v in args.image_size.lower().split("x"))
        except ValueError:
            return _fail(
                "convert-simplebev", f"--image-size must look like 448x800 (HxW), got {args.image_size!r}"
            )
        overrides["image_size"] = (height, width)
    try:
        config = convert_simplebev_checkpoint(args.src, args.dst, variant=args.variant, **overrides)
    except (ValueError, FileNotFoundError) as error:
        print(f"ros2-lmd convert-simplebev: {error}", file=sys.stderr)
        return 1
    height, width = config.image_size
    print(
        f"wrote {args.dst}.safetensors and {args.dst}.json (variant {config.variant}, "
        f"{config.params.get('encoder_type')}, images {height}x{width}, "
        f"cameras {', '.join(config.camera_names)})"
    )
    return 0


# --- The command ---------------------------------------------------------------------------------

Subcommand = tuple[
    str, str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace, list[str]], int]
]

SUBCOMMANDS: list[Subcommand] = [
    (
        "smoke",
        "check the ROS 2 set-up: publish and receive each ros2_lmd message in-process "
        "over the real middleware",
        _add_smoke,
        _run_smoke,
    ),
    (
        "monitor",
        "run the monitor node without the launch system (`--ros-args ...` after the options go to ROS)",
        _add_monitor,
        _run_monitor,
    ),
    (
        "play",
        "publish the messages of a rosbag2 (MCAP or sqlite3) with their recorded timing, "
        "like `ros2 bag play`",
        _add_play,
        _run_play,
    ),
    (
        "demo",
        "simulate a drive with sensor faults, play it through ROS 2 to the monitor node, print "
        "its alerts and write the report",
        _add_demo,
        _run_demo,
    ),
    (
        "simulate",
        "write a synthetic drive (with injected faults) as a rosbag2 and its fault timeline",
        _add_simulate,
        _run_simulate,
    ),
    (
        "nuscenes2bag",
        "write nuScenes scenes as rosbag2 on the monitor's default topics (cameras, radars, LiDAR, tf, "
        "annotations)",
        _add_nuscenes2bag,
        _run_nuscenes2bag,
    ),
    (
        "analyze",
        "analyse a rosbag2 offline: an output bag, frames.csv, alerts.csv, incidents.csv, summary.json, "
        "report.html",
        _add_analyze,
        _run_analyze,
    ),
    (
        "info",
        "print a rosbag2's topics, types, message counts, duration and storage, like `ros2 bag info`",
        _add_info,
        _run_info,
    ),
    (
        "fleet",
        "analyse many rosbag2s on Ray (this machine or a cluster; resumable) and write the fleet report: "
        "incidents per hour, share distributions and drift, modality imbalance",
        _add_fleet,
        _run_fleet,
    ),
    (
        "train",
        "train a compact model on synthetic data or nuScenes (resumable; writes safetensors weights)",
        _add_train,
        _run_train,
    ),
    (
        "evaluate",
        "the paper's evaluation (perturbation metrics, baselines, rule variants, SHAP, "
        "Grad-CAM) on synthetic frames or nuScenes val",
        _add_evaluate,
        _run_evaluate,
    ),
    (
        "convert-simplebev",
        "convert an official Simple-BEV checkpoint to safetensors + JSON",
        _add_convert_simplebev,
        _run_convert_simplebev,
    ),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ros2-lmd",
        description="Runtime monitor for camera-radar-LiDAR BEV fusion with Layer-Wise Modality "
        "Decomposition.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help_text, add_arguments, run in SUBCOMMANDS:
        subparser = subparsers.add_parser(name, help=help_text, description=help_text)
        add_arguments(subparser)
        subparser.set_defaults(run=run)
    return parser


def split_ros_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split the command line at `--ros-args`: ours before it, ROS's (the flag included) after,
    as `ros2 run` and launch_ros pass them."""
    argv = list(argv)
    if "--ros-args" in argv:
        at = argv.index("--ros-args")
        return argv[:at], argv[at:]
    return argv, []


def main(argv: Sequence[str] | None = None) -> int:
    own_args, ros_args = split_ros_args(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(own_args)
    try:
        return args.run(args, ros_args)
    except KeyboardInterrupt:  # Ctrl-C: the jobs clean up what they were writing on the way out
        return _fail(args.command, "interrupted", EXIT_INTERRUPTED)


if __name__ == "__main__":
    sys.exit(main())
