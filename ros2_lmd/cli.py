"""The `ros2-lmd` command: one subcommand per job (smoke, monitor, ...). Each subcommand is a pair
of functions, `_add_<name>` (its arguments) and `_run_<name>` (the job, returning an exit code),
listed in `SUBCOMMANDS`. Subcommands import what they need lazily, so `ros2-lmd --help` and the
ROS-free ones work without ROS 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Callable, Sequence

EXIT_USAGE = 2


# --- smoke: is the ROS 2 environment usable? -----------------------------------------------------

def _add_smoke(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout", type=float, default=10.0, metavar="S",
                        help="seconds to wait for all messages (default: %(default)s)")


def _run_smoke(args: argparse.Namespace, ros_args: list[str]) -> int:
    from ros2_lmd import smoke

    return 0 if smoke.run(timeout_s=args.timeout) else 1


# --- monitor: the live node --------------------------------------------------------------------

def _add_monitor(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params-file", metavar="FILE",
                        help="ROS 2 parameter file (e.g. config/monitor.yaml); checked before "
                             "the node starts")


def _run_monitor(args: argparse.Namespace, ros_args: list[str]) -> int:
    if args.params_file:
        from ros2_lmd.params import ParameterError, load_params_file

        try:
            load_params_file(args.params_file)
        except ParameterError as error:
            print(f"ros2-lmd monitor: {error}", file=sys.stderr)
            return EXIT_USAGE
    try:
        node = importlib.import_module("ros2_lmd.node")
    except ModuleNotFoundError as error:
        if error.name != "ros2_lmd.node":
            raise  # A dependency of the node is missing: show which.
        print("ros2-lmd monitor: the monitor node is not implemented yet (ros2_lmd/node.py "
              "does not exist); see README.md, 'Status'. Nothing was started.", file=sys.stderr)
        return EXIT_USAGE
    # Contract with ros2_lmd/node.py: main(params_file, ros_args) -> exit code, where ros_args
    # are the `--ros-args ...` arguments (remappings, more parameter files) for rclpy.init().
    return node.main(params_file=args.params_file, ros_args=ros_args)


# --- The command ---------------------------------------------------------------------------------

Subcommand = tuple[str, str, Callable[[argparse.ArgumentParser], None],
                   Callable[[argparse.Namespace, list[str]], int]]

SUBCOMMANDS: list[Subcommand] = [
    ("smoke", "check the ROS 2 set-up: publish and receive each ros2_lmd message in-process "
              "over the real middleware", _add_smoke, _run_smoke),
    ("monitor", "run the monitor node without the launch system (`--ros-args ...` after the "
                "options go to ROS)", _add_monitor, _run_monitor),
    # Further jobs (demo, simulate, analyze, evaluate, train) are added here, one entry each.
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ros2-lmd",
        description="Runtime monitor for camera-radar-LiDAR BEV fusion with Layer-Wise Modality "
                    "Decomposition.")
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
    return args.run(args, ros_args)


if __name__ == "__main__":
    sys.exit(main())
