"""The subcommands about the fusion models themselves: train (the compact models, on synthetic data or
nuScenes), evaluate (the paper's metrics), robustness (the model under the corruption library) and
convert-simplebev (official checkpoints to safetensors)."""

from __future__ import annotations

import argparse

from ros2_lmd.cli.args import (
    add_batch,
    add_dataset,
    add_device,
    add_frames,
    add_lmd_rules,
    add_model,
    dataset_problem,
    default_model,
    device_or_problem,
    image_size,
    model_problem,
)
from ros2_lmd.cli.exits import EXIT_FAILED, EXIT_OK, fail

DEVICE = "cpu"  # --device of evaluate when none is named (train: TrainConfig's)
BATCH_PAIRS = 8  # --batch of evaluate: frame pairs per model call
EVALUATE_FRAMES = 24  # --frames of evaluate: synthetic validation frames
ROBUSTNESS_FRAMES = 16  # --frames of robustness
ROBUSTNESS_BATCH = 4  # --batch of robustness: frames per model call

# --- train: the compact models on synthetic data or nuScenes ------------------------------------


def add_train(parser: argparse.ArgumentParser) -> None:
    from ros2_lmd.training import BALANCES, TrainConfig

    defaults = TrainConfig()
    parser.add_argument(
        "--architecture",
        dest="model",
        default=defaults.model,
        metavar="NAME",
        help="registry name of the model to train (default: %(default)s)",
    )
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
    parser.add_argument(
        "--balance",
        choices=BALANCES,
        default=defaults.balance,
        help="how the weaker sensors are kept learning: none (every sample sees every sensor), "
        "modality-dropout (a share, --modality-dropout, of the samples sees a random proper subset of "
        "the sensors: the shipped models') or unimodal-aux (auxiliary per-sensor heads and losses, "
        "weight --aux-weight, that are not saved); docs/robustness.md, Training remedy "
        "(default: %(default)s)",
    )
    for name in ("lr", "weight_decay", "modality_dropout", "aux_weight", "camera_faults", "pos_weight"):
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
    add_dataset(parser)
    add_device(parser)
    parser.add_argument(
        "--loader-workers",
        dest="workers",
        type=int,
        default=defaults.workers,
        metavar="N",
        help="threads that load and prepare the dataset's frames (default: %(default)s: the main thread)",
    )


def run_train(args: argparse.Namespace, ros_args: list[str]) -> int:
    from dataclasses import fields

    from ros2_lmd.training import TrainConfig, train

    problem = dataset_problem(args)
    if args.dataset != "synthetic" and not args.out:
        problem = problem or "--dataset nuscenes needs --out (the default is the shipped synthetic weights)"
    device, device_problem = device_or_problem(args.device or TrainConfig().device)
    problem = problem or device_problem
    if args.workers < 0:
        problem = problem or f"--loader-workers must be >= 0, got {args.workers}"
    if problem:
        return fail("train", problem)
    defaults = TrainConfig()
    for name in ("train_frames", "val_frames"):
        if getattr(args, name) is None:
            setattr(args, name, getattr(defaults, name) if args.dataset == "synthetic" else 0)
    args.device = device
    config = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    try:
        train(config)
    except (ValueError, OSError) as error:  # a dataset that cannot be read: named, without a traceback
        return fail("train", error)
    return EXIT_OK


# --- evaluate: the paper's metrics ---------------------------------------------------------------


def add_evaluate(parser: argparse.ArgumentParser) -> None:
    add_model(parser)
    add_frames(parser)
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
    add_dataset(parser)
    parser.add_argument(
        "--anchors",
        type=int,
        default=0,
        help="pair only this many samples k, spread over the set, each with its partners k + s*m over "
        "the whole set (default: 0, every sample, as the paper)",
    )
    add_batch(parser)
    add_device(parser)
    add_lmd_rules(parser)


def run_evaluate(args: argparse.Namespace, ros_args: list[str]) -> int:
    from pathlib import Path

    from ros2_lmd.eval.perturbation import paper_methods
    from ros2_lmd.eval.runner import EncodedFrames, evaluate
    from ros2_lmd.models.io import load_model
    from ros2_lmd.models.rule_presets import rule_preset
    from ros2_lmd.training import VAL_SEED_BASE, simulated_sample

    model_name = args.model or default_model()
    batch = BATCH_PAIRS if args.batch is None else args.batch
    problem = model_problem(model_name) or dataset_problem(args)
    device, device_problem = device_or_problem(args.device or DEVICE)
    problem = problem or device_problem
    if args.anchors < 0 or batch < 1:
        problem = problem or f"--anchors must be >= 0 and --batch >= 1 (got {args.anchors}, {batch})"
    lmd_rules = args.lmd_rules or "default"
    methods = paper_methods(lmd_rules)
    if args.methods:
        wanted = [m.strip() for m in args.methods.split(",")]
        unknown = sorted(set(wanted) - {m.name for m in methods})
        if unknown:
            problem = problem or f"--methods: unknown {unknown}; known: {[m.name for m in methods]}"
        methods = [m for m in methods if m.name in wanted]
    if problem:
        return fail("evaluate", problem)
    model = load_model(model_name, device=device)
    anchors = args.anchors or None
    if args.dataset == "synthetic":
        count = EVALUATE_FRAMES if args.frames is None else args.frames
        frames = [simulated_sample(VAL_SEED_BASE + args.seed + i)[0] for i in range(count)]
        evaluate(
            model,
            frames,
            Path(args.out),
            model_name,
            offsets=args.offsets,
            methods=methods,
            anchors=anchors,
            batch=batch,
            rules=rule_preset(lmd_rules),
        )
        return EXIT_OK
    from ros2_lmd.datasets.nuscenes import NuScenesTables
    from ros2_lmd.datasets.nuscenes_frames import NuScenesFrames

    try:
        val = NuScenesFrames(NuScenesTables(args.dataroot, args.version), "val", model.grid)
        if len(val) < 2:
            return fail(
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
            model_name,
            offsets=args.offsets,
            methods=methods,
            samples=samples,
            anchors=anchors,
            batch=batch,
            data_label=label,
            rules=rule_preset(lmd_rules),
        )
    except (ValueError, OSError) as error:  # a dataset file that cannot be read, named
        return fail("evaluate", error)
    return EXIT_OK


# --- robustness: the model under every corruption of the library --------------------------------


def add_robustness(parser: argparse.ArgumentParser) -> None:
    from ros2_lmd.replay.robustness import DEFAULT_SENSOR_SEVERITY

    add_model(parser)
    parser.add_argument("--out", required=True, help="output folder (robustness.json, .csv, .html)")
    add_dataset(parser)
    parser.add_argument(
        "--kinds",
        default="all",
        help="comma-separated corruptions: KIND (on every modality that has it), MODALITY (all its kinds) "
        "or MODALITY:KIND, e.g. camera:fog,lidar,ghosts; docs/corruptions.md lists them "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--severities",
        default="1,2,3,4,5",
        help="comma-separated severities, 1 to 5 (default: %(default)s)",
    )
    parser.add_argument(
        "--sensor-severity",
        type=int,
        default=DEFAULT_SENSOR_SEVERITY,
        metavar="S",
        help="severity of the pass that corrupts each camera and radar in turn; 0: no such pass "
        "(default: %(default)s)",
    )
    add_frames(parser)
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="the corruptions' randomness, and the first simulated validation scene's offset "
        "(default: %(default)s)",
    )
    add_batch(parser)
    add_device(parser)
    add_lmd_rules(parser)


def run_robustness(args: argparse.Namespace, ros_args: list[str]) -> int:
    from functools import partial
    from pathlib import Path

    from ros2_lmd.corrupt import SEVERITIES
    from ros2_lmd.replay.robustness import Selection, parse_kinds, parse_severities

    model_name = args.model or default_model()
    frames = ROBUSTNESS_FRAMES if args.frames is None else args.frames
    batch = ROBUSTNESS_BATCH if args.batch is None else args.batch
    problem = model_problem(model_name) or dataset_problem(args)
    device, device_problem = device_or_problem(args.device or DEVICE)
    problem = problem or device_problem
    try:
        kinds = parse_kinds(args.kinds)
        severities = parse_severities(args.severities)
    except ValueError as error:
        problem = problem or str(error)
    if args.sensor_severity != 0 and args.sensor_severity not in SEVERITIES:
        problem = (
            problem
            or f"--sensor-severity: {args.sensor_severity} is not a severity (valid: 0, 1, 2, 3, 4, 5)"
        )
    if frames < 1 or batch < 1:
        problem = problem or f"--frames and --batch must be >= 1 (got {frames}, {batch})"
    if problem:
        return fail("robustness", problem)
    from ros2_lmd.models.io import load_model
    from ros2_lmd.models.rule_presets import rule_preset
    from ros2_lmd.replay.robustness import nuscenes_set, simulated_set
    from ros2_lmd.replay.robustness import run_robustness as run

    model = load_model(model_name, device=device)
    if args.dataset == "synthetic":
        data = partial(simulated_set, model, frames, args.seed)
    else:
        data = partial(nuscenes_set, model, args.dataroot, args.version, frames)
    selection = Selection(kinds, severities, args.sensor_severity or None)
    try:
        result = run(
            model,
            Path(args.out),
            selection,
            data,
            model_name,
            args.seed,
            batch,
            rule_preset(args.lmd_rules or "default"),
        )
    except (ValueError, OSError) as error:  # a dataset file that cannot be read, named
        return fail("robustness", error)
    report = result.report
    worst = report["worst_kind"]
    mra = "n/a" if report["mra"] is None else f"{report['mra']:.3f}"
    print(
        f"mRA {mra} over {len(report['kinds'])} kinds"
        + (f"; worst {worst['modality']}:{worst['kind']} (RA {worst['ra']:.3f})" if worst else "")
        + f"; wrote {', '.join(str(f) for f in result.files)}"
    )
    return EXIT_OK


# --- convert-simplebev: official checkpoints to safetensors --------------------------------------


def add_convert_simplebev(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", help="official Simple-BEV checkpoint (.pth / .ckpt)")
    parser.add_argument("dst", help="output path without extension (writes .safetensors and .json)")
    parser.add_argument(
        "--variant", default=None, help="c, cr, crm, cl or crml (default: inferred from the weights)"
    )
    parser.add_argument(
        "--input-size",
        type=image_size,
        default=None,
        metavar="WIDTHxHEIGHT",
        help="camera input the converted model resizes images to (default: 800x448, the resolution the "
        "official checkpoints were trained and evaluated at; both multiples of 16)",
    )


def run_convert_simplebev(args: argparse.Namespace, ros_args: list[str]) -> int:
    from ros2_lmd.models.conversion import convert_simplebev_checkpoint

    overrides = {}
    if args.input_size:
        width, height = args.input_size
        overrides["image_size"] = (height, width)  # the model config's order
    try:
        config = convert_simplebev_checkpoint(args.src, args.dst, variant=args.variant, **overrides)
    except (ValueError, FileNotFoundError) as error:
        return fail("convert-simplebev", error, EXIT_FAILED)
    height, width = config.image_size
    print(
        f"wrote {args.dst}.safetensors and {args.dst}.json (variant {config.variant}, "
        f"{config.params.get('encoder_type')}, images {width}x{height}, "
        f"cameras {', '.join(config.camera_names)})"
    )
    return EXIT_OK
