"""Loss switches: label smoothing, mixup, Dice, class weights and the ignore label."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gan.task import CrackSegmenter, segmentation_loss, soft_dice_loss

TINY_NET = {"name": "unet", "base": 4, "depth": 2}


def confident_logits(target: torch.Tensor, margin: float = 6.0) -> torch.Tensor:
    return F.one_hot(target.clamp(max=1), 2).permute(0, 3, 1, 2).float() * margin


def test_label_smoothing_raises_loss_of_confident_correct_prediction() -> None:
    target = torch.randint(0, 2, (2, 8, 8))
    logits = confident_logits(target)
    plain = segmentation_loss(logits, target)
    smoothed = segmentation_loss(logits, target, label_smoothing=0.2)
    # two classes: smoothed target (0.9, 0.1); loss = -(0.9 log p + 0.1 log(1-p))
    p = 1 / (1 + math.exp(-6.0))
    assert plain.item() == pytest.approx(-math.log(p), rel=1e-4)
    assert smoothed.item() == pytest.approx(-(0.9 * math.log(p) + 0.1 * math.log(1 - p)), rel=1e-4)
    assert smoothed > plain


def test_ignore_pixels_do_not_count() -> None:
    target = torch.randint(0, 2, (1, 8, 8))
    logits = torch.randn(1, 2, 8, 8)
    with_ignore = target.clone()
    with_ignore[:, :4] = 255
    logits_changed = logits.clone()
    logits_changed[:, :, :4] += 100 * torch.randn(1, 2, 4, 8)
    a = segmentation_loss(logits, with_ignore, dice_weight=1.0)
    b = segmentation_loss(logits_changed, with_ignore, dice_weight=1.0)
    assert a.item() == pytest.approx(b.item(), rel=1e-6)
    all_ignored = torch.full((1, 8, 8), 255)
    assert segmentation_loss(logits, all_ignored).item() == 0.0


def test_dice_and_class_weights_change_the_loss() -> None:
    target = torch.zeros(1, 8, 8, dtype=torch.long)
    target[0, 3] = 1
    logits = torch.zeros(1, 2, 8, 8)  # p = 0.5 everywhere
    ce = segmentation_loss(logits, target)
    assert ce.item() == pytest.approx(math.log(2))
    dice = soft_dice_loss(logits, target)
    assert dice.item() == pytest.approx(1 - (2 * 4 + 1) / (32 + 8 + 1))
    assert segmentation_loss(logits, target, dice_weight=0.5).item() == pytest.approx(
        ce.item() + 0.5 * dice.item()
    )
    weighted = segmentation_loss(logits, target, class_weights=torch.tensor([1.0, 5.0]))
    assert weighted.item() == pytest.approx(math.log(2))  # uniform p: weighted mean unchanged
    logits[:, 1] = -1.0  # now crack pixels are wrong: weighting them 5x raises the loss
    assert segmentation_loss(
        logits, target, class_weights=torch.tensor([1.0, 5.0])
    ) > segmentation_loss(logits, target)


def test_mixup_loss_is_lambda_weighted_loss_of_both_masks() -> None:
    model = CrackSegmenter(net=TINY_NET, mixup_alpha=0.4, dice_weight=0.5)
    # A net whose crack logit follows image brightness, so mixing visibly changes the loss.
    model.net = torch.nn.Conv2d(3, 2, 1)
    with torch.no_grad():
        model.net.weight.zero_()
        model.net.weight[1] = 2.0
        model.net.bias.zero_()
    images = torch.ones(4, 3, 8, 8)
    images[2:] = -1  # samples 0,1 bright = crack; 2,3 dark = background
    masks = torch.zeros(4, 8, 8, dtype=torch.long)
    masks[:2] = 1
    lam, perm = 0.7, torch.tensor([2, 3, 0, 1])
    model.draw_mixup = lambda n: (lam, perm)  # fix the random draw
    got = model.training_loss(images, masks)
    logits = model(lam * images + (1 - lam) * images[perm])
    expected = lam * model.compute_loss(logits, masks) + (1 - lam) * model.compute_loss(
        logits, masks[perm]
    )
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    unmixed = model.compute_loss(model(images), masks)
    assert got.item() > unmixed.item() + 0.1  # mixed inputs with soft targets are harder


def test_mixup_switch() -> None:
    off = CrackSegmenter(net=TINY_NET, mixup_alpha=0.0)
    on = CrackSegmenter(net=TINY_NET, mixup_alpha=0.4, mixup_prob=1.0)
    assert off.draw_mixup(4) is None
    lam, perm = on.draw_mixup(4)
    assert 0 <= lam <= 1 and sorted(perm.tolist()) == [0, 1, 2, 3]
    assert on.draw_mixup(1) is None  # nothing to mix with


def test_label_smoothing_switch_reaches_the_module_loss() -> None:
    target = torch.randint(0, 2, (1, 8, 8))
    logits = confident_logits(target)
    a = CrackSegmenter(net=TINY_NET, dice_weight=0.0).compute_loss(logits, target)
    b = CrackSegmenter(net=TINY_NET, dice_weight=0.0, label_smoothing=0.2).compute_loss(
        logits, target
    )
    assert b > a
