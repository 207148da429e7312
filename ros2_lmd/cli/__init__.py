"""The `ros2-lmd` command: one subcommand per job, listed in `SUBCOMMANDS` with the pair of
functions that make it, `add_<job>` (its arguments) and `run_<job>` (the job, returning an exit
code). The jobs live by group: `live` (over ROS 2: smoke, monitor, play, demo), `bags` (offline
rosbag2s: simulate, nuscenes2bag, corrupt, analyze, info, fleet) and `models` (train, evaluate,
robustness, convert-simplebev); the arguments several jobs share are declared once, in `args`.
Subcommands import what they need lazily, so `ros2-lmd --help` and the ROS-free ones work without ROS 2.

A bad argument or input ends a job with one line on stderr, `ros2-lmd <job>: <what was wrong>`
(`exits.fail`, the one error path, argparse's errors included), never with a traceback; what can be
checked (files, model, device) is checked before any work starts. Exit codes (`exits`): 0 done,
1 an input that cannot be used (an unreadable bag or checkpoint; fleet: failed or partial bags; a
failed smoke check), 2 a bad argument, 3 `analyze --fail-on-incidents` found incidents, 130
interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NamedTuple

from ros2_lmd.cli import bags, live, models
from ros2_lmd.cli.args import model_problem, shipped_models
from ros2_lmd.cli.exits import (
    EXIT_FAILED,
    EXIT_INCIDENTS,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    Parser,
    fail,
)

__all__ = [
    "EXIT_FAILED",
    "EXIT_INCIDENTS",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "SUBCOMMANDS",
    "build_parser",
    "main",
    "model_problem",
    "shipped_models",
    "split_ros_args",
]


class Subcommand(NamedTuple):
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, list[str]], int]


SUBCOMMANDS: list[Subcommand] = [
    Subcommand(
        "smoke",
        "check the ROS 2 set-up: publish and receive each ros2_lmd message in-process "
        "over the real middleware",
        live.add_smoke,
        live.run_smoke,
    ),
    Subcommand(
        "monitor",
        "run the monitor node without the launch system (`--ros-args ...` after the options go to ROS)",
        live.add_monitor,
        live.run_monitor,
    ),
    Subcommand(
        "play",
        "publish the messages of a rosbag2 (MCAP or sqlite3) with their recorded timing, "
        "like `ros2 bag play`",
        live.add_play,
        live.run_play,
    ),
    Subcommand(
        "demo",
        "simulate a drive with sensor faults, play it through ROS 2 to the monitor node, print "
        "its alerts and write the report",
        live.add_demo,
        live.run_demo,
    ),
    Subcommand(
        "simulate",
        "write a synthetic drive (with injected faults) as a rosbag2, its fault timeline inside it",
        bags.add_simulate,
        bags.run_simulate,
    ),
    Subcommand(
        "nuscenes2bag",
        "write nuScenes scenes as rosbag2 on the monitor's default topics (cameras, radars, LiDAR, tf, "
        "annotations)",
        bags.add_nuscenes2bag,
        bags.run_nuscenes2bag,
    ),
    Subcommand(
        "corrupt",
        "write a copy of any rosbag2 with sensor corruptions (fog, noise, soiling, beam loss, misalignment, "
        "clock faults, ...; severities 1-5) in time windows, its fault timeline inside it",
        bags.add_corrupt,
        bags.run_corrupt,
    ),
    Subcommand(
        "analyze",
        "analyse a rosbag2 offline: an output bag, frames.csv, alerts.csv, incidents.csv, summary.json, "
        "report.html",
        bags.add_analyze,
        bags.run_analyze,
    ),
    Subcommand(
        "info",
        "print a rosbag2's topics, types, message counts, duration and storage, like `ros2 bag info`",
        bags.add_info,
        bags.run_info,
    ),
    Subcommand(
        "fleet",
        "analyse many rosbag2s on Ray (this machine or a cluster; resumable) and write the fleet report: "
        "incidents per hour, share distributions and drift, modality imbalance",
        bags.add_fleet,
        bags.run_fleet,
    ),
    Subcommand(
        "train",
        "train a compact model on synthetic data or nuScenes (train and val splits; resumable; writes "
        "safetensors weights)",
        models.add_train,
        models.run_train,
    ),
    Subcommand(
        "evaluate",
        "the paper's evaluation (perturbation metrics, baselines, rule variants, SHAP, "
        "Grad-CAM) on synthetic frames or nuScenes val",
        models.add_evaluate,
        models.run_evaluate,
    ),
    Subcommand(
        "robustness",
        "run a model under every corruption of the library and severity on a fixed evaluation set: IoU, "
        "resistance ability (RA, mRA), LMD share shifts, IoU of each modality alone, the sensor that hurts "
        "most",
        models.add_robustness,
        models.run_robustness,
    ),
    Subcommand(
        "convert-simplebev",
        "convert an official Simple-BEV checkpoint to safetensors + JSON",
        models.add_convert_simplebev,
        models.run_convert_simplebev,
    ),
]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
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
    args, unknown = build_parser().parse_known_args(own_args)
    if unknown:  # what parse_args would refuse, named with the job it was given to
        hint = f"see `ros2-lmd {args.command} --help`"
        return fail(args.command, f"unrecognized arguments: {' '.join(unknown)} ({hint})", EXIT_USAGE)
    try:
        return args.run(args, ros_args)
    except KeyboardInterrupt:  # Ctrl-C: the jobs clean up what they were writing on the way out
        return fail(args.command, "interrupted", EXIT_INTERRUPTED)
