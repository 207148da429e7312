"""`ros2-lmd fleet` on a local Ray: three short simulated drives with different faults, a corrupt bag
and a truncated one, analysed by two workers with a tiny model. Each bag's outputs equal
`analyze`'s; the fleet's numbers equal what the per-bag files hold; the corrupt bag is reported with
its error and the truncated one with its error and the frames before it, while the others complete;
a rerun reuses complete outputs without rewriting them (and analyses a bag recorded again); one
worker gives the same results as two. Then the report's statistics (imbalance rule, drift, time of
day) and the modality-only quality on hand-made inputs with known answers."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
from pathlib import Path

import pytest
import torch
from support.tiny import TINY_GRID, build_tiny_model

from ros2_lmd import cli
from ros2_lmd.eval.imbalance import (
    BALANCED,
    LEANS,
    UNDER_USED,
    UNDETERMINED,
    ImbalanceRule,
    diagnose_imbalance,
    modality_quality,
)
from ros2_lmd.models.io import load_model, save_model
from ros2_lmd.monitor.params import MonitorParams
from ros2_lmd.replay.analyze import OUTPUTS, analyze
from ros2_lmd.replay.fleet import (
    ANALYSED,
    FAILED,
    PARTIAL,
    REUSED,
    RUN_FILE,
    BagOutcome,
    FleetBag,
    FleetError,
    bag_names,
    connect_ray,
    find_bags,
    run_fleet,
)
from ros2_lmd.replay.fleet_stats import BagData, fleet_summary
from ros2_lmd.replay.simulate import simulate_to_bag
from ros2_lmd.training import build_dataset, evaluate_iou, simulated_sample

pytestmark = [pytest.mark.slow, pytest.mark.ray]  # test/conftest.py: tiers

HOUR = 3600.0
# name -> (faults, start stamp): three drives five hours apart, each with its own fault
DRIVES = {
    "camera_blackout": ("camera:blackout@0.5-1.2", 1_700_000_000.0),
    "lidar_dropout": ("lidar:dropout@0.5-1.2", 1_700_000_000.0 + 5 * HOUR),
    "clean": (None, 1_700_000_000.0 + 10 * HOUR),
}
PARAMS = "/**:\n  ros__parameters:\n    decomposition: eager\n"  # no compile time in a test
MEASURED = ("latency_ms",)  # wall-clock measurements: the only columns two runs may differ in
BATCH = 4


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray for the module (two CPUs), shut down at the end."""
    import ray

    started = connect_ray(None, 2)
    yield
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def fleet_inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("fleet")
    for name, (faults, start) in DRIVES.items():
        simulate_to_bag(
            root / "bags" / name / name,  # its faults.csv inside it
            duration_s=1.5,
            seed=2,
            faults=faults,
            camera_size=(224, 128),
            progress=False,
            start_stamp=start,
        )
    corrupt = root / "bags" / "corrupt"
    corrupt.mkdir()
    (corrupt / "metadata.yaml").write_text("rosbag2_bagfile_information: [unterminated\n")
    truncated = root / "bags" / "truncated"  # a recording that broke off half-way
    shutil.copytree(root / "bags" / "clean" / "clean", truncated)
    data = next(truncated.glob("*.mcap"))
    with open(data, "r+b") as handle:
        handle.truncate(data.stat().st_size // 2)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        save_model(build_tiny_model(), root / "tiny")
    (root / "params.yaml").write_text(PARAMS)
    return root


def _fleet(root: Path, out: str, workers: int, **kwargs):
    params = MonitorParams(decomposition="eager")
    return run_fleet(
        [root / "bags"],
        root / out,
        str(root / "tiny"),
        params,
        workers=workers,
        batch=BATCH,
        quality_frames=2,
        progress=False,
        **kwargs,
    )


@pytest.fixture(scope="module")
def two_workers(ray_local, fleet_inputs):
    return _fleet(fleet_inputs, "fleet2", 2)


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _without_measured(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in r.items() if k not in MEASURED} for r in rows]


def _bag_files(folder: Path) -> dict[str, object]:
    """What a bag's analysis holds, wall-clock measurements left out."""
    summary = json.loads((folder / "summary.json").read_text())
    summary.pop("latency_ms")
    return {
        "frames": _without_measured(_rows(folder / "frames.csv")),
        "alerts": (folder / "alerts.csv").read_text(),
        "incidents": (folder / "incidents.csv").read_text(),
        "summary": summary,
    }


def _good_bags(root: Path) -> dict[str, Path]:
    return {name: root / "bags" / name / name for name in DRIVES}


# --- which bags -----------------------------------------------------------------------------------


def test_bags_are_found_below_folders_and_named_apart(tmp_path):
    for folder in ("a/drive", "b/drive", "c/x/solo", ".hidden/drive", "out/drive/output"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "metadata.yaml").write_text("")
    (tmp_path / "a/drive/inner").mkdir()  # inside a bag: not searched
    (tmp_path / "a/drive/inner/metadata.yaml").write_text("")
    (tmp_path / "a/drive/drive_0.mcap").write_text("")
    found = find_bags([tmp_path, tmp_path / "a/drive/drive_0.mcap"], exclude=tmp_path / "out")
    assert [(b.path.relative_to(tmp_path).as_posix(), b.name) for b in found] == [
        ("a/drive", "a__drive"),
        ("b/drive", "b__drive"),
        ("c/x/solo", "solo"),
    ]
    # names depend on the set of bags only, and stay apart when a plain name collides with a joined one
    bags = [Path("/r/x/a__drive"), Path("/r/a/drive"), Path("/r/b/drive")]
    assert bag_names(bags) == bag_names(bags[::-1])
    assert len(set(bag_names(bags).values())) == 3
    with pytest.raises(FleetError, match="no such file or folder"):
        find_bags([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FleetError, match="no rosbag2 below it"):
        find_bags([tmp_path / "empty"])


# --- a fleet run ----------------------------------------------------------------------------------


def test_each_bag_gets_exactly_what_analyze_writes(two_workers, fleet_inputs, tmp_path):
    model = load_model(fleet_inputs / "tiny")
    params = MonitorParams(decomposition="eager")
    for name, bag in _good_bags(fleet_inputs).items():
        outcome = next(o for o in two_workers.outcomes if Path(o.bag) == bag.resolve())
        assert outcome.status == ANALYSED and outcome.error == ""
        folder = two_workers.out / outcome.name
        assert all((folder / output).exists() for output in OUTPUTS)
        reference = tmp_path / name
        analyze(
            bag.resolve(),
            model,
            reference,
            params,
            batch=BATCH,
            progress=False,
            model_name=str(fleet_inputs / "tiny"),
        )
        assert _bag_files(folder) == _bag_files(reference), name
        # each bag's report scores the faults of its own timeline (bag/faults.csv)
        page = (folder / "report.html").read_text()
        faults = DRIVES[name][0]
        assert ("Against the injected faults" in page) == bool(faults), name
        if faults:
            assert f"<td>{faults.split(':')[1].split('@')[0]}</td>" in page, name
    incidents = {
        o.name: len(_rows(two_workers.out / o.name / "incidents.csv"))
        for o in two_workers.outcomes
        if o.status == ANALYSED
    }
    assert incidents["camera_blackout"] >= 1 and incidents["lidar_dropout"] >= 1  # the faults were seen


def test_broken_bags_are_reported_and_the_others_complete(two_workers):
    statuses = {o.name: o.status for o in two_workers.outcomes}
    assert statuses == {
        "camera_blackout": ANALYSED,
        "clean": ANALYSED,
        "corrupt": FAILED,
        "lidar_dropout": ANALYSED,
        "truncated": PARTIAL,
    }
    failed, partial = (next(o for o in two_workers.outcomes if o.status == s) for s in (FAILED, PARTIAL))
    assert "metadata.yaml" in failed.error and "\n" not in failed.error
    assert "frames read before it" in partial.error and "\n" not in partial.error
    assert not (two_workers.out / "corrupt").exists()
    # the frames before the break are analysed, and the next run tries again
    assert 0 < len(_rows(two_workers.out / "truncated" / "frames.csv")) < 15
    assert json.loads((two_workers.out / "truncated" / RUN_FILE).read_text())["status"] == PARTIAL
    bags = two_workers.summary["bags"]
    assert (bags["analysed"], bags["partial"], bags["failed"]) == (3, 1, 1)
    assert bags["problems"] == [
        {"name": o.name, "bag": o.bag, "status": o.status, "error": o.error} for o in (failed, partial)
    ]
    html = (two_workers.out / "fleet_report.html").read_text()
    assert "Bags that failed" in html and "corrupt" in html and "data:image/png;base64," in html


def test_the_model_is_loaded_once_per_worker(two_workers):
    # a worker loads the model when it starts: two worker processes analysed the five bags
    workers = {w["worker"]: w for w in two_workers.workers}
    assert len(workers) == 2 and {o.worker for o in two_workers.outcomes} == set(workers)
    assert (
        sorted(w["bags"] for w in workers.values()) != [0, 5]
        and sum(w["bags"] for w in workers.values()) == 5
    )
    for worker in workers.values():  # two workers on two cores: one single-threaded inference thread each
        assert worker["inference_threads"] == 1 and worker["model_load_s"] > 0
        assert worker["package"] == str(Path(__file__).resolve().parents[2] / "ros2_lmd")  # this checkout


def test_the_fleet_numbers_are_the_per_bag_files(two_workers):
    out, summary = two_workers.out, two_workers.summary
    good = [o for o in two_workers.outcomes if o.status in (ANALYSED, PARTIAL)]  # the ones with outputs
    per_bag = {o.name: json.loads((out / o.name / "summary.json").read_text()) for o in good}
    incidents = {o.name: _rows(out / o.name / "incidents.csv") for o in good}
    frames = {
        o.name: [r for r in _rows(out / o.name / "frames.csv") if r["status"] == "processed"] for o in good
    }
    assert summary["incidents"]["count"] == sum(len(rows) for rows in incidents.values())
    by_sensor: dict[str, int] = {}
    for rows in incidents.values():
        for r in rows:
            by_sensor[r["sensor"]] = by_sensor.get(r["sensor"], 0) + 1
    assert {s: v["count"] for s, v in summary["incidents"]["by_sensor"].items()} == by_sensor
    hours = sum(s["drive"]["duration_s"] for s in per_bag.values()) / HOUR
    assert summary["driving"]["hours"] == pytest.approx(hours)
    assert summary["incidents"]["per_hour"] == pytest.approx(summary["incidents"]["count"] / hours)
    assert summary["driving"]["frames_processed"] == sum(len(rows) for rows in frames.values())
    fleet_rows = {r["name"]: r for r in _rows(out / "fleet_bags.csv")}
    assert list(fleet_rows) == ["camera_blackout", "clean", "corrupt", "lidar_dropout", "truncated"]
    for name in per_bag:
        row = fleet_rows[name]
        assert int(row["frames_processed"]) == len(frames[name])
        assert int(row["incidents"]) == len(incidents[name])
        assert int(row["detections"]) == sum(int(r["detections"]) for r in frames[name])
        single = sum(int(r["single_sensor_detections"]) for r in frames[name])
        assert int(row["single_sensor_detections"]) == single
        assert sum(int(row[f"single_{m}"]) for m in ("camera", "radar", "lidar")) == single
    assert fleet_rows["corrupt"]["status"] == FAILED and fleet_rows["corrupt"]["frames_processed"] == ""
    assert len(_rows(out / "fleet_incidents.csv")) == summary["incidents"]["count"]
    for m in ("camera", "radar", "lidar"):
        shares = [s["shares"][m] for s in per_bag.values()]
        assert summary["shares"]["per_bag"][m]["n"] == 4
        assert summary["shares"]["per_bag"][m]["mean"] == pytest.approx(sum(shares) / 4)
        count = sum(s["single_sensor_detections_by_modality"][m] for s in per_bag.values())
        assert summary["single_sensor"]["by_modality"][m]["count"] == count
    # healthy frames: processed, outside every incident of their bag (an open one lasts to the end)
    healthy = 0
    for name, rows in frames.items():
        windows = [
            (float(i["start_stamp"]), float(i["end_stamp"]) if i["end_stamp"] else math.inf)
            for i in incidents[name]
        ]
        healthy += sum(
            not any(a <= float(r["stamp"]) <= b for a, b in windows)
            and sum(float(r[f"share_{m}"]) for m in ("camera", "radar", "lidar")) > 0
            for r in rows
        )
    assert summary["imbalance"]["healthy_frames"] == healthy > 0
    # three drives five hours apart: a time-of-day breakdown and a trend over the timeline
    assert sorted(summary["time_of_day"]["hours_utc"]) == ["03", "08", "22"]
    assert summary["drift"]["span_days"] == pytest.approx(10 * HOUR / 86400)


def test_a_rerun_reuses_complete_bags_without_rewriting_them(two_workers, fleet_inputs, capsys):
    out = two_workers.out
    complete = [out / name for name in DRIVES]

    def files() -> dict[Path, tuple[int, bytes]]:
        return {
            p: (p.stat().st_mtime_ns, p.read_bytes()) for f in complete for p in f.rglob("*") if p.is_file()
        }

    before = files()
    code = cli.main(
        [
            "fleet",
            str(fleet_inputs / "bags"),
            "--out",
            str(out),
            "--model",
            str(fleet_inputs / "tiny"),
            "--params-file",
            str(fleet_inputs / "params.yaml"),
            "--workers",
            "2",
            "--quality-frames",
            "2",
        ]
    )
    printed, _ = capsys.readouterr()
    assert code == 1  # the broken bags are still broken (and the truncated one is analysed again)
    assert "5 bags: 0 analysed, 3 reused, 1 partial, 1 failed" in printed and "FAILED corrupt" in printed
    assert len(before) > 3 * len(OUTPUTS) and files() == before
    summary = json.loads((out / "fleet_summary.json").read_text())
    assert (summary["bags"]["reused"], summary["bags"]["analysed"]) == (3, 0)
    assert {k: v for k, v in summary.items() if k != "bags"} == {
        k: v for k, v in two_workers.summary.items() if k != "bags"
    }


def test_a_bag_recorded_again_is_analysed_again(two_workers, fleet_inputs):
    bag = _good_bags(fleet_inputs)["clean"]
    later = (two_workers.out / "clean" / "summary.json").stat().st_mtime + 10
    os.utime(bag / "metadata.yaml", (later, later))
    rerun = _fleet(fleet_inputs, "fleet2", 2)
    assert {o.name: o.status for o in rerun.outcomes} == {
        "camera_blackout": REUSED,
        "clean": ANALYSED,
        "corrupt": FAILED,
        "lidar_dropout": REUSED,
        "truncated": PARTIAL,
    }
    assert json.loads((two_workers.out / "clean" / RUN_FILE).read_text())["status"] == ANALYSED
    assert len(rerun.workers) == 2 and sum(w["bags"] for w in rerun.workers) == 3


def test_one_worker_gives_the_same_results_as_two(two_workers, fleet_inputs):
    one = _fleet(fleet_inputs, "fleet1", 1)
    assert [w["bags"] for w in one.workers] == [5]

    def same(value: object, out: Path) -> object:
        """`value` with its run's output folder named alike (a partial bag's error names it)."""
        return json.loads(json.dumps(value).replace(str(out), "<out>"))

    assert same([(o.name, o.status, o.error) for o in one.outcomes], one.out) == same(
        [(o.name, o.status, o.error) for o in two_workers.outcomes], two_workers.out
    )
    for outcome in one.outcomes:
        if outcome.status in (ANALYSED, PARTIAL):
            assert _bag_files(one.out / outcome.name) == _bag_files(two_workers.out / outcome.name)
    assert same(one.summary, one.out) == same(two_workers.summary, two_workers.out)
    for name in ("fleet_bags.csv", "fleet_incidents.csv"):  # the two-worker folder was rerun since: statuses
        ones = [{k: v for k, v in r.items() if k != "status"} for r in _rows(one.out / name)]
        twos = [{k: v for k, v in r.items() if k != "status"} for r in _rows(two_workers.out / name)]
        assert same(ones, one.out) == same(twos, two_workers.out), name


# --- the report's statistics on hand-made inputs ---------------------------------------------------


def test_the_imbalance_rule_as_stated():
    equal = {"camera": 0.2, "radar": 0.2, "lidar": 0.2}  # each justifies a third
    verdicts = diagnose_imbalance({"camera": 0.7, "radar": 0.1, "lidar": 0.2}, equal).verdicts
    assert {m: v.verdict for m, v in verdicts.items()} == {
        "camera": LEANS,
        "radar": UNDER_USED,
        "lidar": BALANCED,
    }
    assert verdicts["camera"].justified_share == pytest.approx(1 / 3)
    assert verdicts["camera"].ratio == pytest.approx(2.1)
    # both conditions: a large factor on a small share, a large gap at a small factor: not flagged
    rule = ImbalanceRule(excess=0.2, ratio=1.5)
    small = diagnose_imbalance({"camera": 0.08, "radar": 0.92}, {"camera": 0.02, "radar": 0.98}, rule)
    assert small.verdicts["camera"].verdict == BALANCED  # 8 % against 2 %: factor 4, gap 6 points
    near = diagnose_imbalance({"camera": 0.75, "radar": 0.25}, {"camera": 0.55, "radar": 0.45}, rule)
    assert near.verdicts["camera"].verdict == BALANCED  # 75 % against 55 %: gap 20 points, factor 1.36
    # shares are normalised; a modality that alone finds nothing justifies nothing
    zero = diagnose_imbalance({"camera": 3.0, "lidar": 1.0}, {"camera": 0.0, "lidar": 0.4})
    assert zero.leans_on == ["camera"] and zero.verdicts["camera"].ratio == math.inf
    nan = diagnose_imbalance({"camera": 0.5, "lidar": 0.5}, {"camera": math.nan, "lidar": 0.0})
    assert {v.verdict for v in nan.verdicts.values()} == {UNDETERMINED}
    with pytest.raises(ValueError, match="same"):
        diagnose_imbalance({"camera": 1.0}, {"lidar": 0.1})


def test_quality_alone_is_the_model_with_the_other_features_zeroed():
    with torch.random.fork_rng():
        torch.manual_seed(1)
        model = build_tiny_model()
    quality = modality_quality(model, frames=2, seed_base=5)
    data = build_dataset(
        model, range(5, 7), lambda seed: simulated_sample(seed, grid=TINY_GRID), progress=False
    )
    inputs = {k: v.float() / 255 if k == "images" else v for k, v in data.items() if k != "target"}
    truth = data["target"] >= 0.5
    with torch.no_grad():
        features = model.encode(inputs)
        for m in model.modalities:
            alone = {k: v if k == m else torch.zeros_like(v) for k, v in features.items()}
            predicted = model.fuse(alone)["bev_logits"] >= 0
            union = float((predicted | truth).sum())
            expected = float((predicted & truth).sum()) / union if union else math.nan
            assert quality.alone[m] == pytest.approx(expected, nan_ok=True), m
    assert quality.fused == evaluate_iou(model, data)
    assert truth.shape[-2:] == (TINY_GRID.ny, TINY_GRID.nx)  # ground truth on the model's grid


def _made_up_bag(name: str, start: float, shares: dict[str, float], frames: int = 2) -> BagData:
    summary = {
        "drive": {"start_stamp": start, "duration_s": 60.0},
        "frames": {"processed": frames, "dropped": 0},
        "shares": shares,
        "detections": 4,
        "single_sensor_detections": 1,
        "single_sensor_detections_by_modality": {"camera": 1, "lidar": 0},
    }
    rows = [
        {
            "stamp": f"{start + 10 * k:.6f}",
            "status": "processed",
            **{f"share_{m}": f"{v}" for m, v in shares.items()},
        }
        for k in range(frames)
    ]
    outcome = BagOutcome(name, f"/bags/{name}", ANALYSED)
    return BagData(FleetBag(Path(f"/bags/{name}"), name), outcome, summary, [], rows)


def test_drift_is_the_theil_sen_slope_over_bag_start_times():
    day = 86400.0
    start = 1_700_000_000.0
    bags = [
        _made_up_bag(f"b{k}", start + k * day, {"camera": 0.8 - 0.01 * k, "lidar": 0.2 + 0.01 * k})
        for k in range(10)
    ]
    bags[3] = _made_up_bag("b3", start + 3 * day, {"camera": 0.1, "lidar": 0.9})  # one faulty bag
    summary = fleet_summary(bags, "m", ("camera", "lidar"), None)
    camera = summary["drift"]["by_modality"]["camera"]
    assert camera["slope_per_day"] == pytest.approx(-0.01)  # the outlier does not move the median slope
    assert camera["change_over_span"] == pytest.approx(-0.09) and camera["drifting"]
    flat = fleet_summary(
        [_made_up_bag(f"b{k}", start + k * day, {"camera": 0.7, "lidar": 0.3}) for k in range(4)],
        "m",
        ("camera", "lidar"),
        None,
    )
    assert flat["drift"]["by_modality"]["camera"]["slope_per_day"] == 0.0
    assert not flat["drift"]["by_modality"]["camera"]["drifting"]
    two = fleet_summary(bags[:2], "m", ("camera", "lidar"), None)
    assert "by_modality" not in two["drift"] and "at least 3" in two["drift"]["reason"]
    # time of day from the frames' stamps (UTC hours): 1_700_000_000 is 22:13:20 UTC, and so a day later
    assert summary["time_of_day"] == {"reason": "every frame falls in the hour 22:00-22:59 UTC"}
    spread = [
        _made_up_bag(f"h{k}", start + k * 5 * HOUR, {"camera": 0.1 * k, "lidar": 1 - 0.1 * k})
        for k in range(3)
    ]
    hours = fleet_summary(spread, "m", ("camera", "lidar"), None)["time_of_day"]["hours_utc"]
    assert hours == {
        "22": {"frames": 2, "camera": 0.0, "lidar": 1.0},
        "03": {"frames": 2, "camera": 0.1, "lidar": 0.9},
        "08": {"frames": 2, "camera": pytest.approx(0.2), "lidar": 0.8},
    }
    sim_time = fleet_summary(
        [_made_up_bag("s", 50.0, {"camera": 1.0, "lidar": 0.0})], "m", ("camera", "lidar"), None
    )
    assert "not wall-clock" in sim_time["time_of_day"]["reason"]
    assert summary["imbalance"]["reason"] == "not measured (--quality-frames 0)"
    assert summary["single_sensor"]["by_modality"]["camera"] == {
        "count": 10,
        "per_detection": 0.25,
        "per_hour": pytest.approx(10 / (10 * 60 / HOUR)),
    }
