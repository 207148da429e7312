"""The subcommands that run over ROS 2: smoke (is the set-up usable?), monitor (the node), play
(publish a bag) and demo (all of it on a simulated drive). Each imports rclpy-bound code only
inside its job, so the rest of the command works without ROS 2."""

from __future__ import annotations

import argparse
import importlib

from ros2_lmd.cli.args import (
    add_bag,
    add_duration,
    add_model,
    add_params_file,
    add_rate,
    default_model,
    model_problem,
)
from ros2_lmd.cli.exits import EXIT_FAILED, EXIT_OK, fail

PLAY_RATE = 1.0  # --rate of play: the recorded timing

# --- smoke: is the ROS 2 environment usable? -----------------------------------------------------


def add_smoke(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds to wait for all messages (default: %(default)s)",
    )


def run_smoke(args: argparse.Namespace, ros_args: list[str]) -> int:
    from ros2_lmd.ros import smoke

    if smoke.run(timeout_s=args.timeout):
        return EXIT_OK
    return fail("smoke", "a message did not come back, or came back different (listed above)", EXIT_FAILED)


# --- monitor: the live node --------------------------------------------------------------------


def add_monitor(parser: argparse.ArgumentParser) -> None:
    add_params_file(parser)


def run_monitor(args: argparse.Namespace, ros_args: list[str]) -> int:
    if args.params_file:
        from ros2_lmd.monitor.params import ParameterError, load_params_file

        try:
            load_params_file(args.params_file)
        except ParameterError as error:
            return fail("monitor", error)
    node = importlib.import_module("ros2_lmd.ros.node")  # needs rclpy: imported only for this job
    # Contract with ros2_lmd/ros/node.py: main(params_file, ros_args) -> exit code, where ros_args
    # are the `--ros-args ...` arguments (remappings, more parameter files) for rclpy.init().
    return node.main(params_file=args.params_file or None, ros_args=ros_args)


# --- play: publish a rosbag2 (stand-in for `ros2 bag play`) ------------------------------------


def add_play(parser: argparse.ArgumentParser) -> None:
    add_bag(parser)
    add_rate(parser)
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


def run_play(args: argparse.Namespace, ros_args: list[str]) -> int:
    rate = PLAY_RATE if args.rate is None else args.rate
    if rate < 0 or args.delay < 0 or args.clock < 0:
        return fail("play", "--rate, --delay and --clock must be >= 0")
    from ros2_lmd.ros import player

    return player.main(
        args.bag,
        topics=args.topics,
        rate=rate,
        loop=args.loop,
        delay_s=args.delay,
        ros_args=ros_args,
        remaps=args.remap,
        qos_overrides_path=args.qos_profile_overrides_path,
        clock_hz=args.clock,
    )


# --- demo: the whole monitor on a simulated drive -------------------------------------------------


def add_demo(parser: argparse.ArgumentParser) -> None:
    from ros2_lmd.ros.demo import DEFAULT_FAULTS

    parser.add_argument("--out", default="demo_out", help="output folder (default: %(default)s)")
    add_duration(parser)
    parser.add_argument("--faults", default=DEFAULT_FAULTS, metavar="SPEC", help='default: "%(default)s"')
    parser.add_argument("--seed", type=int, default=7, help="default: %(default)s")
    add_model(parser)
    add_rate(parser)


def run_demo(args: argparse.Namespace, ros_args: list[str]) -> int:
    model = args.model or default_model()
    problem = model_problem(model)
    if problem:
        return fail("demo", problem)
    from ros2_lmd.ros import demo

    rate = demo.DEFAULT_RATE if args.rate is None else args.rate
    drive = {} if args.duration is None else {"duration": args.duration}  # else demo.main's default
    return demo.main(args.out, faults=args.faults, seed=args.seed, model=model, rate=rate, **drive)
