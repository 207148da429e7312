"""The augmentations of the training loop: modality dropout (so every sensor matters and the model
survives losing one) and darkened cameras (so a failed camera shows as a collapse of its
contribution). Both draw from the loop's generator, so a resumed run repeats them."""

from __future__ import annotations

import torch


def modality_dropout(present: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """Per sample: with probability 1 - p all sensors; otherwise a non-empty proper subset of them,
    chosen uniformly (with three sensors: each one alone or each pair). Training each modality
    alone keeps the weaker branches (radar, LiDAR) from being starved by the dominant one (the
    gradient suppression RSC-MD describes), so that every sensor carries evidence of its own; the
    pairs are exactly the "one sensor lost" inputs the monitor and the validation see."""
    batch, modalities = present.shape
    dropped = torch.rand(batch, generator=generator) < p
    if not dropped.any() or modalities < 2:
        return present
    # a subset as the bits of an integer in [1, 2^M - 2]: neither empty nor all sensors
    subsets = torch.randint(1, 2**modalities - 1, (int(dropped.sum()),), generator=generator)
    bits = (subsets[:, None] >> torch.arange(modalities)) & 1
    keep = torch.ones_like(present, dtype=torch.bool)
    keep[dropped] = bits.bool()
    return present * keep.to(present.dtype)


def camera_fault_augmentation(images: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """Darken all cameras of a fraction p of the samples (blackout, or night at 5-20 % light plus
    sensor noise), target unchanged: the network learns that such images carry no evidence, which
    is also what lets the monitor see a camera failure as a collapse of the camera's contribution."""
    batch = images.shape[0]
    hit = torch.rand(batch, generator=generator) < p
    if not hit.any():
        return images
    images = images.clone()
    for b in hit.nonzero().flatten().tolist():
        level = (
            0.0
            if torch.rand(1, generator=generator).item() < 0.5
            else 0.05 + 0.15 * torch.rand(1, generator=generator).item()
        )
        noise = 0.02 * torch.randn(images[b].shape, generator=generator)
        images[b] = (images[b] * level + noise).clamp_(0.0, 1.0)
    return images
