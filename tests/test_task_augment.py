"""The paired augmentation: masks follow the image's geometric draw, and the strong preset's
terms can be left out one by one (the domain-randomization ablation)."""

from __future__ import annotations

import kornia.augmentation as K
import pytest
import torch

from gan.augment import STRONG_PHOTOMETRIC, PairedAugment
from synth.distributions import ConfigError


def crack_batch(n: int = 4, size: int = 48) -> tuple[torch.Tensor, torch.Tensor]:
    """Images that are +1 exactly on the crack and -1 elsewhere: the mask drawn in grey."""
    masks = torch.zeros(n, size, size, dtype=torch.long)
    for i in range(n):
        masks[i, 8 + i : 40, 20 + 2 * i : 24 + 2 * i] = 1
        masks[i, 30:34, 4:44] = 1
    return masks[:, None].float().expand(-1, 3, -1, -1) * 2 - 1, masks


def test_strong_geometry_moves_masks_with_their_images() -> None:
    torch.manual_seed(0)
    images, masks = crack_batch()
    augment = PairedAugment("strong", p=1.0, drop=STRONG_PHOTOMETRIC)
    out_images, out_masks = augment(images, masks)
    assert out_masks.dtype == torch.long and set(out_masks.unique().tolist()) <= {0, 1}
    assert not torch.equal(out_masks, masks)  # p=1: every sample warped
    drawn = out_images[:, 0] > 0
    crack = out_masks == 1
    iou = (drawn & crack).sum() / (drawn | crack).sum()
    assert iou > 0.8  # bilinear image and nearest mask differ only at the edges


def test_drop_leaves_out_the_named_terms() -> None:
    full = PairedAugment("strong")
    ablated = PairedAugment("strong", drop=["blur", "noise"])
    assert set(full.terms) - set(ablated.terms) == {"blur", "noise"}
    kinds = [type(m) for m in ablated.photometric]
    assert K.RandomGaussianBlur not in kinds and K.RandomGaussianNoise not in kinds
    assert K.RandomGaussianBlur in [type(m) for m in full.photometric]
    assert PairedAugment("strong", drop="blur").terms == tuple(t for t in full.terms if t != "blur")


def test_without_photometric_terms_pixel_values_are_kept() -> None:
    """Flips alone only move pixels: the multiset of grey values stays (a check that dropping
    every photometric term really turns colour, blur and noise off)."""
    torch.manual_seed(1)
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    masks = torch.zeros(2, 16, 16, dtype=torch.long)
    augment = PairedAugment("strong", p=1.0, drop=["affine", "perspective", *STRONG_PHOTOMETRIC])
    out, _ = augment(images, masks)
    assert torch.allclose(out.flatten(1).sort().values, images.flatten(1).sort().values, atol=1e-6)
    noisy, _ = PairedAugment("strong", p=1.0, drop=["affine", "perspective"])(images, masks)
    assert not torch.allclose(noisy.flatten(1).sort().values, images.flatten(1).sort().values)


def test_params_replace_only_the_named_arguments_of_a_term() -> None:
    """Scale without rotation or shear: the affine warp keeps the preset's scale range; a
    jitter without hue keeps its brightness range."""
    torch.manual_seed(3)
    shape = torch.Size([256, 3, 8, 8])
    augment = PairedAugment("strong", params={"affine": {"degrees": 0, "shear": 0}})
    affine = next(m for m in augment.geometric.children() if isinstance(m, K.RandomAffine))
    draw = affine.forward_parameters(shape)
    assert draw["angle"].abs().max() == 0 and draw["shear_x"].abs().max() == 0
    assert 0.75 <= draw["scale"].min() < 0.8 and 1.2 < draw["scale"].max() <= 1.25
    jitter = PairedAugment("strong", params={"jitter": {"hue": 0}}).photometric[0]
    draw = jitter.forward_parameters(shape)
    assert draw["hue_factor"].abs().max() == 0
    assert 0.6 <= draw["brightness_factor"].min() < 0.7 and draw["brightness_factor"].max() > 1.3


def test_a_rotation_only_warp_keeps_crack_area() -> None:
    """Rotation without scale keeps a centred crack's area (bar the resampled edges): a
    scale range would not, which is the point of setting the two apart."""
    torch.manual_seed(2)
    images, masks = crack_batch()
    rotate = {"affine": {"scale": [1.0, 1.0], "shear": 0, "p": 1.0}}
    augment = PairedAugment("strong", drop=["perspective", *STRONG_PHOTOMETRIC], params=rotate)
    _, out = augment(images, masks)
    assert out.sum(dim=(1, 2)).float() == pytest.approx(masks.sum(dim=(1, 2)).float(), rel=0.25)


def test_reflection_padding_mirrors_masks_with_their_images() -> None:
    """Any kornia argument of a term can be set: a zoomed-out warp that fills its borders by
    reflection (not with black) mirrors the cracks in image and mask alike."""
    images, masks = crack_batch()
    zoom_out = {"scale": [0.6, 0.7], "degrees": 0, "shear": 0, "p": 1.0}
    crack_area = {}
    for padding in ("zeros", "reflection"):
        torch.manual_seed(0)
        params = {"affine": zoom_out | {"padding_mode": padding}}
        augment = PairedAugment("strong", drop=["perspective", *STRONG_PHOTOMETRIC], params=params)
        out_images, out_masks = augment(images, masks)
        drawn, crack = out_images[:, 0] > 0, out_masks == 1
        assert (drawn & crack).sum() / (drawn | crack).sum() > 0.9
        crack_area[padding] = crack.sum().item()
    assert crack_area["reflection"] > 1.2 * crack_area["zeros"]  # the mirrored copies


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"sharpen": {"p": 1.0}}, "unknown terms"),
        ({"affine": {"rotation": 10}}, r"augment.params.affine: unknown arguments \['rotation'\]"),
    ],
)
def test_bad_term_params_fail_clearly(params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PairedAugment("strong", params=params)
    with pytest.raises(ValueError, match="only the strong preset"):
        PairedAugment("light", params={"affine": {"degrees": 0}})


@pytest.mark.parametrize(
    ("preset", "drop", "message"),
    [
        ("strong", ["sharpen"], "unknown terms"),
        ("light", ["blur"], "only the strong preset"),
        ("heavy", [], "expected none, light or strong"),
    ],
)
def test_bad_augment_settings_fail_clearly(preset: str, drop: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PairedAugment(preset, drop=drop)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"p": 2}, r"^augment\.p=2: expected a number >= 0 and <= 1$"),
        ({"p": -0.1}, r"^augment\.p=-0\.1: expected"),
        ({"p": "often"}, r"^augment\.p='often': expected"),
        ({"strength": -1}, r"^augment\.strength=-1: expected a number >= 0$"),
    ],
)
def test_a_probability_or_strength_out_of_range_is_refused(settings: dict, message: str) -> None:
    """``task.augment.p=2`` trained, kornia applying each term always."""
    with pytest.raises(ConfigError, match=message):
        PairedAugment("strong", **settings)
