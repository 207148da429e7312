"""`ros2-lmd evaluate` (ros2_lmd.eval.runner) on a tiny camera + radar model and three simulated
frames: the documented files, the columns of the paper's tables, LMD's separation (eq. 14: replacing
one modality leaves the other's component unchanged, PCC 1 and MSE 0), and the aggregation against
scipy/numpy over the hand-derived perturbation pairs."""

from __future__ import annotations

import csv
import math
import struct

import numpy as np
import pytest
import torch
from scipy import stats
from support.figures import overlapping_titles
from support.tiny import scene, scenes, tiny

from ros2_lmd.eval import runner
from ros2_lmd.eval.perturbation import paper_methods
from ros2_lmd.lmd import decompose
from ros2_lmd.render.figures import save_png

METHODS = [m for m in paper_methods() if m.name in ("Baseline", "LMD (Ratio Rule)")]
COLUMNS = ["C_p/C", "C_p/R", "R_p/C", "R_p/R"]  # Table 1: X_p/Y = Y's prediction, X replaced


@pytest.fixture(scope="module", autouse=True)
def _forget_scenes():
    yield
    scene.cache_clear()  # the scenes cached for these tests are not kept past the module


@pytest.fixture(scope="module")
def model():
    with torch.random.fork_rng():  # layer initialisation, without touching the global RNG
        torch.manual_seed(0)
        return tiny("compact_cr").eval()


@pytest.fixture(scope="module")
def frames():
    return [scenes(seed)[0] for seed in range(3)]


@pytest.fixture(scope="module")
def evaluated(model, frames, tmp_path_factory):
    out = tmp_path_factory.mktemp("evaluate")
    logs = []
    results = runner.evaluate(model, frames, out, "tiny", offsets=1, methods=METHODS, log=logs.append)
    return out, results, logs


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_evaluate_writes_the_documented_files(evaluated):
    out, results, logs = evaluated
    assert sorted(p.name for p in out.iterdir()) == [
        "decomposition.png",
        "gradcam.png",
        "metrics.csv",
        "tables.md",
    ]
    # figures at 100 dpi: fused, camera, radar, bias (2.4 in each, 1 in for the colour bar, 6.6 in
    # high) and region + 2 Grad-CAMs (2.5 in each, 3.9 in high)
    assert png_size(out / "decomposition.png") == (round((2.4 * 4 + 1.0) * 100), 660)
    assert png_size(out / "gradcam.png") == (round(2.5 * 3 * 100), 390)
    tables = (out / "tables.md").read_text()
    assert logs == [tables]
    assert tables.startswith("# LMD evaluation: tiny\n")
    assert "3 synthetic validation frames, 3 perturbation pairs per column" in tables
    assert "| method | " + " | ".join(COLUMNS) + " |" in tables
    # the paper's Table 1 numbers for LMD (Ratio Rule), camera + radar, in this column order
    assert "| *paper, LMD (Ratio Rule)* | 0.15 | 1.00 | 1.00 | 0.05 |" in tables


def test_metrics_csv_layout_and_lmd_separation(evaluated):
    out, results, _ = evaluated
    with open(out / "metrics.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    header = ["method"] + [
        f"{metric} {column} {stat}"
        for metric in ("PCC", "MSE")
        for column in COLUMNS
        for stat in ("mean", "std")
    ]
    assert rows[0] == header
    assert [r[0] for r in rows[1:]] == [m.name for m in METHODS]
    table = {r[0]: dict(zip(header[1:], map(float, r[1:]))) for r in rows[1:]}
    for method, row in table.items():
        assert all(math.isfinite(v) for v in row.values()), method
        for key, value in row.items():  # the CSV holds the returned numbers, rounded to 4 places
            metric, column, stat = key.split()
            assert value == pytest.approx(results[method][f"{metric} {column}"][stat == "std"], abs=5e-5)
    lmd = table["LMD (Ratio Rule)"]
    # eq. 14: with the linearisation fixed, replacing the camera leaves the radar's component as it
    # was, and vice versa
    for column in ("C_p/R", "R_p/C"):
        assert lmd[f"PCC {column} mean"] == 1.0 and lmd[f"MSE {column} mean"] == 0.0
        assert lmd[f"PCC {column} std"] == 0.0 and lmd[f"MSE {column} std"] == 0.0
    # ... while the replaced modality's own prediction does change
    for column in ("C_p/C", "R_p/R"):
        assert lmd[f"PCC {column} mean"] < 0.99 and lmd[f"MSE {column} mean"] > 1e-3


def test_lmd_columns_against_scipy_over_the_hand_derived_pairs(evaluated, model, frames):
    """3 samples, 1 offset: spacing max(1, round(3 * 500 / 6019)) = 1, so the pairs are
    (0, 1), (1, 2), (2, 0). For each, modality m's LMD component linearised at the clean sample
    k, before and after replacing one modality by sample j's."""
    _, results, _ = evaluated
    samples = runner.encode_frames(model, frames)
    lmd = next(m for m in METHODS if m.name == "LMD (Ratio Rule)")

    def component(inputs, clean, m):
        with torch.no_grad():
            dec = decompose(model.fuse, inputs, rules=lmd.rules, linearize_at=clean)["bev_logits"]
        return dec.components[m].double().numpy().ravel()

    values = {}
    for k, j in [(0, 1), (1, 2), (2, 0)]:
        clean = samples[k]
        for replaced, observed, column in (("camera", "camera", "C_p/C"), ("radar", "radar", "R_p/R")):
            perturbed = dict(clean, **{replaced: samples[j][replaced]})
            before, after = component(clean, clean, observed), component(perturbed, clean, observed)
            values.setdefault(f"PCC {column}", []).append(stats.pearsonr(after, before)[0])
            values.setdefault(f"MSE {column}", []).append(np.mean((after - before) ** 2))
    for key, per_pair in values.items():
        mean, std = results[lmd.name][key]
        # (float32 components computed pair by pair here, in one batch there: rounding only)
        assert mean == pytest.approx(np.mean(per_pair), rel=1e-4, abs=1e-6), key
        assert std == pytest.approx(np.std(per_pair), rel=1e-4, abs=1e-6), key


def test_encode_frames_does_not_depend_on_the_batch(model, frames):
    one = runner.encode_frames(model, frames, batch=1)
    two = runner.encode_frames(model, frames, batch=2)
    assert len(one) == len(two) == 3
    for a, b in zip(one, two):
        assert a.keys() == b.keys() == {"camera", "radar"}
        for m in a:
            assert a[m].shape[0] == 1
            assert torch.allclose(a[m], b[m], rtol=0, atol=1e-5), m


def test_encoded_frames_encode_on_access_and_keep_what_fits(model, frames):
    loads = []

    def load(index):
        loads.append(index)
        return frames[index]

    eager = runner.encode_frames(model, frames, batch=1)  # as EncodedFrames encodes: one at a time
    size = sum(t.numel() * t.element_size() for t in eager[0].values())
    lazy = runner.EncodedFrames(model, load, len(frames), cache_bytes=2 * size)  # room for two
    assert len(lazy) == 3 and loads == []
    for index in (0, 1, 0, 2, 1):
        for m, tensor in lazy[index].items():
            assert torch.equal(tensor, eager[index][m]), (index, m)
    # 0 and 1 encoded, 0 kept (used again), 2 evicted 1 (least recently used), so 1 comes again
    assert loads == [0, 1, 2, 1] and lazy.encoded == 4
    with pytest.raises(IndexError):
        lazy[3]


def test_columns_for_three_modalities_are_the_pairs_of_table_7():
    assert runner.columns(("camera", "radar", "lidar")) == [
        f"{pair}/{observed}" for pair in ("C_pR_p", "C_pL_p", "R_pL_p") for observed in "CRL"
    ]


def test_missing_values_are_written_as_nan_and_a_missing_gradcam_layer_is_skipped(model, frames, tmp_path):
    runner.write_metrics_csv(tmp_path / "m.csv", {"x": {"PCC C_p/C": (0.5, 0.25)}}, ("camera", "radar"))
    with open(tmp_path / "m.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[1][:3] == ["x", "0.5000", "0.2500"] and rows[1][3:] == ["nan"] * 14
    lmd_only = [m for m in METHODS if m.kind == "lmd"]
    runner.evaluate(
        model, frames[:2], tmp_path / "e", "t", offsets=1, methods=lmd_only, gradcam_layer="no_such_layer",
        log=lambda _: None,
    )  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "e").iterdir()) == [
        "decomposition.png",
        "metrics.csv",
        "tables.md",
    ]


def _scales(fig) -> dict[str, tuple[float, float]]:
    """Panel title (row 0) or 'signed <title of the column>' (row 1) -> the colour limits drawn."""
    columns = {round(ax.get_position().x0, 3): ax.get_title() for ax in fig.axes if ax.get_title()}
    scales = {}
    for ax in fig.axes:
        if ax.images:
            name = ax.get_title() or "signed " + columns[round(ax.get_position().x0, 3)]
            scales[name] = ax.images[0].get_clim()
    return scales


def _colour_bar_labels(fig) -> dict[tuple[float, float], str]:
    bars = [image.colorbar for ax in fig.axes for image in ax.images if image.colorbar is not None]
    return {bar.mappable.get_clim(): bar.ax.get_xlabel() or bar.ax.get_ylabel() for bar in bars}


def test_decomposition_figure_scales_and_labels(model, frames, tmp_path):
    sample = runner.encode_frames(model, frames[:1])[0]
    with torch.no_grad():
        dec = decompose(model.fuse, sample)["bev_logits"]
    fig = runner.decomposition_figure(model, sample, "frame 0 of the 1 evaluated")
    save_png(fig, tmp_path / "d.png")
    scales = _scales(fig)
    assert list(scales)[:4] == ["fused", "camera", "radar", "bias"]
    assert all(scales[name] == (0, 1) for name in ("fused", "camera", "radar", "bias"))  # ÷ panel max
    # signed: the modalities on one symmetric scale (their largest |logit|), fused and bias on their own
    shared = max(float(dec.components[m].abs().max()) for m in ("camera", "radar"))
    assert scales["signed camera"] == scales["signed radar"] == pytest.approx((-shared, shared))
    for name, tensor in (("fused", dec.total), ("bias", dec.bias)):
        limit = float(tensor.abs().max())
        assert scales[f"signed {name}"] == pytest.approx((-limit, limit))
    labels = _colour_bar_labels(fig)
    for clim in scales.values():  # every colour scale drawn has a colour bar
        assert any(clim == pytest.approx(bar) for bar in labels), clim
    assert any(f"±{shared:.3g}" in label and "camera, radar" in label for label in labels.values())
    assert "frame 0 of the 1 evaluated" in fig.get_suptitle()
    for ax in fig.axes:  # metric axes (y left is left), the ego vehicle at the origin
        if ax.images:
            assert ax.get_xlim() == (model.grid.y_max, model.grid.y_min)
            assert [line.get_marker() for line in ax.lines] == ["^"]
    assert overlapping_titles(fig) == []


def test_gradcam_titles_are_inside_the_figure_and_each_map_has_a_colour_bar(model, frames, tmp_path):
    sample = runner.encode_frames(model, frames[:1])[0]
    fig = runner.gradcam_figure(model, sample, "bev_compressor", "frame 0 of the 1 evaluated")
    save_png(fig, tmp_path / "g.png")
    assert overlapping_titles(fig) == []
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    assert titles[1:] == ["camera Grad-CAM", "radar Grad-CAM"] and titles[0].startswith("region: ")
    cams = [ax.images[0] for ax in fig.axes if ax.get_title().endswith("Grad-CAM")]
    assert all(image.colorbar is not None for image in cams)
    assert all("Grad-CAM at bev_compressor" in image.colorbar.ax.get_xlabel() for image in cams)
