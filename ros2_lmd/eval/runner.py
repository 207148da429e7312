"""`ros2-lmd evaluate`: the paper's evaluation on a model and a set of frames, written to a folder:
metrics.csv (one row per method, mean and std per metric), tables.md (the paper's layout, with the
paper's numbers beside ours where the paper has them) and figures like the paper's Figures 2 and 4
plus a modality Grad-CAM panel."""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ros2_lmd.eval.gradcam import modality_gradcam
from ros2_lmd.eval.perturbation import LETTER, Method, paper_methods, perturbation_sets, run_perturbation
from ros2_lmd.lmd import RuleVariants, decompose
from ros2_lmd.models.base import FusionModel
from ros2_lmd.render.figures import draw_bev, new_figure, save_png, symmetric_limit

if TYPE_CHECKING:
    from matplotlib.figure import Figure

OUTPUT_KEY = "bev_logits"
# The paper's reported PCC for LMD (Ratio Rule) on nuScenes: Table 1 (radar + camera, LiDAR +
# camera; the LiDAR rows are labelled R_p/... in the paper, here L_p/...) and Table 7 (R+L+C).
PAPER_LMD_PCC = {
    ("camera", "radar"): {"R_p/R": 0.05, "R_p/C": 1.00, "C_p/R": 1.00, "C_p/C": 0.15},
    ("camera", "lidar"): {"L_p/L": 0.09, "L_p/C": 1.00, "C_p/L": 1.00, "C_p/C": 0.44},
    ("camera", "radar", "lidar"): {
        "C_pR_p/L": 1.00,
        "C_pR_p/C": 0.1385,
        "C_pR_p/R": 0.0279,
        "C_pL_p/R": 1.00,
        "C_pL_p/C": 0.1488,
        "C_pL_p/L": 0.2310,
        "R_pL_p/C": 1.00,
        "R_pL_p/R": 0.0373,
        "R_pL_p/L": 0.2023,
    },
}


def _device(model: FusionModel) -> torch.device:
    return next(model.parameters()).device


def encode_frames(model: FusionModel, frames: Sequence, batch: int = 8) -> list[dict[str, torch.Tensor]]:
    """Encoded features (batch 1 each) of SensorFrames: the inputs of `fuse`."""
    samples = []
    with torch.no_grad():
        for start in range(0, len(frames), batch):
            feats = model.encode(model.prepare(list(frames[start : start + batch]), _device(model)))
            for b in range(next(iter(feats.values())).shape[0]):
                samples.append({m: f[b : b + 1].clone() for m, f in feats.items()})
    return samples


class EncodedFrames(Sequence):
    """`encode_frames` on access, for sets too large to hold encoded (a Simple-BEV sample's features
    take ~160 MB): `load(i)` gives SensorFrame i, its features are computed when first asked for and
    the most recently used ones kept within `cache_bytes`. The perturbation pairs visit sample k with
    its partners k + s*m, so most samples are encoded about offsets + 1 times on a large set."""

    def __init__(
        self, model: FusionModel, load: Callable[[int], Any], count: int, cache_bytes: int = 2 << 30
    ) -> None:
        from collections import OrderedDict

        self.model, self.load, self.count, self.cache_bytes = model, load, count, cache_bytes
        self._cache: OrderedDict[int, dict[str, torch.Tensor]] = OrderedDict()
        self.encoded = 0  # encodes run so far (a sample evicted and asked for again counts twice)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.count:
            raise IndexError(f"sample {index} of {self.count}")
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        features = encode_frames(self.model, [self.load(index)])[0]
        self.encoded += 1
        self._cache[index] = features
        size = sum(t.numel() * t.element_size() for t in features.values())
        while len(self._cache) > 1 and len(self._cache) * size > self.cache_bytes:
            self._cache.popitem(last=False)
        return features


def columns(modalities: tuple[str, ...]) -> list[str]:
    return [
        f"{''.join(LETTER[m] + '_p' for m in pert)}/{LETTER[o]}"
        for pert in perturbation_sets(modalities)
        for o in modalities
    ]


def write_metrics_csv(path: Path, results: dict, modalities: tuple[str, ...]) -> None:
    cols = columns(modalities)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["method"]
            + [f"{metric} {c} {stat}" for metric in ("PCC", "MSE") for c in cols for stat in ("mean", "std")]
        )
        for method, row in results.items():
            values = []
            for metric in ("PCC", "MSE"):
                for c in cols:
                    mean, std = row.get(f"{metric} {c}", (float("nan"), float("nan")))
                    values += [f"{mean:.4f}", f"{std:.4f}"]
            writer.writerow([method, *values])


def markdown_tables(
    results: dict,
    methods: Sequence[Method],
    modalities: tuple[str, ...],
    n_samples: int,
    n_pairs: int,
    model_name: str,
    data_label: str = "synthetic validation frames",
) -> str:
    cols = columns(modalities)
    lines = [
        f"# LMD evaluation: {model_name}",
        "",
        f"{n_samples} {data_label}, {n_pairs} perturbation pairs per column "
        "(App. D.4 sampling, spacing scaled to the set size). Mean ± std. A column X_p/Y is "
        "modality Y's prediction when X is replaced: PCC should be high and MSE ~0 when Y is not "
        "among the replaced ones, low PCC and high MSE when it is.",
        "",
    ]
    for table, title in (
        ("linearisation", "Linearisation ablation (paper Tables 1 / 7)"),
        ("variants", "BN - LN rule variants (paper Tables 2 / 8)"),
        ("splitting", "Activation bias splitting (paper Table 6)"),
        ("shap", "SHAP vs LMD + SHAP (paper Table 4)"),
    ):
        rows = [m for m in methods if m.table == table and m.name in results]
        if not rows:
            continue
        for metric in ("PCC", "MSE"):
            lines += [
                f"## {title}: {metric}",
                "",
                "| method | " + " | ".join(cols) + " |",
                "|---|" + "---|" * len(cols),
            ]
            for method in rows:
                cells = []
                for c in cols:
                    mean, std = results[method.name].get(f"{metric} {c}", (float("nan"), float("nan")))
                    cells.append(f"{mean:.2f} ± {std:.2f}")
                lines.append(f"| {method.name} | " + " | ".join(cells) + " |")
            reference = PAPER_LMD_PCC.get(tuple(modalities), {})
            if metric == "PCC" and table == "linearisation" and reference:
                paper = [f"{reference[c]:.2f}" if c in reference else "" for c in cols]
                lines.append("| *paper, LMD (Ratio Rule)* | " + " | ".join(paper) + " |")
            lines.append("")
    return "\n".join(lines)


# --- Figures ------------------------------------------------------------------------------------


def decomposition_figure(
    model: FusionModel, sample: dict[str, torch.Tensor], frame_label: str, rules: RuleVariants | None = None
) -> Figure:
    """Like the paper's Figures 2 and 4: the fused logits, each modality's part and the bias. Top: the
    positive part, each panel divided by its own maximum (where each one sees vehicles, whatever its
    size). Bottom: signed logits; the modalities on one shared scale, so their colours compare, the
    fused output and the bias each on their own."""
    with torch.no_grad():
        dec = decompose(model.fuse, sample, rules=rules)[OUTPUT_KEY]
    maps = {"fused": dec.total, **dec.components, "bias": dec.bias}
    maps = {name: tensor[0, 0].float().cpu().numpy() for name, tensor in maps.items()}
    modalities = list(dec.components)
    grid = model.grid
    fig = new_figure((2.4 * len(maps) + 1.0, 6.6), layout="compressed")
    axes = fig.subplots(2, len(maps), sharex=True, sharey=True)
    for col, (name, bev) in enumerate(maps.items()):
        positive = np.clip(bev, 0, None)
        top = draw_bev(axes[0, col], positive / (positive.max() or 1.0), grid, cmap="magma", vmin=0, vmax=1)
        axes[0, col].set_title(name, fontsize=10)
        axes[1, col].set_xlabel("y [m]", fontsize=8)
    fig.colorbar(top, ax=axes[0, :], location="right", label="positive part\n÷ the panel's max")
    fused_limit = symmetric_limit([maps["fused"]])
    fused = draw_bev(axes[1, 0], maps["fused"], grid, cmap="RdBu_r", vmin=-fused_limit, vmax=fused_limit)
    fig.colorbar(fused, ax=axes[1, 0], location="bottom", label=f"fused logit (±{fused_limit:.3g})")
    shared_limit = symmetric_limit([maps[m] for m in modalities])
    for col, m in enumerate(modalities, start=1):
        shared = draw_bev(axes[1, col], maps[m], grid, cmap="RdBu_r", vmin=-shared_limit, vmax=shared_limit)
    fig.colorbar(
        shared,
        ax=axes[1, 1 : 1 + len(modalities)],
        location="bottom",
        label=f"logit contribution (one scale for {', '.join(modalities)}: ±{shared_limit:.3g})",
    )
    bias_limit = symmetric_limit([maps["bias"]])
    bias = draw_bev(axes[1, -1], maps["bias"], grid, cmap="RdBu_r", vmin=-bias_limit, vmax=bias_limit)
    fig.colorbar(bias, ax=axes[1, -1], location="bottom", label=f"bias logit\n(own scale: ±{bias_limit:.3g})")
    axes[0, 0].set_ylabel("positive part\nx [m]", fontsize=8)
    axes[1, 0].set_ylabel("signed logits\nx [m]", fontsize=8)
    fig.suptitle(
        f"LMD decomposition of the fused BEV logits, {frame_label}\n"
        "base_link metres, ▲ ego vehicle facing +x",
        fontsize=10,
    )
    return fig


def gradcam_figure(
    model: FusionModel, sample: dict[str, torch.Tensor], layer: str, frame_label: str
) -> Figure:
    """Modality Grad-CAM (App. E.3) at `layer` for the region of the fused detections (p >= 0.5; the
    strongest cell when there are none). Each modality on its own scale: one often dominates the
    layer, and on a shared scale the others would be black."""
    from matplotlib.ticker import MaxNLocator

    with torch.no_grad():
        logits = model.fuse(sample)[OUTPUT_KEY]
    region = (torch.sigmoid(logits) >= 0.5).to(logits.dtype)
    region_name = "fused p ≥ 0.5"
    if region.sum() == 0:
        region = (logits >= logits.max()).to(logits.dtype)
        region_name = "strongest fused cell"
    maps = modality_gradcam(model, model.fuse, sample, layer, region, OUTPUT_KEY)
    maps = {m: cam[0].cpu().numpy() for m, cam in maps.items()}
    grid = model.grid
    fig = new_figure((2.5 * (len(maps) + 1), 3.9), layout="compressed")
    axes = fig.subplots(1, len(maps) + 1, sharex=True, sharey=True)
    draw_bev(axes[0], region[0, 0].cpu().numpy(), grid, cmap="gray", vmin=0, vmax=1)
    axes[0].set_title(f"region: {region_name}", fontsize=9)
    for ax, (m, cam) in zip(axes[1:], maps.items()):
        image = draw_bev(ax, cam, grid, cmap="inferno", vmin=0, vmax=float(cam.max()) or 1.0)
        ax.set_title(f"{m} Grad-CAM", fontsize=9)
        bar = fig.colorbar(image, ax=ax, location="bottom", label=f"Grad-CAM at {layer}\n(own scale)")
        bar.ax.xaxis.set_major_locator(MaxNLocator(nbins=3))  # small maxima have long tick labels
    for ax in axes:
        ax.set_xlabel("y [m]", fontsize=8)
    axes[0].set_ylabel("x [m]", fontsize=8)
    fig.suptitle(f"Modality Grad-CAM, {frame_label}; ▲ ego vehicle facing +x", fontsize=10)
    return fig


def evaluate(
    model: FusionModel,
    frames: Sequence,
    out_dir: Path,
    model_name: str,
    offsets: int = 12,
    methods: Sequence[Method] | None = None,
    gradcam_layer: str = "bev_compressor",
    log: Callable[[str], None] = print,
    samples: Sequence[dict[str, torch.Tensor]] | None = None,
    anchors: int | None = None,
    batch: int = 8,
    data_label: str = "synthetic validation frames",
    rules: RuleVariants | None = None,
) -> dict:
    """The paper's evaluation of `model` on `frames` (SensorFrames, encoded here), or on `samples`
    (encoded features, e.g. an EncodedFrames over a recorded dataset; `frames` is then unused):
    metrics.csv, tables.md and the figures in `out_dir`. `anchors`: evaluate the pairs of that many
    samples k spread over the set (eval.metrics.perturbation_pairs); `batch`: pairs per model call;
    `rules`: the LMD rules of the decomposition figure (default: RuleVariants())."""
    from tqdm import tqdm

    from ros2_lmd.eval.metrics import anchor_indices, perturbation_pairs

    out_dir.mkdir(parents=True, exist_ok=True)
    methods = list(methods or paper_methods())
    if samples is None:
        samples = encode_frames(model, frames, batch)
    n_pairs = len(perturbation_pairs(len(samples), offsets, anchors=anchors))
    with tqdm(total=n_pairs * len(methods), desc="evaluating", unit="pair", file=sys.stderr) as bar:
        results = run_perturbation(
            model.fuse,
            samples,
            methods,
            OUTPUT_KEY,
            offsets=offsets,
            batch=batch,
            progress=bar.update,
            anchors=anchors,
        )
    write_metrics_csv(out_dir / "metrics.csv", results, model.modalities)
    text = markdown_tables(results, methods, model.modalities, len(samples), n_pairs, model_name, data_label)
    (out_dir / "tables.md").write_text(text)
    # the evaluated frame with the most predicted vehicle cells makes the clearest figure
    candidates = anchor_indices(len(samples), anchors)
    with torch.no_grad():
        occupied = [
            float((torch.sigmoid(model.fuse(samples[k])[OUTPUT_KEY]) >= 0.5).sum()) for k in candidates
        ]
    index = candidates[int(np.argmax(occupied))]
    label = f"frame {index} of the {len(samples)} evaluated (0-based)"
    save_png(decomposition_figure(model, samples[index], label, rules), out_dir / "decomposition.png")
    if gradcam_layer in dict(model.named_modules()):
        save_png(gradcam_figure(model, samples[index], gradcam_layer, label), out_dir / "gradcam.png")
    log(text)
    return results
