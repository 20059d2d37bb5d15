"""Networks, all sized from config: segmentation U-Net (task model and the GAN's f_s)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval

from synth.distributions import ConfigError

#: The generators halve a side twice (two stride-2 convolutions) and double it back: a side
#: must be a multiple of this to come out at its own size (translation pads up to one).
PAD_MULTIPLE = 4


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
    so the model trains on small crops and predicts full 544x384 images; an image under
    2**depth pixels a side is padded (edge pixels repeated) and its output cropped back."""

    def __init__(self, in_channels: int = 3, num_classes: int = 2, base: int = 16, depth: int = 4):
        super().__init__()
        widths = [base * 2**i for i in range(depth + 1)]
        self.stem = conv_block(in_channels, widths[0])
        self.down = nn.ModuleList(conv_block(widths[i], widths[i + 1]) for i in range(depth))
        self.up = nn.ModuleList(
            conv_block(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(depth))
        )
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    @property
    def smallest_side(self) -> int:
        """Each level halves: a smaller side pools to nothing (padded here, not when traced)."""
        return 2 ** len(self.down)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        least = self.smallest_side
        if not torch.jit.is_tracing() and (h < least or w < least):  # a thumbnail
            x = F.pad(x, (0, max(0, least - w), 0, max(0, least - h)), mode="replicate")
            return self.layers(x)[..., :h, :w]
        return self.layers(x)

    def layers(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.stem(x)]
        for block in self.down:
            skips.append(block(F.max_pool2d(skips[-1], 2)))
        y = skips.pop()
        for block in self.up:
            skip = skips.pop()
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = block(torch.cat([y, skip], dim=1))
        return self.head(y)


def fold_batchnorm(net: nn.Module) -> nn.Module:
    """Fold every eval-mode ``Conv2d -> BatchNorm2d`` pair inside an ``nn.Sequential`` into the
    convolution (in place; inference only). The U-Net's blocks and torchvision's
    ``Conv2dNormActivation`` are such pairs: one memory pass less per layer, same outputs."""
    for module in net.modules():
        if not isinstance(module, nn.Sequential):
            continue
        for i in range(len(module) - 1):
            conv, bn = module[i], module[i + 1]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and not bn.training:
                module[i] = fuse_conv_bn_eval(conv, bn)
                module[i + 1] = nn.Identity()
    return net


class ChannelsLastInput(nn.Module):
    """Runs ``net`` in NHWC memory layout (oneDNN's fast path on CPU; tensor cores on GPU)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.contiguous(memory_format=torch.channels_last))


# --------------------------------------------------------------------------- CycleGAN networks


class InstanceNorm(nn.Module):
    """``nn.InstanceNorm2d(affine=False)`` computed as a group norm with one channel per group.

    Same statistics, same eps, no parameters or buffers (state dicts are unchanged), but the
    group-norm kernel works on the tensor in place where instance norm reshapes it into a
    batch norm over ``(1, N*C, H, W)``: about 10 % off an eager CycleGAN step on CPU.
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.channels, self.eps = channels, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x, self.channels, eps=self.eps)

    def extra_repr(self) -> str:
        return f"{self.channels}, eps={self.eps}"


class ResBlock(nn.Module):
    """Reflection-padded residual block; ``depthwise`` swaps each 3x3 conv for a depthwise 3x3
    plus pointwise 1x1 (about 8x fewer FLOPs at 128 channels: the CPU-friendly variant)."""

    def __init__(self, channels: int, depthwise: bool = False) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_res_conv(channels, depthwise),
            InstanceNorm(channels),
            nn.ReLU(True),
            *_res_conv(channels, depthwise),
            InstanceNorm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _res_conv(c: int, depthwise: bool) -> list[nn.Module]:
    if not depthwise:
        return [nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3)]
    return [nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3, groups=c), nn.Conv2d(c, c, 1)]


class ResnetGenerator(nn.Sequential):
    """The original CycleGAN ResNet generator (reflection padding, instance norm, 2 down/up).

    With ``depthwise=False`` it is layer-for-layer the reference benchmark's ``generator`` (same
    ``nn.Sequential`` indices, so state dicts are interchangeable). Fully convolutional: any
    input whose sides are multiples of 4 comes back at the same size.
    """

    def __init__(
        self,
        channels: int = 3,
        ngf: int = 64,
        blocks: int = 9,
        depthwise: bool = False,
        upsample: str = "transpose",
    ) -> None:
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(channels, ngf, 7),
            InstanceNorm(ngf),
            nn.ReLU(True),
        ]
        c = ngf
        for _ in range(2):
            layers += [nn.Conv2d(c, 2 * c, 3, 2, 1), InstanceNorm(2 * c), nn.ReLU(True)]
            c *= 2
        layers += [ResBlock(c, depthwise) for _ in range(blocks)]
        for _ in range(2):
            layers += [*_upsample(c, upsample), InstanceNorm(c // 2), nn.ReLU(True)]
            c //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(c, channels, 7), nn.Tanh()]
        super().__init__(*layers)


def _upsample(c: int, mode: str) -> list[nn.Module]:
    """``transpose`` is the reference; ``resize`` (bilinear x2 then 3x3 conv) avoids the
    checkerboard pattern strided transposed convolutions print on flat surfaces."""
    if mode == "transpose":
        return [nn.ConvTranspose2d(c, c // 2, 3, 2, 1, output_padding=1)]
    if mode == "resize":
        return [
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.ReflectionPad2d(1),
            nn.Conv2d(c, c // 2, 3),
        ]
    raise ConfigError(f"generator.upsample={mode!r}: expected transpose or resize")


class ResidualGenerator(nn.Module):
    """G(x) = tanh(atanh(x) + h(x)) with h's last convolution zero-initialized.

    It starts as the identity, so the simulator's scene (cracks included) is intact from step
    0 and every update only has to move texture and colour toward the real domain: on a CPU
    budget of a few hundred steps that beats learning to redraw the image from scratch.
    """

    def __init__(
        self,
        channels: int = 3,
        ngf: int = 32,
        blocks: int = 6,
        depthwise: bool = True,
        upsample: str = "resize",
    ) -> None:
        super().__init__()
        body = ResnetGenerator(channels, ngf, blocks, depthwise, upsample)
        self.body = nn.Sequential(*list(body)[:-1])  # drop the Tanh
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(torch.atanh(x.clamp(-0.999, 0.999)) + self.body(x))


class PatchDiscriminator(nn.Sequential):
    """70x70 PatchGAN (``layers=3``), identical to the reference benchmark's ``discriminator``."""

    def __init__(self, channels: int = 3, ndf: int = 64, layers: int = 3) -> None:
        mods: list[nn.Module] = [nn.Conv2d(channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        c = ndf
        for stride in [2] * (layers - 1) + [1]:
            mods += [
                nn.Conv2d(c, 2 * c, 4, stride, 1),
                InstanceNorm(2 * c),
                nn.LeakyReLU(0.2, True),
            ]
            c *= 2
        mods += [nn.Conv2d(c, 1, 4, 1, 1)]
        super().__init__(*mods)

    @staticmethod
    def least_side(layers: int = 3) -> int:
        """The smallest square side it takes in training: ``layers`` stride-2 convolutions
        floor the side to ``side // 2**layers``, and the two 4x4 stride-1 ones take 1 px each;
        the instance norm between them needs more than one value a channel (a 2x2 map), so at
        least 3 px must be left after the stride-2 ones (16 px gave torch's 'Expected more
        than 1 value per channel when training')."""
        return 3 * 2**layers


def build_generator(
    kind: str = "resnet",
    ngf: int = 64,
    blocks: int = 9,
    channels: int = 3,
    upsample: str = "transpose",
    residual: bool = False,
) -> nn.Module:
    """``resnet``: reference architecture; ``light``: depthwise-separable residual blocks.

    ``residual`` wraps either as an identity-initialized residual generator.
    """
    if kind not in ("resnet", "light"):
        raise ConfigError(f"generator.kind={kind!r}: expected resnet or light")
    depthwise = kind == "light"
    if residual:
        return ResidualGenerator(channels, ngf, blocks, depthwise, upsample)
    return ResnetGenerator(channels, ngf, blocks, depthwise, upsample)
