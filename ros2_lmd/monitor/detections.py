"""Detections from the fused BEV output and the per-modality evidence behind each one.

Share formula (why): a detection exists because its cells' fused logits are high. LMD writes each
logit exactly as sum_m c_m + bias, so the evidence modality m contributes to a detection is its
positive contribution summed over the detection's cells:
    E_m = sum_{cells i} max(c_m[i], 0),     share_m = E_m / sum_k E_k.
Negative contributions argue against the object; they are reported through the disagreement alert
rather than netted off here, so that a sensor that both supports and suppresses cannot hide its
support. The bias is no sensor and takes no share. Shares are scale-free, so they compare across
models and frames.
"""

from __future__ import annotations

import cv2
import numpy as np

from ros2_lmd.geometry.grid import BEVGrid
from ros2_lmd.monitor.report import Detection


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def evidence_shares(components: dict[str, np.ndarray], mask: np.ndarray | None = None) -> dict[str, float]:
    """share_m = sum over the mask of max(c_m, 0), normalised over modalities (module docstring)."""
    evidence = {}
    for name, comp in components.items():
        values = comp[mask] if mask is not None else comp
        evidence[name] = float(np.clip(values, 0, None).sum())
    total = sum(evidence.values())
    if total <= 0:
        return {name: 0.0 for name in components}
    return {name: e / total for name, e in evidence.items()}


def extract_detections(
    fused: np.ndarray,
    components: dict[str, np.ndarray],
    grid: BEVGrid,
    threshold: float,
    min_cells: int,
    support_share: float,
    single_sensor_share: float,
) -> tuple[list[Detection], np.ndarray]:
    """Connected regions (8-connectivity) of sigmoid(fused) >= threshold with at least min_cells
    cells, and the label map (`labels == det.label` is a detection's region). `components` holds
    the modality components only (no bias)."""
    probability = sigmoid(fused)
    mask = (probability >= threshold).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    xs, ys = grid.cell_centres()
    detections: list[Detection] = []
    for label in range(1, count):
        cells = int(stats[label, cv2.CC_STAT_AREA])
        if cells < min_cells:
            continue
        region = labels == label
        shares = evidence_shares(components, region)
        ranked = sorted(shares, key=lambda m: shares[m], reverse=True)
        supporting = tuple(m for m in ranked if shares[m] >= support_share)
        points = np.stack([xs[region], ys[region]], axis=1).astype(np.float32)
        # The rectangle of cell centres, grown by half a cell on each side to cover the cells.
        (cx, cy), (w, h), angle = cv2.minAreaRect(points)
        corners = cv2.boxPoints(((cx, cy), (w + grid.resolution, h + grid.resolution), angle))
        detections.append(
            Detection(
                id=len(detections),
                centroid=(float(xs[region].mean()), float(ys[region].mean())),
                footprint=corners.astype(np.float64),
                area_m2=cells * grid.resolution**2,
                score=float(probability[region].max()),
                shares=shares,
                dominant=ranked[0],
                supporting=supporting,
                single_sensor=len(components) > 1
                and (len(supporting) <= 1 or shares[ranked[0]] >= single_sensor_share),
                cells=cells,
                label=label,
            )
        )
    return detections, labels
