"""Write a small, randomly initialised simplebev_crml (the LMD paper's camera + meta radar + LiDAR
Simple-BEV) for `ros2-lmd evaluate` on a CPU: ResNet-50 encoder, latent 32, images 64 x 112, a
64 x 64 BEV of 0.5 m cells (8 height bins); the module layout is the full model's. The weights are
random (seeded), not trained: docs/evaluation.md says so where it uses them.

    python tools/small_simplebev_crml.py /tmp/simplebev_crml_small [--seed 0]
"""

from __future__ import annotations

import argparse

import torch

from ros2_lmd.geometry import BEVGrid
from ros2_lmd.models import build_model, save_model

GRID = BEVGrid(-16.0, 16.0, -16.0, 16.0, 0.5, z_min=-4.5, z_max=5.5, z_bins=8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="output path without extension (writes .safetensors and .json)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    model = build_model(
        "simplebev_crml", grid=GRID, image_size=(64, 112), encoder_type="res50", latent_dim=32
    )
    save_model(model, args.out, metadata={"source": f"random initialisation, seed {args.seed}"})
    print(f"wrote {args.out}.safetensors and {args.out}.json")


if __name__ == "__main__":
    main()
