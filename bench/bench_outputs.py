"""Bytes per hour of `analyze --outputs` at each level, and the time spent writing them (#29), on a
bag (a long simulated drive: `ros2-lmd simulate --duration 300 --frame-rate 20`). The pipeline runs
once (`replay.analyze.analyze`, as the CLI runs it) and each frame's outputs are built and written
once per level by the same `messages.outputs.frame_messages`, `replay.levels.OutputLevel` and
`replay.bag.BagWriter` that `analyze --outputs LEVEL` uses, into one output bag per level, so the
model's time is paid once and each level's bag is the one `analyze --outputs LEVEL` would write.
Three more bags can be measured beside the three levels: `standard-before` (the rule before the
cap: pictures at every frame with an alert or an incident change), `standard-cap1s` (the cap at 1 s
instead of INCIDENT_PICTURE_PERIOD_S) and `no-pictures` (standard without any pictures: the part
written at every frame). Prints one row per bag: bytes, bytes per hour of drive,
picture frames, seconds spent building, encoding and writing (closing the bag included).

    source .venv/lmd_env.sh && python bench/bench_outputs.py DRIVE --out OUT_FOLDER
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections.abc import Collection
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("bag")
    parser.add_argument("--out", required=True)
    parser.add_argument("--model", default="compact_crl")
    parser.add_argument(
        "--levels",
        default="summary,standard,full,standard-cap1s,standard-before,no-pictures",
        help="bags to write",
    )
    parser.add_argument(
        "--count-only",
        default="",
        help="bags (of --levels' names) whose picture frames are counted but not written",
    )
    parser.add_argument(
        "--seconds", type=float, default=0.0, help="analyse only the bag's first SECONDS (0: all of it)"
    )
    parser.add_argument(
        "--stop-at",
        type=float,
        default=0.0,
        help="stop reading the bag at this wall-clock time (seconds since the epoch; 0: never): on a "
        "shared machine, the part of the drive read by then is measured",
    )
    args = parser.parse_args()

    from ros2_lmd.messages import outputs
    from ros2_lmd.models.io import load_model
    from ros2_lmd.monitor.params import MonitorParams
    from ros2_lmd.replay import analyze as analyze_module
    from ros2_lmd.replay import levels as levels_module
    from ros2_lmd.replay.bag import BagError, BagWriter
    from ros2_lmd.replay.levels import INCIDENT_PICTURE_PERIOD_S, OutputLevel

    class BeforeCap(OutputLevel):
        """standard as it was before the cap: every frame with an alert or incident change."""

        def skip_views(
            self, stamp: float, components: Collection[str], event: bool, incident_open: bool
        ) -> set[str]:
            if event:
                self.last_picture = stamp
                return set()
            return super().skip_views(stamp, components, False, incident_open)

    class Cap1s(OutputLevel):
        """standard with the cap at 1 s instead of INCIDENT_PICTURE_PERIOD_S."""

        def skip_views(
            self, stamp: float, components: Collection[str], event: bool, incident_open: bool
        ) -> set[str]:
            cap, levels_module.INCIDENT_PICTURE_PERIOD_S = levels_module.INCIDENT_PICTURE_PERIOD_S, 1.0
            try:
                return super().skip_views(stamp, components, event, incident_open)
            finally:
                levels_module.INCIDENT_PICTURE_PERIOD_S = cap

    class NoPictures(OutputLevel):
        def skip_views(
            self, stamp: float, components: Collection[str], event: bool, incident_open: bool
        ) -> set[str]:
            self.last_picture = stamp  # as if pictures had just been written
            return super().skip_views(stamp, components, event, incident_open)

    def make_level(name: str) -> OutputLevel:
        if name == "standard-before":
            return BeforeCap("standard")
        if name == "standard-cap1s":
            return Cap1s("standard")
        if name == "no-pictures":
            return NoPictures("standard")
        return OutputLevel(name)

    counted = [name for name in args.count_only.split(",") if name]
    names = [name for name in args.levels.split(",") if name not in counted]
    levels = {name: make_level(name) for name in names + counted}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    prefix = MonitorParams().output_prefix.rstrip("/")
    seconds = dict.fromkeys(levels, 0.0)
    pictures = dict.fromkeys(levels, 0)
    skips: dict[str, set[str]] = {}
    writers: dict[str, Any] = {}

    class AllLevels(OutputLevel):
        """What analyze holds as its level: records each level's views for the frame."""

        def skip_views(
            self, stamp: float, components: Collection[str], event: bool, incident_open: bool
        ) -> set[str]:
            for name, level in levels.items():
                start = time.perf_counter()
                skips[name] = level.skip_views(stamp, components, event, incident_open)
                seconds[name] += time.perf_counter() - start
                pictures[name] += "bev_image" not in skips[name]
            return set()

    def frame_messages(report: Any, types: Any, *positional: Any, **keywords: Any) -> list[Any]:
        for name in names:
            level = levels[name]
            start = time.perf_counter()
            keywords.update(skip_views=skips[name], png_images=level.png_images)
            for key, msgtype, message in outputs.frame_messages(report, types, *positional, **keywords):
                if outputs.is_view(key) or level.keeps(key):
                    writers[name].write(f"{prefix}/{key}", msgtype, report.stamp_ns, message)
            seconds[name] += time.perf_counter() - start
        return []  # analyze's own writer gets /diagnostics only, passed on to every level's bag

    class FanOut:
        def __init__(self, path: Path, typestore: Any) -> None:
            self.typestore = typestore
            path.mkdir()  # analyze moves its output/ into place
            for name in names:
                writers[name] = BagWriter(out / name, typestore)

        def __enter__(self) -> FanOut:
            for writer in writers.values():
                writer.__enter__()
            return self

        def __exit__(self, *exc: Any) -> None:
            for name, writer in writers.items():
                start = time.perf_counter()
                writer.__exit__(*exc)
                seconds[name] += time.perf_counter() - start

        def write(self, topic: str, msgtype: str, stamp_ns: int, message: Any) -> None:
            for name, writer in writers.items():
                start = time.perf_counter()
                writer.write(topic, msgtype, stamp_ns, message)
                seconds[name] += time.perf_counter() - start

    shim = SimpleNamespace(**{k: getattr(outputs, k) for k in dir(outputs) if not k.startswith("__")})
    shim.frame_messages = frame_messages
    read_messages = vars(analyze_module)["read_messages"]

    cut: list[str] = []

    def first_seconds(*positional: Any, **keywords: Any) -> Any:
        start_ns = None
        for item in read_messages(*positional, **keywords):
            start_ns = item[2] if start_ns is None else start_ns
            if args.seconds and item[2] - start_ns >= args.seconds * 1e9:
                return
            if args.stop_at and time.time() >= args.stop_at:
                cut.append(f"; cut by --stop-at after {(item[2] - start_ns) * 1e-9:.1f} s of the bag")
                return
            yield item

    # analyze as the CLI runs it, its output bag fanned out into one bag per level
    patches = {
        "outputs": shim,
        "BagWriter": FanOut,
        "OutputLevel": lambda name: AllLevels("summary"),
        "read_messages": first_seconds,
    }
    for name, value in patches.items():
        setattr(analyze_module, name, value)
    model = load_model(args.model)
    start = time.perf_counter()
    try:
        result = analyze_module.analyze(args.bag, model, out / "analysis", progress=True, outputs="summary")
        found = f"{len(result.incidents)} incidents, {len(result.alerts)} alerts"
    except BagError as error:  # a recording that broke off: what was read was analysed and written
        print(f"{error}")
        found = "a broken-off recording"
    total = time.perf_counter() - start
    with open(out / "analysis" / "frames.csv", newline="") as handle:
        stamps = sorted(float(row["stamp"]) for row in csv.DictReader(handle) if row["status"] == "processed")
    # the drive's length: the key frames' span plus one frame period
    drive_s = (stamps[-1] - stamps[0]) * len(stamps) / max(len(stamps) - 1, 1)
    print(
        f"{args.bag}: {len(stamps)} frames processed over {drive_s:.1f} s of drive; "
        f"{found}; analysis {total:.0f} s "
        f"(every level's writing included); picture cap {INCIDENT_PICTURE_PERIOD_S:g} s{''.join(cut)}"
    )
    print("level,bytes,bytes_per_hour,picture_frames,write_s,write_s_per_hour")
    per_hour = 3600 / drive_s
    for name in counted:
        print(f"{name},,,{pictures[name]},,")
    for name in names:
        size = sum(p.stat().st_size for p in (out / name).iterdir() if p.suffix == ".mcap")
        print(
            f"{name},{size},{size * per_hour:.4g},{pictures[name]},{seconds[name]:.1f},"
            f"{seconds[name] * per_hour:.0f}"
        )


if __name__ == "__main__":
    main()
