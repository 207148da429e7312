"""`ros2-lmd evaluate`: the paper's evaluation on a model and a set of frames, written to a folder:
metrics.csv (one row per method, mean and std per metric), tables.md (the paper's layout, with the
paper's numbers beside ours where the paper has them) and figures like the paper's Figures 2 and 4
plus a modality Grad-CAM panel."""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from ros2_lmd.eval.gradcam import modality_gradcam
from ros2_lmd.eval.perturbation import LETTER, Method, paper_methods, perturbation_sets, run_perturbation
from ros2_lmd.lmd import decompose
from ros2_lmd.models.base import FusionModel

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


def encode_frames(model: FusionModel, frames: Sequence, batch: int = 8) -> list[dict[str, torch.Tensor]]:
    """Encoded features (batch 1 each) of SensorFrames: the inputs of `fuse`."""
    samples = []
    with torch.no_grad():
        for start in range(0, len(frames), batch):
            feats = model.encode(model.prepare(list(frames[start : start + batch])))
            for b in range(next(iter(feats.values())).shape[0]):
                samples.append({m: f[b : b + 1].clone() for m, f in feats.items()})
    return samples


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
) -> str:
    cols = columns(modalities)
    lines = [
        f"# LMD evaluation: {model_name}",
        "",
        f"{n_samples} synthetic validation frames, {n_pairs} perturbation pairs per column "
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


def decomposition_figure(path: Path, model: FusionModel, sample: dict[str, torch.Tensor]) -> None:
    """Like the paper's Figures 2 and 4: fused prediction, each modality's and the bias's, positive
    part normalised to its maximum (top) and signed (bottom). x forward is up."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with torch.no_grad():
        dec = decompose(model.fuse, sample)[OUTPUT_KEY]
    layers = {"fused": dec.total, **dec.components, "bias": dec.bias}
    fig, axes = plt.subplots(2, len(layers), figsize=(2.6 * len(layers), 5.4))
    for col, (name, tensor) in enumerate(layers.items()):
        data = tensor[0, 0].float().numpy().T[::-1, ::-1]
        positive = np.clip(data, 0, None)
        axes[0, col].imshow(positive / (positive.max() or 1.0), cmap="magma", vmin=0, vmax=1)
        limit = float(np.abs(data).max()) or 1.0
        axes[1, col].imshow(data, cmap="RdBu_r", vmin=-limit, vmax=limit)
        axes[0, col].set_title(name)
        for row in range(2):
            axes[row, col].set_xticks([])
            axes[row, col].set_yticks([])
    axes[0, 0].set_ylabel("positive, normalised")
    axes[1, 0].set_ylabel("signed")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def gradcam_figure(path: Path, model: FusionModel, sample: dict[str, torch.Tensor], layer: str) -> None:
    """Modality Grad-CAM (App. E.3) at `layer` for the region of the strongest fused detection."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with torch.no_grad():
        logits = model.fuse(sample)[OUTPUT_KEY]
    region = (torch.sigmoid(logits) >= 0.5).to(logits.dtype)
    if region.sum() == 0:
        region = (logits >= logits.max()).to(logits.dtype)
    maps = modality_gradcam(model, model.fuse, sample, layer, region, OUTPUT_KEY)
    fig, axes = plt.subplots(1, len(maps) + 1, figsize=(2.6 * (len(maps) + 1), 2.8))
    axes[0].imshow(region[0, 0].numpy().T[::-1, ::-1], cmap="gray")
    axes[0].set_title("region")
    for ax, (m, cam) in zip(axes[1:], maps.items()):
        ax.imshow(cam[0].numpy().T[::-1, ::-1], cmap="inferno")
        ax.set_title(f"{m}-GradCAM")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def evaluate(
    model: FusionModel,
    frames: Sequence,
    out_dir: Path,
    model_name: str,
    offsets: int = 12,
    methods: Sequence[Method] | None = None,
    gradcam_layer: str = "bev_compressor",
    log: Callable[[str], None] = print,
) -> dict:
    from tqdm import tqdm

    from ros2_lmd.eval.metrics import perturbation_pairs

    out_dir.mkdir(parents=True, exist_ok=True)
    methods = list(methods or paper_methods())
    samples = encode_frames(model, frames)
    n_pairs = len(perturbation_pairs(len(samples), offsets))
    with tqdm(total=n_pairs * len(methods), desc="evaluating", unit="pair", file=sys.stderr) as bar:
        results = run_perturbation(
            model.fuse, samples, methods, OUTPUT_KEY, offsets=offsets, progress=bar.update
        )
    write_metrics_csv(out_dir / "metrics.csv", results, model.modalities)
    text = markdown_tables(results, methods, model.modalities, len(samples), n_pairs, model_name)
    (out_dir / "tables.md").write_text(text)
    # the frame with the most predicted vehicle cells makes the clearest figure
    with torch.no_grad():
        occupied = [float((torch.sigmoid(model.fuse(s)[OUTPUT_KEY]) >= 0.5).sum()) for s in samples]
    best = samples[int(np.argmax(occupied))]
    decomposition_figure(out_dir / "decomposition.png", model, best)
    if gradcam_layer in dict(model.named_modules()):
        gradcam_figure(out_dir / "gradcam.png", model, best, gradcam_layer)
    log(text)
    return results
