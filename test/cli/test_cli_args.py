"""The command line as a whole, from `build_parser()`: an option several subcommands take means the
same in each (one default, type and help: it is declared once, in ros2_lmd/cli/args.py), every error
exit is one line `ros2-lmd <job>: ...` through `exits.fail`, and every subcommand's --help works.
Nothing here loads a model or reads a bag past its index."""

from __future__ import annotations

import argparse
import ast
import inspect
from pathlib import Path

import pytest

from ros2_lmd import cli
from ros2_lmd.cli import args as shared
from ros2_lmd.cli.exits import EXIT_FAILED, EXIT_USAGE

CLI = Path(cli.__file__).parent

# Option names several subcommands use with a meaning of each job's own, and why. Any other name
# that two subcommands share must be one declaration (tested below).
JOB_SPECIFIC = {
    "--out": "what a job writes differs in kind: a bag, a report folder, a weights path",
    "--seed": "each job seeds its own randomness: the drive's scene, training, the validation set",
    "--faults": "demo and simulate inject faults (a SPEC); analyze scores against a timeline (a FILE)",
}


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def _options() -> dict[str, dict[str, argparse.Action]]:
    """Option (or positional) name -> {subcommand: its action}."""
    found: dict[str, dict[str, argparse.Action]] = {}
    for command, parser in _subparsers().items():
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            for name in action.option_strings or [action.dest]:
                found.setdefault(name, {})[command] = action
    return found


def test_every_subcommand_is_in_the_table_and_its_help_works(capsys):
    subparsers = _subparsers()
    assert list(subparsers) == [s.name for s in cli.SUBCOMMANDS]
    for name in subparsers:
        with pytest.raises(SystemExit) as info:
            cli.main([name, "--help"])
        assert info.value.code == 0, name
        out, err = capsys.readouterr()
        assert out.startswith(f"usage: ros2-lmd {name} ") and err == "", name


def test_an_option_shared_by_subcommands_has_one_default_type_and_help():
    shared_options = {name: users for name, users in _options().items() if len(users) > 1}
    assert set(JOB_SPECIFIC) <= set(shared_options)  # no stale exception
    differing = {}
    for name, users in shared_options.items():
        if name in JOB_SPECIFIC:
            continue
        seen = {
            (a.default, a.type, a.help, a.choices, a.metavar, a.nargs, a.const, type(a).__name__)
            for a in users.values()
        }
        if len(seen) > 1:
            differing[name] = sorted(users)
    assert differing == {}
    # the options the issue found drifting are declared once and taken by several jobs
    for name in (
        "bag",
        "--model",
        "--params-file",
        "--batch",
        "--storage",
        "--force",
        "--device",
        "--workers",
    ):
        assert len(shared_options[name]) >= 2, name


def test_a_job_default_named_in_a_shared_help_is_the_job_default():
    from ros2_lmd.cli import bags, live, models
    from ros2_lmd.monitor.params import MonitorParams
    from ros2_lmd.replay.simulate import simulate_to_bag
    from ros2_lmd.ros import demo
    from ros2_lmd.training import TrainConfig

    help_of = {name: next(iter(users.values())).help for name, users in _options().items()}
    simulate_s = inspect.signature(simulate_to_bag).parameters["duration_s"].default
    demo_s = inspect.signature(demo.main).parameters["duration"].default
    assert f"(default: {simulate_s:g}; demo: {demo_s:g})" in help_of["--duration"]
    assert f"(default: {live.PLAY_RATE:g}; demo: {demo.DEFAULT_RATE:g}," in help_of["--rate"]
    assert f"(default: {bags.BATCH_FRAMES})" in help_of["--batch"]
    assert f"(default: {models.BATCH_PAIRS})" in help_of["--batch"]
    assert models.ROBUSTNESS_BATCH == bags.BATCH_FRAMES and "analyze and robustness" in help_of["--batch"]
    assert f"evaluate {models.EVALUATE_FRAMES} synthetic" in help_of["--frames"]
    assert f"robustness {models.ROBUSTNESS_FRAMES}," in help_of["--frames"]
    assert f"else {MonitorParams().device}" in help_of["--device"]
    assert models.DEVICE == TrainConfig().device and f"evaluate: {models.DEVICE})" in help_of["--device"]
    assert f"else {MonitorParams().model})" in help_of["--model"]


def test_one_name_one_meaning_for_the_renamed_options():
    options = _options()
    assert set(options["--workers"]) == {"analyze", "fleet"}  # workers running the model
    assert set(options["--loader-workers"]) == {"train"}  # threads preparing training data
    assert set(options["--architecture"]) == {"train"}  # a registry name to train, not a model to load
    assert set(options["--frame-rate"]) == {"simulate"}  # Hz, not a playback speed
    assert "--image-size" not in options and set(options["--input-size"]) == {"convert-simplebev"}


def test_every_image_size_is_width_by_height():
    sizes = [
        (command, action)
        for users in _options().values()
        for command, action in users.items()
        if "size" in action.dest and action.dest != "batch_size"
    ]
    assert {(c, a.dest) for c, a in sizes} == {
        ("simulate", "camera_size"),
        ("convert-simplebev", "input_size"),
    }
    for _, action in sizes:
        assert action.type is shared.image_size and action.metavar == "WIDTHxHEIGHT"
    assert shared.image_size("1600x900") == (1600, 900)
    for bad in ("1600", "900x", "axb", "0x900", "1600x900x3"):
        with pytest.raises(argparse.ArgumentTypeError, match="WIDTHxHEIGHT"):
            shared.image_size(bad)


# --- every error exit: one line through exits.fail ------------------------------------------------


def test_only_exits_fail_writes_to_stderr_and_only_it_and_main_exit():
    for path in sorted(CLI.glob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "sys"
            ):
                allowed = {"exits.py": {"stderr", "exit"}, "__main__.py": {"exit"}, "__init__.py": {"argv"}}
                assert node.attr in allowed.get(path.name, set()), (
                    f"{path.name}:{node.lineno} sys.{node.attr}"
                )
            if isinstance(node, ast.Raise) and path.name != "args.py":  # args: argparse type errors
                raise AssertionError(f"{path.name}:{node.lineno}: a job returns fail(...), it does not raise")


@pytest.mark.parametrize(
    ("argv", "job", "code", "names"),
    [
        ([], "", EXIT_USAGE, ["COMMAND"]),
        (["nonsense"], "", EXIT_USAGE, ["nonsense"]),
        (["smoke", "--timeout", "soon"], "smoke", EXIT_USAGE, ["--timeout", "soon"]),
        (["monitor", "--params-file", "{tmp}/bad.yaml"], "monitor", EXIT_USAGE, ["device", "gpu"]),
        (["play", "{tmp}/bag", "--rate", "-1"], "play", EXIT_USAGE, ["--rate"]),
        (["demo", "--model", "nope"], "demo", EXIT_USAGE, ["--model nope"]),
        (["simulate", "--out", "{tmp}/d", "--camera-size", "448"], "simulate", EXIT_USAGE, ["WIDTHxHEIGHT"]),
        (["simulate", "--out", "{tmp}/d", "--frame-rate", "0"], "simulate", EXIT_USAGE, ["--frame-rate"]),
        (["simulate", "--out", "{tmp}/d", "--rate", "20"], "simulate", EXIT_USAGE, ["--rate"]),
        (
            ["nuscenes2bag", "--dataroot", "{tmp}/none", "--scene", "s", "--out", "{tmp}/b"],
            "nuscenes2bag",
            EXIT_USAGE,
            ["{tmp}/none"],
        ),
        (
            ["analyze", "{tmp}/bag", "--out", "{tmp}/o", "--workers", "0"],
            "analyze",
            EXIT_USAGE,
            ["--workers"],
        ),
        (["analyze", "{tmp}/bag", "--out", "{tmp}/o"], "analyze", EXIT_FAILED, ["{tmp}/bag"]),
        (["info", "{tmp}/bag"], "info", EXIT_FAILED, ["{tmp}/bag", "no such bag"]),
        (["fleet", "{tmp}/bag", "--out", "{tmp}/o"], "fleet", EXIT_USAGE, ["{tmp}/bag"]),
        (["train", "--dataset", "nuscenes"], "train", EXIT_USAGE, ["--dataroot"]),
        (["train", "--loader-workers", "-1"], "train", EXIT_USAGE, ["--loader-workers", "-1"]),
        (["train", "--balance", "dropout-ish"], "train", EXIT_USAGE, ["--balance", "'dropout-ish'"]),
        (["evaluate", "--out", "{tmp}/e", "--methods", "Nope"], "evaluate", EXIT_USAGE, ["Nope"]),
        (["evaluate", "--out", "{tmp}/e", "--device", "gpu"], "evaluate", EXIT_USAGE, ["'gpu'"]),
        (["convert-simplebev", "{tmp}/none.pth", "{tmp}/m"], "convert-simplebev", EXIT_FAILED, ["none.pth"]),
        (
            ["convert-simplebev", "{tmp}/none.pth", "{tmp}/m", "--image-size", "448x800"],
            "convert-simplebev",
            EXIT_USAGE,
            ["--image-size"],
        ),
    ],
)
def test_every_error_exit_is_one_line_naming_the_job(tmp_path, capsys, monkeypatch, argv, job, code, names):
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr("ros2_lmd.models.io.load_model", refuse)
    (tmp_path / "bad.yaml").write_text("/**:\n  ros__parameters:\n    device: gpu\n")
    argv = [a.format(tmp=tmp_path) for a in argv]
    try:
        result = cli.main(argv)
    except SystemExit as exit_:  # argparse's errors, through exits.fail
        result = exit_.code
    out, err = capsys.readouterr()
    assert result == code, err
    assert "Traceback" not in err and out == ""
    (line,) = err.strip().splitlines()
    assert line.startswith(f"ros2-lmd {job}: " if job else "ros2-lmd: ")
    for name in names:
        assert name.format(tmp=tmp_path) in line, (name, line)
    assert not (tmp_path / "o").exists() and not (tmp_path / "d").exists() and not (tmp_path / "e").exists()


def test_lmd_rules_replaces_the_params_files_preset(tmp_path):
    params_file = tmp_path / "params.yaml"
    params_file.write_text("/**:\n  ros__parameters:\n    lmd_rules: paper\n")
    parser = _subparsers()["analyze"]
    from_file = shared.params_and_model(
        "analyze", parser.parse_args(["bag", "--out", "o", "--params-file", str(params_file)])
    )
    given = shared.params_and_model(
        "analyze",
        parser.parse_args(["bag", "--out", "o", "--params-file", str(params_file), "--lmd-rules", "default"]),
    )
    assert not isinstance(from_file, int) and not isinstance(given, int)
    assert (from_file[0].lmd_rules, given[0].lmd_rules) == ("paper", "default")
    with pytest.raises(SystemExit):
        _subparsers()["evaluate"].parse_args(["--out", "o", "--lmd-rules", "papers"])
