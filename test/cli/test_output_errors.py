"""The last error paths of `analyze` (#29): a full disk (or any OSError writing the outputs) is one
line naming the folder and what was being written, exit EXIT_OUTPUT (not a bad bag's EXIT_FAILED),
with the folder left as it was; topics of the wrong type or with unusable data leave every instant
in frames.csv (processed or skipped, with the reason); an empty metadata.yaml is named as such."""

from __future__ import annotations

import csv
import errno
import subprocess
from pathlib import Path

import pytest
from support.bag_rewrite import as_string, rewrite_bag, tiny_image
from support.cli import one_line_error, run_cli

from ros2_lmd.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_OUTPUT
from ros2_lmd.replay.simulate import simulate_to_bag

pytestmark = pytest.mark.slow  # every test analyses a drive with the shipped model

FRAMES = 6


@pytest.fixture(scope="module")
def drive(tmp_path_factory):
    folder = tmp_path_factory.mktemp("output_errors")
    return simulate_to_bag(
        folder / "drive", duration_s=FRAMES / 10, seed=3, camera_size=(224, 128), progress=False
    )


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


# --- a full disk ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target, what",
    [
        ("ros2_lmd.replay.bag.ChunkedMcap.write", "the output bag (output/)"),
        ("ros2_lmd.replay.analyze.write_frames_csv", "the tables (frames.csv"),
        ("ros2_lmd.replay.analyze.write_summary_json", "the summary (summary.json)"),
    ],
)
def test_a_full_disk_is_one_line_with_its_own_exit_and_the_folder_as_it_was(
    drive, tmp_path, capsys, monkeypatch, target, what
):
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "analyze", drive.bag, "--out", out, "--outputs", "summary")
    assert code == EXIT_OK, err
    before = _snapshot(out)
    monkeypatch.setattr(target, _no_space)
    code, stdout, err = run_cli(capsys, "analyze", drive.bag, "--out", out)
    assert code == EXIT_OUTPUT != EXIT_FAILED
    one_line_error(err, f"output folder {out}", what, "No space left on device")
    assert "frames:" not in stdout
    assert _snapshot(out) == before  # the earlier result intact
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no staging folder left
    fresh = tmp_path / "new" / "out"
    code, _, err = run_cli(capsys, "analyze", drive.bag, "--out", fresh)
    assert code == EXIT_OUTPUT and not (tmp_path / "new").exists()


def test_a_full_tmpfs_is_one_line_with_its_own_exit(drive, tmp_path, capsys):
    mount = tmp_path / "small"
    mount.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        out = mount / "out"
        code, _, err = run_cli(capsys, "analyze", drive.bag, "--out", out, "--outputs", "full")
        assert code == EXIT_OUTPUT
        one_line_error(err, f"output folder {out}", "No space left on device")
        assert not out.exists() and not list(mount.iterdir())
    finally:
        if subprocess.run(["umount", str(mount)]).returncode != 0:  # busy: a file there still open
            subprocess.run(["umount", "-l", str(mount)])
            pytest.fail("a file on the full disk was left open")


# --- instants whose data cannot be used -------------------------------------------------------------


def test_every_instant_is_in_frames_csv_when_topics_have_the_wrong_type_or_unusable_data(
    drive, tmp_path, capsys
):
    # the key sensor's topic carries strings, the fallback key's (cam_front) 2x2 images that
    # disagree with their CameraInfo: no instant may vanish
    bag = tmp_path / "damaged"
    rewrite_bag(drive.bag, bag, {"/lidar_top": as_string, "/cam_front/image_rect_compressed": tiny_image})
    out = tmp_path / "out"
    code, stdout, err = run_cli(capsys, "analyze", bag, "--out", out)
    assert code == EXIT_OK, err
    rows = _rows(out / "frames.csv")
    assert len(rows) == FRAMES and f"{FRAMES} frames:" in stdout
    assert [row["since_start_s"] for row in rows] == [f"{i / 10:.6f}" for i in range(FRAMES)]
    skipped = [row for row in rows if row["status"] == "skipped"]
    assert len(skipped) >= FRAMES - 1  # the first image may come before its CameraInfo
    for row in skipped:
        assert row["skip_reason"].startswith("/cam_front/image_rect_compressed: image size 2 x 2")
    assert any(
        line.strip().startswith("/lidar_top: messages of type std_msgs/msg/String")
        for line in stdout.splitlines()
    )


# --- metadata.yaml ----------------------------------------------------------------------------------


def test_an_empty_metadata_yaml_is_named_and_the_mcap_still_analysed(drive, tmp_path, capsys):
    bag = tmp_path / "empty_meta"
    rewrite_bag(drive.bag, bag, {})
    (bag / "metadata.yaml").write_text("")
    code, _, err = run_cli(capsys, "info", bag)
    assert code == EXIT_FAILED
    one_line_error(err, f"{bag / 'metadata.yaml'} is empty")
    assert "NoneType" not in err
    out = tmp_path / "out"
    code, stdout, err = run_cli(capsys, "analyze", bag, "--out", out)
    assert code == EXIT_OK, err
    assert f"{FRAMES} frames: {FRAMES} processed" in stdout
    assert f"metadata.yaml: {bag / 'metadata.yaml'} is empty" in stdout
    (bag / "metadata.yaml").write_text("rosbag2_bagfile_information: [unclosed\n")
    code, _, err = run_cli(capsys, "info", bag)
    assert code == EXIT_FAILED
    one_line_error(err, f"{bag / 'metadata.yaml'} is not readable YAML")
