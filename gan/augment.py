"""Batch augmentation with kornia, applied identically to images and masks (on CPU or GPU).

Two presets: ``light`` (horizontal and vertical flips: what the GAN needs) and ``strong`` (the domain
randomization baseline: geometry, colour, blur, noise), both built from config knobs. The
strong preset's terms are named so that one experiment can leave some out (``drop``): on rough
scenes the baseline lost precision, and only removing terms one at a time says which did it.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence

import kornia.augmentation as K
import torch
from torch import nn

from gan.data import as_names, in_range
from synth.distributions import ConfigError

PRESETS = ("none", "light", "strong")


def check_preset(preset: object, key: str) -> None:
    """One of PRESETS, refused under the key the user set (the GAN's ``gan_data.augment``
    or the task's ``task.augment.preset``)."""
    if preset not in PRESETS:
        raise ConfigError(f"{key}={preset!r}: expected none, light or strong")


#: The strong preset's terms beyond the flips, in the order they are applied.
STRONG_GEOMETRIC = ("affine", "perspective")
STRONG_PHOTOMETRIC = ("jitter", "grayscale", "blur", "noise", "gamma")


def strong_term_arguments(p: float, s: float) -> dict[str, tuple[type[nn.Module], dict]]:
    """The strong preset at strength ``s``: each term's kornia class and its keyword
    arguments, by term name. ``p`` is the probability of the geometric terms, blur, noise and
    gamma; colour jitter (0.8), grayscale (0.2) and the flips (0.5) keep their own, so
    ``p=0`` still changes most images' colours: ``drop`` leaves a term out."""
    return {
        "affine": (
            K.RandomAffine,
            {"degrees": 30 * s, "scale": (1 - 0.25 * s, 1 + 0.25 * s), "shear": 10 * s, "p": p},
        ),
        "perspective": (K.RandomPerspective, {"distortion_scale": 0.3 * s, "p": p}),
        "jitter": (
            K.ColorJitter,
            {"brightness": 0.4 * s, "contrast": 0.4 * s, "saturation": 0.4 * s}
            | {"hue": 0.05 * s, "p": 0.8},
        ),
        "grayscale": (K.RandomGrayscale, {"p": 0.2}),
        "blur": (K.RandomGaussianBlur, {"kernel_size": (5, 5), "sigma": (0.1, 1.5 * s), "p": p}),
        "noise": (K.RandomGaussianNoise, {"std": 0.05 * s, "p": p}),
        "gamma": (K.RandomGamma, {"gamma": (1 - 0.4 * s, 1 + 0.4 * s), "p": p}),
    }


def strong_terms(
    p: float, s: float, params: Mapping[str, Mapping] | None = None
) -> dict[str, nn.Module]:
    """The strong preset's terms, by name; ``params`` (keyed by term names, which PairedAugment
    checks) replaces some of a term's arguments (``{"affine": {"degrees": 0}}``: scale and
    shear without rotation)."""
    params = dict(params or {})
    terms = {}
    for name, (kind, arguments) in strong_term_arguments(p, s).items():
        given = dict(params.get(name) or {})
        takes = [a for a in inspect.signature(kind).parameters if a not in ("args", "kwargs")]
        if unknown := sorted(set(given) - set(takes)):
            raise ConfigError(
                f"augment.params.{name}: unknown arguments {unknown}; {kind.__name__} takes {takes}"
            )
        terms[name] = kind(**(arguments | given))
    return terms


class PairedAugment(nn.Module):
    """Augments (images in [-1,1], masks of class ids) with the same geometric draw.

    ``drop``: names of strong-preset terms to leave out (see STRONG_GEOMETRIC and
    STRONG_PHOTOMETRIC); the flips always stay. ``params``: per term, kornia arguments that
    replace the preset's (see strong_term_arguments), to tell which part of a term matters.
    """

    def __init__(
        self,
        preset: str = "light",
        p: float = 0.5,
        strength: float = 1.0,
        drop: Sequence[str] = (),
        params: Mapping[str, Mapping] | None = None,
    ) -> None:
        super().__init__()
        check_preset(preset, "augment.preset")
        in_range(p, "augment.p", 0, 1)  # kornia took p=2 as always
        in_range(strength, "augment.strength", 0, math.inf)
        drop = as_names(drop)  # drop=blur: one term, not b,l,u,r
        known = STRONG_GEOMETRIC + STRONG_PHOTOMETRIC
        for option, names in (("drop", drop), ("params", list(params or {}))):
            if unknown := [n for n in names if n not in known]:
                raise ConfigError(
                    f"augment.{option}: unknown terms {unknown}; choose from {list(known)}"
                )
            if names and preset != "strong":
                raise ConfigError(
                    f"augment.{option}={names}: only the strong preset has these terms"
                )
        terms = strong_terms(p, strength, params) if preset == "strong" else {}
        kept = {name: term for name, term in terms.items() if name not in drop}
        geometric = [K.RandomHorizontalFlip(p=0.5), K.RandomVerticalFlip(p=0.5)]
        geometric += [kept[n] for n in STRONG_GEOMETRIC if n in kept]
        photometric = [kept[n] for n in STRONG_PHOTOMETRIC if n in kept]
        self.terms = tuple(kept)
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
