"""Batch augmentation with kornia, applied identically to images and masks (on CPU or GPU).

Two presets: ``light`` (flips, 90-degree turns: what the GAN needs) and ``strong`` (the domain
randomization baseline: geometry, colour, blur, noise), both built from config knobs.
"""

from __future__ import annotations

import kornia.augmentation as K
import torch
from torch import nn


class PairedAugment(nn.Module):
    """Augments (images in [-1,1], masks of class ids) with the same geometric draw."""

    def __init__(self, preset: str = "light", p: float = 0.5, strength: float = 1.0) -> None:
        super().__init__()
        if preset not in ("none", "light", "strong"):
            raise ValueError(f"augment.preset={preset!r}: expected none, light or strong")
        geometric = [K.RandomHorizontalFlip(p=0.5), K.RandomVerticalFlip(p=0.5)]
        photometric: list[nn.Module] = []
        if preset == "strong":
            s = strength
            geometric += [
                K.RandomAffine(
                    degrees=30 * s, scale=(1 - 0.25 * s, 1 + 0.25 * s), shear=10 * s, p=p
                ),
                K.RandomPerspective(distortion_scale=0.3 * s, p=p),
            ]
            photometric = [
                K.ColorJitter(0.4 * s, 0.4 * s, 0.4 * s, 0.05 * s, p=0.8),
                K.RandomGrayscale(p=0.2),
                K.RandomGaussianBlur((5, 5), (0.1, 1.5 * s), p=p),
                K.RandomGaussianNoise(std=0.05 * s, p=p),
                K.RandomGamma((1 - 0.4 * s, 1 + 0.4 * s), p=p),
            ]
        self.enabled = preset != "none"
        self.geometric = K.AugmentationSequential(*geometric, data_keys=["input", "mask"])
        self.photometric = nn.Sequential(*photometric)

    @torch.no_grad()
    def forward(
        self, images: torch.Tensor, masks: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.enabled:
            return images, masks
        x = (images + 1) / 2
        m = masks[:, None].float()
        x, m = self.geometric(x, m)
        if len(self.photometric):
            x = self.photometric(x).clamp(0, 1)
        # Geometric warps fill with 0 = background; nearest keeps class ids intact.
        return x * 2 - 1, m[:, 0].round().long()
