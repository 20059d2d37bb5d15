"""Contact sheet: a PNG grid of image + overlay tiles, mixing sizes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from _synth_fixtures import tiny_config

from synth.io import Sample, read_image
from synth.preview import contact_sheet, load_samples


def test_contact_sheet_mixes_real_and_synthetic_sizes(tmp_path: Path) -> None:
    samples = load_samples(None, None, tiny_config(), num=3)
    real = Sample(np.zeros((48, 80, 3), np.uint8), np.ones((48, 80), np.uint8))
    path = contact_sheet([*samples, real], tmp_path / "sheet.png", nrow=2)
    sheet = read_image(path)
    assert sheet.shape == (2 + 2 * 66, 2 + 4 * 66, 3)
    assert (sheet[..., 0] > sheet[..., 1] + 50).any()  # red crack overlay present
