"""Networks, all sized from config: segmentation U-Net (task model and the GAN's f_s)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """Compact U-Net. Any input size works: decoder features are resized to the skip's size,
    so the model trains on small crops and predicts full 544x384 images."""

    def __init__(self, in_channels: int = 3, num_classes: int = 2, base: int = 16, depth: int = 4):
        super().__init__()
        widths = [base * 2**i for i in range(depth + 1)]
        self.stem = conv_block(in_channels, widths[0])
        self.down = nn.ModuleList(conv_block(widths[i], widths[i + 1]) for i in range(depth))
        self.up = nn.ModuleList(
            conv_block(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(depth))
        )
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.stem(x)]
        for block in self.down:
            skips.append(block(F.max_pool2d(skips[-1], 2)))
        y = skips.pop()
        for block in self.up:
            skip = skips.pop()
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = block(torch.cat([y, skip], dim=1))
        return self.head(y)
