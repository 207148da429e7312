"""Draw docs/corruptions/*.png: every corruption kind of `ros2_lmd.corrupt` at severities 1, 3 and 5
next to the clean data, on one simulated frame read back from a bag (the payloads `ros2-lmd corrupt`
rewrites): camera kinds on cam_front, LiDAR and radar kinds in bird's-eye view (radar targets in
colour over the LiDAR in grey).

    .venv/bin/python tools/corruption_grid.py [--out docs/corruptions]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ros2_lmd.corrupt import KINDS
from ros2_lmd.corrupt.pointcloud import xyz
from ros2_lmd.messages.types import project_typestore
from ros2_lmd.replay.simulate import simulate_to_bag
from ros2_lmd.sensors.image import compressed_to_rgb
from ros2_lmd.sensors.pointcloud2 import structured_points

SEVERITIES = (1, 3, 5)
THUMB = (176, 100)  # camera thumbnails, WIDTHxHEIGHT
BEV_PX, BEV_M = 168, 50.0  # BEV tiles: pixels a side, metres from the sensor to a tile's edge
LABEL_W = 150


def simulated_payloads(seed: int) -> dict[str, object]:
    """cam_front's RGB image and lidar_top's and radar_front's structured clouds of one frame."""
    from rosbags.rosbag2 import Reader

    wanted = {
        "/cam_front/image_rect_compressed": "camera",
        "/lidar_top": "lidar",
        "/radar_front": "radar",
    }
    found: dict[str, object] = {}
    typestore = project_typestore()
    with tempfile.TemporaryDirectory() as folder:
        bag = Path(folder) / "frame"
        simulate_to_bag(bag, duration_s=0.6, seed=seed, progress=False)
        with Reader(bag) as reader:
            for connection, _, raw in reader.messages():
                if connection.topic in wanted:  # the last of each: the sensors have warmed up
                    message = typestore.deserialize_cdr(raw, connection.msgtype)
                    modality = wanted[connection.topic]
                    found[modality] = (
                        compressed_to_rgb(message, connection.topic)
                        if modality == "camera"
                        else structured_points(message, connection.topic)
                    )
    return found


def _label(text: str, size: tuple[int, int]) -> np.ndarray:
    tile = np.full((size[1], size[0], 3), 255, np.uint8)
    cv2.putText(tile, text, (6, size[1] // 2 + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return tile


def _bev(points: np.ndarray, background: np.ndarray | None = None, reach: float = BEV_M) -> np.ndarray:
    tile = np.full((BEV_PX, BEV_PX, 3), 255, np.uint8)
    scale = BEV_PX / (2 * reach)

    def pixels(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        col = (BEV_PX / 2 - p[:, 1] * scale).astype(int)  # y to the left is up the page's left
        row = (BEV_PX / 2 - p[:, 0] * scale).astype(int)  # x forward is up
        inside = (col >= 0) & (col < BEV_PX) & (row >= 0) & (row < BEV_PX)
        return row[inside], col[inside]

    if background is not None:
        tile[pixels(xyz(background))] = (170, 170, 170)
        for r, c in zip(*pixels(xyz(points))):
            cv2.circle(tile, (int(c), int(r)), 2, (200, 30, 30), -1)
    else:
        tile[pixels(xyz(points))] = (40, 40, 40)
    cv2.drawMarker(tile, (BEV_PX // 2, BEV_PX // 2), (0, 120, 255), cv2.MARKER_TRIANGLE_UP, 8, 2)
    return tile


def grid(modality: str, payloads: dict[str, object], seed: int) -> np.ndarray:
    kinds = {k: c for k, c in KINDS[modality].items() if c.acts_on in ("image", "points")}
    clean = payloads[modality]

    def draw(payload: object) -> np.ndarray:
        if modality == "camera":
            return cv2.resize(np.asarray(payload), THUMB, interpolation=cv2.INTER_AREA)
        if modality == "radar":
            return _bev(np.asarray(payload), np.asarray(payloads["lidar"]), reach=60.0)
        return _bev(np.asarray(payload))

    first = draw(clean)
    height, width = first.shape[:2]
    header = [_label("", (LABEL_W, 24))] + [
        _label(name, (width, 24)) for name in ("clean", *(f"severity {s}" for s in SEVERITIES))
    ]
    rows = [np.hstack(header)]
    for kind, corruption in kinds.items():
        tiles = [_label(kind, (LABEL_W, height)), first]
        for severity in SEVERITIES:
            rng = np.random.default_rng(seed)
            tiles.append(draw(corruption.function(clean, corruption.parameter(severity), rng)))
        rows.append(np.hstack([np.pad(t, ((1, 1), (1, 1), (0, 0)), constant_values=255) for t in tiles]))
    widest = max(r.shape[1] for r in rows)
    return np.vstack(
        [np.pad(r, ((0, 0), (0, widest - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", default="docs/corruptions", help="folder for camera.png, lidar.png, radar.png"
    )
    parser.add_argument("--seed", type=int, default=4)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    payloads = simulated_payloads(args.seed)
    for modality in ("camera", "lidar", "radar"):
        image = grid(modality, payloads, args.seed)
        path = out / f"{modality}.png"
        # a 128-colour palette keeps the camera grid's PNG small (noise kinds do not compress)
        Image.fromarray(image).quantize(128, dither=Image.Dither.NONE).save(path, optimize=True)
        print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
