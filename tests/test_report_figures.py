"""The report's error figure: which test images it picks, and how it colours a model's errors."""

from __future__ import annotations

import torch

from gan.report import hardest_images
from gan.visual import ERROR_COLORS, error_overlay


def test_hardest_images_are_where_the_reference_beats_the_other_rows_most():
    f1 = {
        "synthetic": {"a": 0.9, "b": 0.2, "c": 0.5, "d": 0.1},
        "adapted": {"a": 0.9, "b": 0.4, "c": 0.5, "d": 0.1},
        "oracle": {"a": 0.9, "b": 0.9, "c": 0.6, "d": 0.1, "only_here": 1.0},
    }
    # Gaps to the oracle: b 0.6, c 0.1, a 0, d 0 (tie broken by name); 'only_here' lacks rows.
    assert hardest_images(f1, "oracle", 3) == ["b", "c", "a"]
    # Without the reference among the rows: the lowest mean F1 first.
    del f1["oracle"]
    assert hardest_images(f1, "oracle", 2) == ["d", "b"]
    assert hardest_images({"oracle": {"x": 0.2, "y": 0.1}}, "oracle", 1) == ["y"]


def test_error_overlay_colours_found_false_and_missed_pixels_apart():
    image = torch.full((3, 2, 2), 100, dtype=torch.uint8)
    truth = torch.tensor([[1, 1], [0, 0]])
    pred = torch.tensor([[1, 0], [1, 0]])
    drawn = error_overlay(image, truth, pred, alpha=1.0)
    found, missed = drawn[:, 0, 0].tolist(), drawn[:, 0, 1].tolist()
    false, right = drawn[:, 1, 0].tolist(), drawn[:, 1, 1].tolist()
    assert found == list(ERROR_COLORS["found"])
    assert false == list(ERROR_COLORS["false crack"])
    assert missed == list(ERROR_COLORS["missed"])
    assert right == [100, 100, 100]  # true background stays the photo
