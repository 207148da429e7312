"""The arguments several subcommands take, each declared once here with one meaning, one default
and one help text (`add_model(parser)`, ...), and the checks of their values that run before any
work. Where jobs need different defaults the declared default is None ("the job's own") and the help
says what each job uses; `test/test_cli_args.py` keeps every shared option the same everywhere.

Image sizes are WIDTHxHEIGHT everywhere (1600x900), as ROS (CameraInfo width, height), OpenCV and
nuScenes write them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ros2_lmd.cli.exits import fail
from ros2_lmd.replay.levels import OUTPUT_LEVELS

DEVICES = ("cpu", "cuda", "auto")


# --- a rosbag2 to read ----------------------------------------------------------------------------


def add_bag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", help="rosbag2 directory (MCAP or sqlite3), or its storage file")


def add_storage(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage",
        choices=("mcap", "sqlite3"),
        default="mcap",
        help="rosbag2 storage (default: %(default)s)",
    )


def add_force(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace what --out already holds (without it an existing bag is an error, and fleet "
        "reuses the complete analyses it finds)",
    )


def add_outputs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--outputs",
        choices=OUTPUT_LEVELS,
        default=None,
        help="what the output bag holds: summary (alerts, incidents, diagnostics), standard (every "
        "frame's decomposition, fused grid and markers; the other grids and PNG BEV images every 2 s "
        "while an incident is open or at an alert, never closer, every 5 s otherwise), full "
        "(every topic the node publishes, every frame); the CSVs, summary.json and report.html are "
        "the same at every level (default: analyze standard; fleet summary)",
    )


# --- a drive: how long, how fast it is played -----------------------------------------------------


def add_duration(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="S",
        help="seconds of simulated driving (default: 20; demo: 14)",
    )


def add_rate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        metavar="R",
        help="playback speed factor; 0 publishes as fast as possible (default: 1; demo: 0.5, what 2 CPU "
        "cores keep up with)",
    )


# --- the model and where it runs ------------------------------------------------------------------


def shipped_models() -> list[str]:
    """Registry names whose weights (and config) ship with the package: the names --model takes."""
    from ros2_lmd.models.io import model_files
    from ros2_lmd.models.registry import available_models, weights_path

    return [name for name in available_models() if all(f.is_file() for f in model_files(weights_path(name)))]


def default_model() -> str:
    """The model of a job given no --model and no --params-file: the node's default."""
    from ros2_lmd.monitor.params import MonitorParams

    return MonitorParams().model


def add_model(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default="",
        help=f"the model to load: {', '.join(shipped_models())}, or a path to a .safetensors file with its "
        f".json config (default: the --params-file's model where the job takes one, else {default_model()})",
    )


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


def add_params_file(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--params-file",
        default="",
        metavar="FILE",
        help="the node's ROS 2 parameter file (e.g. config/monitor.yaml: topics, model, thresholds); "
        "checked before any work",
    )


def params_and_model(job: str, args: argparse.Namespace) -> tuple[Any, str] | int:
    """The jobs that read a bag with the node's settings (analyze, fleet): the MonitorParams of
    `--params-file` (else the defaults; `--lmd-rules` replaces its lmd_rules) and the model to load
    (`--model`, else the file's), both checked; or the exit code of the one-line error that names
    what is wrong."""
    import dataclasses

    from ros2_lmd.monitor.params import MonitorParams, ParameterError, load_params_file

    try:
        params = load_params_file(args.params_file) if args.params_file else MonitorParams()
    except ParameterError as error:
        return fail(job, error)
    if getattr(args, "lmd_rules", None):
        params = dataclasses.replace(params, lmd_rules=args.lmd_rules)
    name = args.model or params.model
    from_file = args.params_file and not args.model
    problem = model_problem(name, f"model (from {args.params_file})" if from_file else "--model")
    if problem:
        return fail(job, problem)
    return params, name


def add_lmd_rules(parser: argparse.ArgumentParser) -> None:
    from ros2_lmd.models.rule_presets import RULE_PRESETS

    parser.add_argument(
        "--lmd-rules",
        default=None,
        choices=tuple(RULE_PRESETS),
        help="LMD rule preset: default (one rule per layer family) or paper (the LMD authors' "
        "configuration, chosen per module; docs/reference-comparison.md) (default: analyze and fleet: "
        "the --params-file's lmd_rules, else default; evaluate: default, and paper adds the row "
        "'LMD (paper rules)'; robustness: default)",
    )


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        default=None,
        choices=DEVICES,
        help="where the model runs; auto: CUDA when available (default: analyze: the --params-file's "
        "device, else auto, as the node; robustness, train and evaluate: cpu)",
    )


def device_or_problem(name: str) -> tuple[str, str]:
    """(the torch device `name` resolves to, "") or ("", why it cannot be used)."""
    from ros2_lmd.monitor.pipeline import resolve_device

    try:
        return str(resolve_device(name)), ""
    except RuntimeError as error:
        return "", f"--device {name}: {error}"


def add_batch(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--batch",
        type=int,
        default=None,
        metavar="N",
        help="inputs per model call: frames for analyze and robustness (default: 4), or frame pairs for "
        "evaluate (default: 8)",
    )


def add_workers(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="workers running the model in parallel: threads (analyze), or Ray workers that each load "
        "the model once (fleet) (default: one per CPU core; analyze on a GPU: 1; fleet with --address: "
        "the cluster's CPUs)",
    )


# --- data: nuScenes or the simulator --------------------------------------------------------------


def add_nuscenes(parser: argparse.ArgumentParser, required: bool = False) -> None:
    """--dataroot and --version: a nuScenes copy on disk."""
    parser.add_argument(
        "--dataroot",
        default="",
        required=required,
        metavar="DIR",
        help="nuScenes folder holding samples/, sweeps/ and v1.0-*/",
    )
    parser.add_argument(
        "--version",
        choices=("v1.0-mini", "v1.0-trainval"),
        default="v1.0-mini",
        help="nuScenes version (default: %(default)s)",
    )


def add_dataset(parser: argparse.ArgumentParser) -> None:
    """--dataset, --dataroot, --version: the data `train` and `evaluate` read."""
    parser.add_argument(
        "--dataset",
        choices=("synthetic", "nuscenes"),
        default="synthetic",
        help="synthetic (the simulator) or nuscenes (the splits the job describes; needs --dataroot) "
        "(default: %(default)s)",
    )
    add_nuscenes(parser)


def dataset_problem(args: argparse.Namespace) -> str:
    """Why the dataset arguments cannot work, or "" (checked before any work)."""
    if args.dataset == "synthetic":
        return "--dataroot and --version are for --dataset nuscenes" if args.dataroot else ""
    if not args.dataroot:
        return "--dataset nuscenes needs --dataroot (the folder holding samples/, sweeps/ and v1.0-*/)"
    folder = Path(args.dataroot) / args.version
    if not folder.is_dir():
        return f"--dataroot {args.dataroot}: no {args.version}/ folder in it (--version picks which)"
    return ""


def add_frames(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--frames",
        type=int,
        default=None,
        metavar="N",
        help="evaluation frames: simulated validation scenes, or with --dataset nuscenes the val split's "
        "samples in Simple-BEV's order (default: evaluate 24 synthetic, the whole nuScenes val split; "
        "robustness 16, on nuScenes the first 16)",
    )


# --- image sizes ----------------------------------------------------------------------------------


def image_size(text: str) -> tuple[int, int]:
    """argparse type of every image size: WIDTHxHEIGHT (1600x900) -> (width, height)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be WIDTHxHEIGHT like 1600x900, got {text!r}") from None
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"must be WIDTHxHEIGHT with both > 0, got {text!r}")
    return width, height
