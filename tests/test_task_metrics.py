"""Task metrics against hand-computed values, including the 2-pixel tolerance F1."""

from __future__ import annotations

import pytest
import torch

from gan.task import (
    ToleranceF1,
    build_metrics,
    confusion_counts,
    f1_from_counts,
    tolerance_counts,
    tolerance_f1_from_counts,
)


def line_mask(col: int, h: int = 20, w: int = 20) -> torch.Tensor:
    m = torch.zeros(1, h, w, dtype=torch.long)
    m[0, :, col] = 1
    return m


def test_one_pixel_shift_full_tolerance_f1_but_zero_plain_f1() -> None:
    target, pred = line_mask(10), line_mask(11)
    metrics = build_metrics(tolerance=2)
    out = metrics(pred, target)
    assert out["f1"].item() == pytest.approx(0.0)
    assert out["tol_f1"].item() == pytest.approx(1.0)


def test_tolerance_limit_is_two_pixels() -> None:
    target = line_mask(10)
    assert ToleranceF1(2)(line_mask(12), target).item() == pytest.approx(1.0)
    assert ToleranceF1(2)(line_mask(13), target).item() == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("dy", "dx", "within"),
    [(2, 0, True), (0, -2, True), (1, 1, True), (1, 2, False), (2, 2, False), (-2, 1, False)],
)
def test_tolerance_is_a_distance_not_a_square(dy: int, dx: int, within: bool) -> None:
    """2 px means at most 2 px away, Euclidean: the square window counted (2, 1) and (2, 2),
    2.2 and 2.8 px off, as within it, and read about 0.04 tolerance F1 high on DeepCrack."""
    target = torch.zeros(1, 9, 9, dtype=torch.long)
    pred = target.clone()
    target[0, 4, 4], pred[0, 4 + dy, 4 + dx] = 1, 1
    assert tolerance_counts(pred, target, 2)[0].tolist() == [int(within), 1, int(within), 1]
    assert ToleranceF1(2)(pred, target).item() == float(within)


def test_tolerance_counts_hand_case() -> None:
    # truth: column 5 (20 px); prediction: column 6 (20 px, all within tolerance) plus one
    # isolated pixel far away -> precision 20/21, recall 20/20.
    target, pred = line_mask(5), line_mask(6)
    pred[0, 10, 15] = 1
    counts = tolerance_counts(pred, target, 2)[0].tolist()
    assert counts == [20, 21, 20, 20]
    p, r = 20 / 21, 1.0
    assert ToleranceF1(2)(pred, target).item() == pytest.approx(2 * p * r / (p + r), abs=1e-6)


def test_metrics_equal_hand_computed_and_ignore_pixels_excluded() -> None:
    target = torch.tensor([[[1, 1, 0, 0], [0, 0, 0, 255]]])
    pred = torch.tensor([[[1, 0, 1, 0], [0, 0, 0, 1]]])  # the 255 pixel's prediction must not count
    tp, fp, fn = confusion_counts(pred, target)[0].tolist()
    assert (tp, fp, fn) == (1, 1, 1)
    out = build_metrics()(pred, target)
    assert out["f1"].item() == pytest.approx(2 * 1 / (2 * 1 + 1 + 1))
    assert out["crack_iou"].item() == pytest.approx(1 / 3)
    assert out["precision"].item() == pytest.approx(1 / 2)  # 2 crack predictions, 1 right
    pred[0, 0, 2] = 0  # drop the false crack: precision 1, recall still 1 of 2
    out = build_metrics()(pred, target)
    assert (out["precision"].item(), out["recall"].item()) == pytest.approx((1.0, 0.5))
    pred[0, 0, 2] = 1
    out = build_metrics()(pred, target)
    # background: 5 true, 5 predicted, 4 shared -> IoU 4/6
    bg_iou = 4 / 6
    assert out["miou"].item() == pytest.approx((bg_iou + 1 / 3) / 2)
    assert f1_from_counts(tp, fp, fn) == pytest.approx(out["f1"].item())


def test_tolerance_metric_accumulates_over_batches() -> None:
    metric = ToleranceF1(2)
    metric.update(line_mask(6), line_mask(5))  # perfect within tolerance
    metric.update(torch.zeros(1, 20, 20, dtype=torch.long), line_mask(5))  # missed entirely
    # precision 20/20, recall 20/40
    assert metric.compute().item() == pytest.approx(2 * 1 * 0.5 / 1.5)


def test_empty_cases() -> None:
    assert tolerance_f1_from_counts(0, 0, 0, 0) == 1.0
    assert tolerance_f1_from_counts(0, 5, 0, 0) == 0.0
    assert f1_from_counts(0, 0, 0) == 1.0
    # a test set with no crack, and a model that draws none: every F1 and IoU agrees
    empty = torch.zeros(2, 8, 8, dtype=torch.long)
    scores = {k: float(v) for k, v in build_metrics()(empty, empty).items()}
    assert scores["f1"] == scores["tol_f1"] == scores["crack_iou"] == scores["miou"] == 1.0
    assert scores["precision"] == scores["recall"] == 1.0  # were 0 beside an F1 of 1
    drawn = empty.clone()
    drawn[0, 3, 3] = 1
    scores = {k: float(v) for k, v in build_metrics()(drawn, empty).items()}
    assert scores["f1"] == scores["tol_f1"] == scores["crack_iou"] == 0.0


def test_probabilities_thresholded_at_half() -> None:
    target = line_mask(10)
    probs = target.float() * 0.6 + 0.2  # 0.8 on the line, 0.2 elsewhere
    assert ToleranceF1(2)(probs, target).item() == pytest.approx(1.0)


def test_unchecked_metrics_score_as_torchmetrics_checked_ones_do() -> None:
    """build_metrics turns torchmetrics' input checks off for speed; over batches with ignore
    pixels every score must stay what the checked metrics give."""
    ours, checked = build_metrics(), build_metrics(validate_args=True)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        pred = (torch.rand(2, 16, 24, generator=g) < 0.3).long()
        target = (torch.rand(2, 16, 24, generator=g) < 0.2).long()
        target[:, :3] = 255  # padding rows
        ours.update(pred, target)
        checked.update(pred, target)
    assert all(not m.validate_args for name, m in ours.items() if name != "tol_f1")
    assert all(m.validate_args for name, m in checked.items() if name != "tol_f1")
    expected = checked.compute()
    for name, score in ours.compute().items():
        assert score.item() == pytest.approx(expected[name].item(), abs=1e-6), name


def test_a_collection_hands_precomputed_tolerance_counts_to_tolerance_f1_alone() -> None:
    """gan.evaluate computes each batch's tolerance counts once, for its per-image rows and
    the set's tolerance F1: the counts given must be the ones scored, and every other score
    must stay what the labels give."""
    target, pred = line_mask(5), line_mask(6)
    pred[0, 10, 15] = 1
    given, plain = build_metrics(), build_metrics()
    given.update(pred, target, tol_counts=tolerance_counts(pred, target, 2))
    plain.update(pred, target)
    scores = {k: float(v) for k, v in given.compute().items()}
    assert scores == {k: float(v) for k, v in plain.compute().items()}
    other = build_metrics()
    other.update(pred, target, tol_counts=torch.tensor([[0, 21, 0, 20]]))  # nothing in reach
    scores = {k: float(v) for k, v in other.compute().items()}
    assert scores["tol_f1"] == 0.0 and scores["f1"] == float(plain.compute()["f1"])
