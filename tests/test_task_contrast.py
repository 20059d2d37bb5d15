"""Recall by contrast: faint and dark crack pixels are told apart, and a faint pixel missed
beside a found crack counts as a rim, one missed away from any as a whole crack missed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gan.contrast as contrast
from synth.io import Sample


def two_crack_sample() -> Sample:
    """Flat grey surface: a dark crack (rows 10-11) whose first 3 columns are faint, and a
    faint crack on its own (rows 30-31)."""
    image = np.full((48, 64, 3), 160, np.uint8)
    mask = np.zeros((48, 64), np.uint8)
    mask[10:12, :] = 1
    mask[30:32, :] = 1
    image[10:12, 3:] = 30  # dark
    image[10:12, :3] = 150  # its faint end, beside the found dark crack
    image[30:32, :] = 150  # a faint crack on its own
    return Sample(image, mask)


def test_contrast_is_the_darkening_against_the_surface() -> None:
    s = two_crack_sample()
    c = contrast.crack_contrast(s.image, s.semantic).reshape(4, 64)
    assert np.allclose(c[:2, 3:], 130, atol=2)  # 160 - 30
    assert np.allclose(c[2:], 10, atol=2)  # 160 - 150


def test_faint_misses_split_into_rims_and_whole_cracks(monkeypatch) -> None:
    s = two_crack_sample()

    def predicts_the_dark_crack(model, samples, eval_size, batch_size):
        prob = torch.zeros(48, 64)
        prob[10:12, 3:] = 1.0
        yield 0, prob, s.image

    monkeypatch.setattr(contrast, "crack_probabilities", predicts_the_dark_crack)
    r = contrast.recall_by_contrast(None, [s], contrast.sample_contrasts([s]), None, near_px=3)
    assert r["recall"] == 122 / 256
    # faint pixels: 6 at the dark crack's end, 128 on the faint crack; quarters by pixel share
    faint = r["faintest"]
    assert faint["found"] == 0.0
    assert 0 < faint["missed_near"] < faint["missed_away"]
    assert abs(faint["found"] + faint["missed_near"] + faint["missed_away"] - 1) < 1e-9
    assert r["recall_by_quarter"][-1] == 1.0  # the darkest quarter: all found


def test_fixed_band_edges_compare_two_sets_band_for_band(monkeypatch) -> None:
    """Given edges, a pixel's band is its contrast against them, not its rank in this set."""
    s = two_crack_sample()

    def finds_everything(model, samples, eval_size, batch_size):
        yield 0, torch.from_numpy((s.semantic == 1).astype(np.float32)), s.image

    monkeypatch.setattr(contrast, "crack_probabilities", finds_everything)
    contrasts = contrast.sample_contrasts([s])
    r = contrast.recall_by_contrast(None, [s], contrasts, None, edges=[50, 100, 120])
    assert r["quarter_edges"] == [50.0, 100.0, 120.0]
    assert r["share_by_quarter"] == [134 / 256, 0.0, 0.0, 122 / 256]  # faint ~10, dark ~130
    assert r["recall_by_quarter"][0] == r["recall_by_quarter"][3] == 1.0
    assert np.isnan(r["recall_by_quarter"][1])  # an empty band says so
    with pytest.raises(ValueError, match=r"quarter_edges=\[100, 50, 120\]: three increasing"):
        contrast.recall_by_contrast(None, [s], contrasts, None, edges=[100, 50, 120])
    # a probability threshold past 1 found nothing (recall 0); masks with no crack failed
    # with numpy's IndexError
    with pytest.raises(ValueError, match="threshold=1.5: a crack probability between 0 and 1"):
        contrast.recall_by_contrast(None, [s], contrasts, None, threshold=1.5)
    with pytest.raises(ValueError, match="no crack pixel in the test masks"):
        contrast.recall_by_contrast(None, [s], [np.zeros(0)], None)


def test_the_tool_refuses_no_checkpoint_and_a_photo_folder_without_masks(tmp_path) -> None:
    """'ckpts=[]' exited 0 with no output; test_lab=null named a folder called 'null'."""
    from _cli_fixtures import run_tool

    from gan.evaluate import labeled_samples
    from synth.io import DataError
    from synth.toy import write_toy_real_folder

    data = write_toy_real_folder(tmp_path / "real", n=2)
    with pytest.raises(DataError, match="a photo folder needs its masks .test_lab.; null is for"):
        labeled_samples(data / "test_img", None)
    logs = f"paths.log_dir={tmp_path / 'logs'}"  # Hydra's run folder, not the checkout's
    proc = run_tool("recall_by_contrast", "ckpts=[]", f"paths.data_dir={data}", logs)
    assert proc.returncode == 1 and "error: ckpts=[]: name at least one task checkpoint" in (
        proc.stderr
    )
    # a bad size, before any checkpoint loads (a traceback at the first scoring, after all)
    gone = tmp_path / "gone.ckpt"
    proc = run_tool(
        "recall_by_contrast", f"ckpts=[{gone}]", "eval_size=30", f"paths.data_dir={data}", logs
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "error: eval_size=30: expected [H, W]" in proc.stderr
