"""Networks: the generator variants (identity-initialized residual, resize upsampling) and the U-Net."""

from __future__ import annotations

import pytest
import torch

from gan.networks import ResidualGenerator, UNet, build_generator


def test_residual_generator_starts_as_identity_and_learns():
    torch.manual_seed(0)
    gen = build_generator("light", ngf=8, blocks=1, upsample="resize", residual=True)
    assert isinstance(gen, ResidualGenerator)
    x = torch.rand(2, 3, 32, 48) * 1.8 - 0.9
    assert (gen(x) - x).abs().max() < 2e-3
    opt = torch.optim.SGD(gen.parameters(), lr=0.5)
    for _ in range(3):  # pull the output toward a brighter image: it must move off identity
        opt.zero_grad()
        (gen(x) - (x + 0.5).clamp(-1, 1)).pow(2).mean().backward()
        opt.step()
    assert (gen(x) - x).abs().mean() > 0.01


@pytest.mark.parametrize("upsample", ["transpose", "resize"])
def test_generators_keep_the_input_size(upsample):
    gen = build_generator("light", ngf=8, blocks=1, upsample=upsample)
    assert gen(torch.zeros(1, 3, 36, 52)).shape == (1, 3, 36, 52)


def test_unknown_upsample_is_a_clear_error():
    with pytest.raises(ValueError, match="generator.upsample='nearest'"):
        build_generator("light", ngf=8, blocks=1, upsample="nearest")


def test_the_unet_segments_a_thumbnail_smaller_than_its_deepest_level():
    """Depth 3 pools each side by 8: a 5x7 image would pool to nothing, so it is padded and
    its output cropped back; a larger image goes through as it is."""
    torch.manual_seed(0)
    net = UNet(base=4, depth=3).eval()
    with torch.no_grad():
        assert net(torch.rand(2, 3, 5, 7)).shape == (2, 2, 5, 7)
        x = torch.rand(1, 3, 8, 11)
        torch.testing.assert_close(net(x), net.layers(x))
