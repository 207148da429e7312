"""`analyze --outputs` (#29): what the output bag holds at each level (replay/levels.py), that it is
MCAP in zstd chunks with CRCs and compresses by a stated factor, that standard's PNG pictures are
the full level's pixels exactly, and that everything else (CSVs, summary.json, report.html,
incidents) is the same at every level."""

from __future__ import annotations

import binascii
import csv
import io
import json

import numpy as np
import pytest
import torch
import zstandard
from support.bag_rewrite import topic_messages

from ros2_lmd.models.registry import build_model
from ros2_lmd.replay.analyze import analyze
from ros2_lmd.replay.levels import OUTPUT_LEVELS
from ros2_lmd.replay.simulate import simulate_to_bag

pytestmark = pytest.mark.slow  # three analyses of a drive with the full-size model

FRAMES = 15
COMPRESSION_FACTOR = 3  # measured: zstd chunks hold the full level's messages in ~1/4.5 of their bytes
LAYERS = ("camera", "radar", "lidar", "bias")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("levels")
    drive = simulate_to_bag(
        root / "drive",
        duration_s=FRAMES / 10,
        seed=3,
        faults="camera:blackout@0.5-1.2",
        camera_size=(224, 128),
        progress=False,
    )
    torch.manual_seed(0)
    model = build_model("compact_crl")
    return {
        level: analyze(drive.bag, model, root / level, progress=False, outputs=level, batch=2, workers=1)
        for level in OUTPUT_LEVELS
    }


def _bag_bytes(result) -> int:
    return sum(p.stat().st_size for p in (result.out_dir / "output").iterdir() if p.suffix == ".mcap")


def test_each_level_writes_its_topics(runs):
    processed = runs["full"].processed
    assert processed == FRAMES and all(r.processed == processed for r in runs.values())
    counts = {level: topic_messages(result.out_dir / "output")[0] for level, result in runs.items()}
    # full: every topic the node publishes, every frame
    for topic in ("/lmd/bev/fused", "/lmd/bev_image", "/lmd/markers", "/lmd/decomposition"):
        assert counts["full"][topic] == processed, topic
    for layer in LAYERS:
        assert counts["full"][f"/lmd/bev/{layer}"] == counts["full"][f"/lmd/bev_image/{layer}"] == processed
    assert not any(topic.endswith("/compressed") for topic in counts["full"])
    # standard: the record and the fused grid every frame; pictures thinned, as PNG
    standard = counts["standard"]
    for topic in ("/lmd/bev/fused", "/lmd/markers", "/lmd/decomposition"):
        assert standard[topic] == processed, topic
    pictures = standard["/lmd/bev_image/compressed"]
    assert 1 <= pictures < processed
    for layer in LAYERS:
        assert standard[f"/lmd/bev/{layer}"] == standard[f"/lmd/bev_image/{layer}/compressed"] == pictures
    assert "/lmd/bev_image" not in standard
    # summary: what happened, nothing per frame
    assert set(counts["summary"]) <= {"/lmd/alerts", "/lmd/incidents", "/diagnostics"}
    for level in OUTPUT_LEVELS:  # the same alerts, incidents and diagnostics at every level
        for topic in ("/lmd/alerts", "/lmd/incidents", "/diagnostics"):
            assert counts[level][topic] == counts["full"][topic], (level, topic)


def test_standard_pictures_are_the_full_pixels_as_png(runs):
    import cv2

    from ros2_lmd.messages.types import rosbags_types
    from ros2_lmd.replay.bag import ReadStats, read_messages

    types = rosbags_types()

    def images(result, topic):
        bag = result.out_dir / "output"
        return {
            message.header.stamp.sec * 10**9 + message.header.stamp.nanosec: message
            for _, _, _, message in read_messages(bag, [topic], types.typestore, ReadStats())
        }

    raw = images(runs["full"], "/lmd/bev_image/camera")
    png = images(runs["standard"], "/lmd/bev_image/camera/compressed")
    assert png and set(png) <= set(raw)
    for stamp, message in png.items():
        assert bytes(message.data[:8]) == b"\x89PNG\r\n\x1a\n" and "png" in message.format
        decoded = cv2.cvtColor(cv2.imdecode(np.asarray(message.data), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        full = raw[stamp]
        assert np.array_equal(decoded, np.asarray(full.data).reshape(full.height, full.width, 3))


def test_the_output_bag_is_zstd_chunks_with_crcs_and_compressed_by_the_stated_factor(runs):
    from mcap.records import Chunk
    from mcap.stream_reader import StreamReader

    full = runs["full"].out_dir / "output"
    uncompressed = sum(topic_messages(full)[1].values())
    assert _bag_bytes(runs["full"]) * COMPRESSION_FACTOR < uncompressed
    sizes = {level: _bag_bytes(result) for level, result in runs.items()}
    assert sizes["summary"] < sizes["standard"] < sizes["full"]
    with open(next(full.glob("*.mcap")), "rb") as handle:
        chunks = [
            r
            for r in StreamReader(io.BytesIO(handle.read()), emit_chunks=True).records
            if isinstance(r, Chunk)
        ]
    assert chunks
    for chunk in chunks:
        assert chunk.compression == "zstd" and chunk.uncompressed_crc != 0
        data = zstandard.ZstdDecompressor().decompress(chunk.data, max_output_size=chunk.uncompressed_size)
        assert binascii.crc32(data) == chunk.uncompressed_crc


def _rows(path):
    with open(path, newline="") as handle:
        return [{k: v for k, v in row.items() if k != "latency_ms"} for row in csv.DictReader(handle)]


def test_everything_but_the_bag_is_the_same_at_every_level(runs):
    full = runs["full"].out_dir
    for level in ("standard", "summary"):
        out = runs[level].out_dir
        for name in ("alerts.csv", "incidents.csv", "report.html"):
            assert (out / name).read_bytes() == (full / name).read_bytes(), (level, name)
        assert _rows(out / "frames.csv") == _rows(full / "frames.csv")  # latency is wall-clock time
        summaries = [json.loads((folder / "summary.json").read_text()) for folder in (out, full)]
        for summary in summaries:
            summary.pop("latency_ms")
        assert summaries[0] == summaries[1]
        assert [i.summary() for i in runs[level].incidents] == [i.summary() for i in runs["full"].incidents]
