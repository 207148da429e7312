"""The subcommands that write or read rosbag2s offline, without ROS 2: simulate (a synthetic drive
with its fault timeline inside the bag folder), nuscenes2bag, corrupt (sensor
corruptions written into a copy of any bag), analyze (one bag), info and fleet
(many bags on Ray)."""

from __future__ import annotations

import argparse

from ros2_lmd.cli.args import (
    add_bag,
    add_batch,
    add_device,
    add_duration,
    add_force,
    add_lmd_rules,
    add_model,
    add_nuscenes,
    add_outputs,
    add_params_file,
    add_storage,
    add_workers,
    image_size,
    params_and_model,
)
from ros2_lmd.cli.exits import EXIT_FAILED, EXIT_INCIDENTS, EXIT_OK, EXIT_OUTPUT, fail

BATCH_FRAMES = 4  # --batch of analyze and fleet: frames per model call

# --- simulate: synthetic drives ------------------------------------------------------------------


def add_simulate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        required=True,
        help="rosbag2 directory to create, e.g. drive (written as drive/drive_0.mcap, as rosbag2 names "
        "bags; a .mcap suffix is dropped), with the fault timeline inside it as drive/faults.csv",
    )
    add_duration(parser)
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
    add_storage(parser)
    parser.add_argument(
        "--rig",
        choices=("uniform", "nuscenes"),
        default="uniform",
        help="sensor timing: uniform (every sensor at --frame-rate, together) or nuscenes (cameras "
        "12 Hz, LiDAR 20 Hz, radars 13 Hz, each sensor with a phase of its own) (default: %(default)s)",
    )
    parser.add_argument(
        "--frame-rate",
        type=float,
        default=None,
        metavar="HZ",
        help="with --rig uniform, frames per second: every sensor publishes at this rate (default: "
        "10; nuScenes' LiDAR sweeps at 20 Hz)",
    )
    parser.add_argument(
        "--camera-size",
        type=image_size,
        default=None,
        metavar="WIDTHxHEIGHT",
        help="camera resolution (default: 448x256)",
    )
    add_force(parser)


def run_simulate(args: argparse.Namespace, ros_args: list[str]) -> int:
    from ros2_lmd.replay.simulate import existing_outputs, simulate_to_bag

    if args.frame_rate is not None and args.rig != "uniform":
        return fail("simulate", f"--frame-rate is for --rig uniform; --rig {args.rig} has its own rates")
    rate_hz = 10.0 if args.frame_rate is None else args.frame_rate
    if not rate_hz > 0:
        return fail("simulate", f"--frame-rate must be > 0, got {rate_hz:g}")
    existing = existing_outputs(args.out)
    if existing and not args.force:
        names = " and ".join(str(path) for path in existing)
        return fail(
            "simulate",
            f"{names} already exist{'s' if len(existing) == 1 else ''}: pass --force to replace "
            f"{'it' if len(existing) == 1 else 'them'}, or choose another --out",
        )
    try:
        drive = {} if args.duration is None else {"duration_s": args.duration}  # else simulate_to_bag's
        result = simulate_to_bag(
            args.out,
            seed=args.seed,
            faults=args.faults or None,
            modalities=tuple(m.strip() for m in args.modalities.split(",") if m.strip()),
            storage=args.storage,
            rate_hz=rate_hz,
            rig=args.rig,
            camera_size=args.camera_size,
            force=args.force,
            **drive,
        )
    except (ValueError, OSError) as error:
        return fail("simulate", error)
    what = "frames" if args.rig == "uniform" else "sensor instants"
    print(
        f"wrote {result.frames} {what} ({result.messages} messages) to {result.bag} and the fault "
        f"timeline to {result.faults_csv}"
    )
    return EXIT_OK


# --- nuscenes2bag: real drives as rosbag2 ---------------------------------------------------------


def add_nuscenes2bag(parser: argparse.ArgumentParser) -> None:
    add_nuscenes(parser, required=True)
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
    add_storage(parser)
    add_force(parser)


def run_nuscenes2bag(args: argparse.Namespace, ros_args: list[str]) -> int:
    from ros2_lmd.replay.nuscenes import nuscenes_to_bags

    try:
        results = nuscenes_to_bags(
            args.dataroot, args.version, args.scene, args.out, storage=args.storage, force=args.force
        )
    except (ValueError, OSError) as error:  # NuScenesError is a ValueError; existing outputs OSError
        return fail("nuscenes2bag", error)
    for result in results:
        lidar = result.readings.get("LIDAR_TOP", 0)
        print(
            f"wrote {result.bag}: {result.duration_s:.1f} s, {result.messages} messages "
            f"({lidar} LiDAR sweeps, {sum(result.readings.values())} sensor readings)"
        )
    return EXIT_OK


# --- analyze: one bag offline ---------------------------------------------------------------------


def add_analyze(parser: argparse.ArgumentParser) -> None:
    add_bag(parser)
    add_model(parser)
    add_params_file(parser)
    parser.add_argument(
        "--faults",
        default="",
        metavar="FILE",
        help="ground-truth fault timeline to score the incidents against (default: the bag's own "
        "faults.csv, which `simulate` writes inside the bag folder, when it has one)",
    )
    parser.add_argument("--out", required=True, help="output folder")
    add_outputs(parser)
    add_batch(parser)
    add_workers(parser)
    add_device(parser)
    add_lmd_rules(parser)
    parser.add_argument(
        "--fail-on-incidents",
        action="store_true",
        help=f"exit with status {EXIT_INCIDENTS} when the bag has sensor incidents (to gate a batch of bags)",
    )


def run_analyze(args: argparse.Namespace, ros_args: list[str]) -> int:
    from ros2_lmd.models.io import load_model
    from ros2_lmd.monitor.params import ParameterError
    from ros2_lmd.replay.analyze import AnalyzeError, OutputError, analyze, check_inputs
    from ros2_lmd.replay.bag import BagError
    from ros2_lmd.replay.simulate import recorded_faults

    batch = BATCH_FRAMES if args.batch is None else args.batch
    workers = 0 if args.workers is None else args.workers  # 0: analyze picks (one per core)
    if batch < 1 or workers < 1 and args.workers is not None:
        return fail("analyze", f"--batch and --workers must be >= 1 (got {batch}, {args.workers})")
    loaded = params_and_model("analyze", args)
    if isinstance(loaded, int):
        return loaded
    params, name = loaded
    faults = args.faults or recorded_faults(args.bag)
    device = args.device or params.device
    # everything else that needs no model (bag index, faults file, output folder, device), up front
    try:
        check_inputs(args.bag, args.out, faults, device)
    except AnalyzeError as error:
        return fail("analyze", error)
    except BagError as error:
        return fail("analyze", error, EXIT_FAILED)
    try:
        model = load_model(name)
    except (ValueError, OSError) as error:
        return fail("analyze", error)
    try:
        result = analyze(
            args.bag,
            model,
            args.out,
            params,
            faults,
            batch=batch,
            workers=workers,
            device=device,
            model_name=name,
            outputs=args.outputs or "standard",
        )
    except OutputError as error:
        return fail("analyze", error, EXIT_OUTPUT)
    except (AnalyzeError, ParameterError) as error:
        return fail("analyze", error)
    except BagError as error:
        return fail("analyze", error, EXIT_FAILED)
    skipped = len(result.frames) - result.processed
    print(
        f"{len(result.frames)} frames: {result.processed} processed, {skipped} skipped; "
        f"{len(result.incidents)} sensor incidents, {len(result.alerts)} alerts; wrote "
        f"{args.out}/: output/ (a rosbag2, --outputs {result.outputs}; {result.write_s:.1f} s writing it), "
        "frames.csv, alerts.csv, incidents.csv, summary.json, report.html"
    )
    for incident in result.incidents:
        print(f"  INCIDENT #{incident.id} {incident.summary(result.t0)}")
    for topic, reason in result.problems[:20]:
        print(f"  {topic}: {reason}")
    if len(result.problems) > 20:
        print(f"  ... and {len(result.problems) - 20} more problems")
    return EXIT_INCIDENTS if args.fail_on_incidents and result.incidents else EXIT_OK


# --- info: what is in a bag ------------------------------------------------------------------------


def add_info(parser: argparse.ArgumentParser) -> None:
    add_bag(parser)


def run_info(args: argparse.Namespace, ros_args: list[str]) -> int:
    from ros2_lmd.replay.bag import BagError, bag_info

    try:
        print(bag_info(args.bag).describe())
    except BagError as error:
        return fail("info", error, EXIT_FAILED)
    return EXIT_OK


# --- fleet: many bags on Ray, and the fleet report ------------------------------------------------


def add_fleet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "bags",
        nargs="+",
        metavar="BAG_OR_DIR",
        help="rosbag2 folders, or folders below which every rosbag2 (a folder with metadata.yaml) is "
        "analysed; a bag's own faults.csv (what `simulate` writes inside it) is scored in its report",
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
    add_workers(parser)
    add_model(parser)
    add_params_file(parser)
    add_lmd_rules(parser)
    add_batch(parser)
    add_outputs(parser)
    parser.add_argument(
        "--quality-frames",
        type=int,
        default=16,
        metavar="N",
        help="simulated scenes on which each modality's quality alone is measured for the imbalance "
        "diagnosis; 0: no diagnosis (default: %(default)s)",
    )
    add_force(parser)


def run_fleet(args: argparse.Namespace, ros_args: list[str]) -> int:
    from ros2_lmd.replay.fleet import FAILED, PARTIAL, FleetError, check_arguments, find_bags, run_fleet

    loaded = params_and_model("fleet", args)
    if isinstance(loaded, int):
        return loaded
    params, name = loaded
    batch = BATCH_FRAMES if args.batch is None else args.batch
    try:  # everything that needs neither the model nor Ray, up front
        out = check_arguments(args.out, args.workers, batch, args.quality_frames)
        find_bags(args.bags, exclude=out)
    except FleetError as error:
        return fail("fleet", error)
    try:
        result = run_fleet(
            args.bags,
            out,
            name,
            params,
            workers=args.workers,
            address=args.address,
            batch=batch,
            quality_frames=args.quality_frames,
            force=args.force,
            outputs=args.outputs or "summary",
        )
    except FleetError as error:
        return fail("fleet", error)
    except (ValueError, OSError) as error:  # the model file, on this machine
        return fail("fleet", error)
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
    if result.count(FAILED) or result.count(PARTIAL):
        broken = f"{result.count(FAILED)} failed and {result.count(PARTIAL)} partial bags (listed above)"
        return fail("fleet", broken, EXIT_FAILED)
    return EXIT_OK


# --- corrupt: sensor corruptions written into a copy of any bag ---------------------------------


def add_corrupt(parser: argparse.ArgumentParser) -> None:
    add_bag(parser)
    parser.add_argument(
        "--out",
        required=True,
        help="rosbag2 directory to create (as simulate's --out), with the fault timeline inside it as "
        "OUT/faults.csv, which `analyze` scores by default",
    )
    parser.add_argument(
        "--fault",
        action="append",
        required=True,
        metavar="TARGET:KIND[:SEVERITY]@T0-T1",
        help="a corruption: TARGET a sensor (cam_front, radar_front, lidar_top, ...) or a modality "
        "(camera, radar, lidar: all its sensors), KIND one of docs/corruptions.md's, SEVERITY 1-5 "
        "(default 3), T0-T1 seconds from the bag's start; repeat for more",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the corruptions' randomness (default: %(default)s)"
    )
    add_params_file(parser)
    add_storage(parser)
    add_force(parser)


def run_corrupt(args: argparse.Namespace, ros_args: list[str]) -> int:
    from ros2_lmd.monitor.params import MonitorParams, ParameterError, load_params_file
    from ros2_lmd.replay.bag import BagError
    from ros2_lmd.replay.corrupt import corrupt_bag, parse_fault

    try:
        faults = [parse_fault(text) for text in args.fault]
        params = load_params_file(args.params_file) if args.params_file else MonitorParams()
    except (ValueError, ParameterError) as error:
        return fail("corrupt", error)
    try:
        result = corrupt_bag(
            args.bag, args.out, faults, seed=args.seed, params=params, storage=args.storage, force=args.force
        )
    except BagError as error:
        return fail("corrupt", error, EXIT_FAILED)
    except (ValueError, OSError) as error:
        return fail("corrupt", error)
    print(
        f"wrote {result.bag}: {result.messages} messages ({result.corrupted} corrupted, {result.dropped} "
        f"dropped) and the fault timeline to {result.faults_csv}"
    )
    return EXIT_OK
