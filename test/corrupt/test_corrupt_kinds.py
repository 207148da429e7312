"""Every corruption kind as a pure function: seeded and deterministic, shapes and fields kept, the
property its docstring states (exact transforms, black images, kept sectors), severity monotone
where the parameter is an amount, and the registry complete (every kind the issue lists, five
severities, a source)."""

from __future__ import annotations

import numpy as np
import pytest

from ros2_lmd.corrupt import KINDS, SEVERITIES, kind_for, timing
from ros2_lmd.corrupt import camera as cam
from ros2_lmd.corrupt import pointcloud as pc

PAYLOAD_KINDS = [
    (modality, kind)
    for modality, kinds in KINDS.items()
    for kind, c in kinds.items()
    if c.acts_on in ("image", "points")
]


def _image(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.linspace(20, 230, 96, dtype=np.float32)[None, :, None] * np.ones((64, 1, 3), np.float32)
    return np.clip(base + rng.normal(0, 10, (64, 96, 3)), 0, 255).astype(np.uint8)


LIDAR_DTYPE = np.dtype(
    {
        "names": ["x", "y", "z", "intensity", "ring"],
        "formats": ["<f4", "<f4", "<f4", "<f4", "<u2"],
        "offsets": [0, 4, 8, 16, 20],
        "itemsize": 32,
    }
)  # padded, as drivers write them
RADAR_DTYPE = np.dtype(
    [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("rcs", "<f4"), ("vx_comp", "<f4"), ("vy_comp", "<f4")]
)


def _lidar(n: int = 4000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    points = np.zeros(n, LIDAR_DTYPE)
    ring = rng.integers(0, 32, n)
    az, r = rng.uniform(-np.pi, np.pi, n), rng.uniform(2, 80, n)
    elevation = np.radians(-25 + ring * 1.0)
    points["x"], points["y"] = r * np.cos(az), r * np.sin(az)
    points["z"], points["ring"] = r * np.tan(elevation), ring
    points["intensity"] = rng.uniform(0, 100, n)
    return points


def _radar(n: int = 60, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    points = np.zeros(n, RADAR_DTYPE)
    points["x"], points["y"] = rng.uniform(2, 60, n), rng.uniform(-20, 20, n)
    points["rcs"], points["vx_comp"] = rng.uniform(-5, 20, n), rng.uniform(-10, 10, n)
    return points


def _payload(modality: str) -> np.ndarray:
    return {"camera": _image, "lidar": _lidar, "radar": _radar}[modality]()


def _apply(modality: str, kind: str, severity: int, payload: np.ndarray, seed: int = 1) -> np.ndarray:
    c = kind_for(modality, kind, severity)
    return c.function(payload, c.parameter(severity), np.random.default_rng(seed))


def test_the_registry_holds_every_kind_the_issue_lists_with_five_severities_and_a_source():
    wanted = {
        "camera": "brightness low_light fog snow rain motion_blur defocus gaussian_noise shot_noise "
        "impulse_noise jpeg pixelate color_quant soiling soiling_opaque soiling_transparent occlusion "
        "crash frame_lost stuck",
        "lidar": "density beam_missing cutout fov_lost crosstalk fog rain snow incomplete_echo noise stuck "
        "rotation translation temporal",
        "radar": "ghosts dropout stuck noise range_bias azimuth_bias rotation translation temporal",
    }
    anywhere = "clock_offset clock_drift intermittent rate_drop frame_lost".split()
    for modality, names in wanted.items():
        assert set(names.split()) | set(anywhere) <= set(KINDS[modality])
    for kinds in KINDS.values():
        for kind, c in kinds.items():
            assert c.kind == kind and len(c.levels) == len(SEVERITIES) and c.source and c.unit
            assert c.summary, f"{kind}: its function needs a docstring (the docs' description)"


def test_bad_kind_and_severity_name_what_is_valid():
    with pytest.raises(ValueError, match="does not apply to radar .*valid: .*ghosts"):
        kind_for("radar", "jpeg", 3)
    with pytest.raises(ValueError, match="must be one of 1, 2, 3, 4, 5"):
        kind_for("camera", "jpeg", 0)


@pytest.mark.parametrize("modality,kind", PAYLOAD_KINDS)
@pytest.mark.parametrize("severity", (1, 5))
def test_every_payload_kind_is_deterministic_keeps_the_layout_and_changes_the_payload(
    modality, kind, severity
):
    payload = _payload(modality)
    out = _apply(modality, kind, severity, payload)
    again = _apply(modality, kind, severity, payload)
    assert out.dtype == payload.dtype
    assert np.array_equal(out, again)
    if modality == "camera":
        assert out.shape == payload.shape
        assert not np.array_equal(out, payload)
    else:
        changed = len(out) != len(payload) or not np.array_equal(out, payload)
        assert changed
        assert np.isfinite(pc.xyz(out)).all()


@pytest.mark.parametrize(
    "modality,kind,measure",
    [
        ("camera", "gaussian_noise", lambda before, after: np.std(after.astype(float) - before)),
        ("camera", "shot_noise", lambda before, after: np.std(after.astype(float) - before)),
        ("camera", "impulse_noise", lambda before, after: np.mean(after != before)),
        ("camera", "brightness", lambda before, after: after.mean()),
        ("camera", "low_light", lambda before, after: -after.mean()),
        ("camera", "defocus", lambda before, after: -np.abs(np.diff(after.astype(float), axis=1)).mean()),
        ("camera", "color_quant", lambda before, after: np.abs(after.astype(float) - before).mean()),
        (
            "camera",
            "soiling",
            lambda before, after: np.mean(np.abs(after.astype(float) - before).sum(-1) > 30),
        ),
        ("camera", "occlusion", lambda before, after: np.mean((after != before).any(-1))),
        ("lidar", "density", lambda before, after: len(before) - len(after)),
        (
            "lidar",
            "beam_missing",
            lambda before, after: len(np.unique(before["ring"])) - len(np.unique(after["ring"])),
        ),
        ("lidar", "fov_lost", lambda before, after: len(before) - len(after)),
        ("lidar", "crosstalk", lambda before, after: len(after) - len(before)),
        (
            "lidar",
            "fog",
            lambda before, after: len(before[pc._ranges(before) > 30]) - len(after[pc._ranges(after) > 30]),
        ),
        ("lidar", "noise", lambda before, after: np.std(pc.xyz(after) - pc.xyz(before))),
        ("radar", "ghosts", lambda before, after: len(after) - len(before)),
        ("radar", "dropout", lambda before, after: len(before) - len(after)),
        ("radar", "noise", lambda before, after: np.std(pc.xyz(after) - pc.xyz(before))),
    ],
)
def test_severity_is_monotone_in_what_the_kind_takes_away_or_adds(modality, kind, measure):
    payload = _payload(modality)
    values = [measure(payload, _apply(modality, kind, s, payload)) for s in SEVERITIES]
    assert all(a < b for a, b in zip(values, values[1:])), values


def test_crash_is_black():
    assert not _apply("camera", "crash", 3, _image()).any()


@pytest.mark.parametrize("modality", ("lidar", "radar"))
@pytest.mark.parametrize("kind", ("rotation", "translation"))
@pytest.mark.parametrize("severity", SEVERITIES)
def test_misalignment_moves_points_by_exactly_the_stated_transform(modality, kind, severity):
    points = _payload(modality)
    level = kind_for(modality, kind, severity).parameter(severity)
    transform = (
        pc.misalignment_transform(level, 0.0) if kind == "rotation" else pc.misalignment_transform(0.0, level)
    )
    out = _apply(modality, kind, severity, points)
    expected = pc.xyz(points) @ transform[:3, :3].T + transform[:3, 3]
    np.testing.assert_allclose(pc.xyz(out), expected, atol=1e-4)
    other = [n for n in points.dtype.names if n not in ("x", "y", "z")]
    assert all(np.array_equal(out[n], points[n]) for n in other)


def test_radar_biases_are_exact():
    points = _radar()
    ground = np.hypot(points["x"], points["y"])
    out = _apply("radar", "range_bias", 4, points)  # 3 m
    np.testing.assert_allclose(np.hypot(out["x"], out["y"]), ground + 3.0, atol=1e-4)
    out = _apply("radar", "azimuth_bias", 4, points)  # 5 degrees
    turn = np.degrees(np.arctan2(out["y"], out["x"]) - np.arctan2(points["y"], points["x"]))
    np.testing.assert_allclose(turn, 5.0, atol=1e-3)
    np.testing.assert_allclose(np.hypot(out["x"], out["y"]), ground, atol=1e-4)


def test_fov_lost_keeps_only_the_stated_sector_and_beam_missing_whole_beams():
    points = _lidar()
    out = _apply("lidar", "fov_lost", 3, points)  # 120 degrees
    azimuth = np.degrees(np.arctan2(out["y"], out["x"]))
    assert np.abs(azimuth).max() <= 60.0 and len(out) == np.sum(
        np.abs(np.degrees(np.arctan2(points["y"], points["x"]))) <= 60
    )
    out = _apply("lidar", "beam_missing", 3, points)  # 40 % of the beams, each entirely
    lost = set(np.unique(points["ring"])) - set(np.unique(out["ring"]))
    assert len(lost) == round(0.4 * 32)
    assert len(out) == np.sum(~np.isin(points["ring"], list(lost)))


def test_beams_come_from_elevation_where_a_cloud_has_no_ring():
    points = _lidar()
    plain = np.zeros(len(points), np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4")]))
    for n in ("x", "y", "z"):
        plain[n] = points[n]
    assert 28 <= len(np.unique(pc.beam_of(plain))) <= 32


def test_added_points_copy_the_fields_of_real_ones_and_work_on_an_empty_cloud():
    points = _lidar(100)
    out = _apply("lidar", "crosstalk", 5, points)
    assert set(out["ring"][len(points) :]) <= set(points["ring"])
    empty = np.zeros(0, RADAR_DTYPE)
    assert len(_apply("radar", "ghosts", 3, empty)) == 12


def test_stream_kinds():
    rng = np.random.default_rng(0)
    kept = [timing.frame_lost(i, 0.0, 0.6, rng) for i in range(2000)]
    assert abs(1 - np.mean(kept) - 0.6) < 0.04
    assert [timing.rate_drop(i, 0.0, 3, rng) for i in range(7)] == [
        True,
        False,
        False,
        True,
        False,
        False,
        True,
    ]
    gaps = timing.intermittent_gaps(20.0, 0.5, np.random.default_rng(1))
    covered = sum(end - start for start, end in gaps) / 20.0
    assert 0.3 < covered < 0.7 and all(0 <= s < e <= 20.0 for s, e in gaps)
    assert timing.clock_drift(2.5, 0.1) == pytest.approx(0.25)
    assert timing.lagged_source(10, 3) == 7 and timing.stuck_source(10, 1) == 0


def test_camera_pixel_sizes_scale_with_the_width():
    small, big = np.zeros((90, 160, 3), np.uint8), np.zeros((900, 1600, 3), np.uint8)
    assert cam._px(10, small) == pytest.approx(1.0) and cam._px(10, big) == pytest.approx(10.0)


def test_the_tuning_and_held_out_sets_partition_every_kind_and_match_the_docs():
    from pathlib import Path

    from ros2_lmd.corrupt.registry import HELD_OUT, TUNING

    for modality, kinds in KINDS.items():
        tuning, held_out = set(TUNING[modality]), set(HELD_OUT[modality])
        assert tuning and held_out and not tuning & held_out
        assert tuning | held_out == set(kinds), modality
    docs = (Path(__file__).resolve().parents[2] / "docs" / "incidents.md").read_text()
    for name, table in (("tuning", TUNING), ("held-out", HELD_OUT)):
        for modality, kinds in table.items():
            line = f"| {name} | {modality} | " + ", ".join(f"`{k}`" for k in kinds) + " |"
            assert line in docs, line


def test_the_corruptions_page_lists_every_kind():
    from pathlib import Path

    page = (Path(__file__).resolve().parents[2] / "docs" / "corruptions.md").read_text()
    for kinds in KINDS.values():
        for kind, c in kinds.items():
            assert f"| `{kind}` | {c.summary} |" in page, kind
