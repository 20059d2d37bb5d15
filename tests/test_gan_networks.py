"""Generator variants: the identity-initialized residual generator and resize upsampling."""

from __future__ import annotations

import pytest
import torch

from gan.networks import ResidualGenerator, build_generator


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
