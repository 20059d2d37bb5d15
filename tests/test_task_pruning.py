"""EL2N pruning keeps exactly the requested fraction, and exactly the hardest samples."""

from __future__ import annotations

import math

import pytest
import torch
from _task_fixtures import crack_sample

from gan.networks import UNet
from gan.pruning import el2n_per_sample, el2n_scores, prune_dataset_indices


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5, 0.7, 1.0])
def test_keeps_fraction_and_highest_scores(fraction: float) -> None:
    scores = torch.rand(40, generator=torch.Generator().manual_seed(1))
    kept = prune_dataset_indices(scores, fraction)
    assert len(kept) == round(fraction * 40)
    threshold = min(scores[kept])
    dropped = [i for i in range(40) if i not in kept]
    assert all(scores[i] <= threshold for i in dropped)
    assert kept == sorted(torch.argsort(scores, descending=True)[: len(kept)].tolist())


def test_keep_fraction_validated() -> None:
    with pytest.raises(ValueError, match="keep_fraction"):
        prune_dataset_indices([1.0, 2.0], 0.0)
    assert prune_dataset_indices([3.0, 1.0, 2.0], 0.01) == [0]  # at least one sample kept


def test_el2n_hand_values_and_ignore() -> None:
    # sample 0: perfect and confident -> ~0; sample 1: uniform 0.5/0.5 -> sqrt(0.5) per pixel
    target = torch.zeros(2, 2, 2, dtype=torch.long)
    logits = torch.zeros(2, 2, 2, 2)
    logits[0, 0] = 50.0
    target[1, 0, 0] = 255  # ignored pixel must not change the mean
    scores = el2n_per_sample(logits, target)
    assert scores[0].item() == pytest.approx(0.0, abs=1e-6)
    assert scores[1].item() == pytest.approx(math.sqrt(0.5), rel=1e-5)


def test_el2n_scores_after_short_training() -> None:
    samples = [crack_sample(i, 32, 32) for i in range(6)]
    scores = el2n_scores(
        lambda: UNet(3, 2, 4, 2),
        samples,
        score_after_steps=2,
        seeds=[0, 1],
        crop_size=32,
        batch_size=3,
    )
    assert scores.shape == (6,) and torch.isfinite(scores).all() and (scores > 0).all()
