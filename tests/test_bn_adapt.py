"""Test-time BatchNorm re-estimation (AdaBN): statistics from the photos, nothing else moved."""

from __future__ import annotations

import json

import pytest
import torch
from _task_fixtures import make_folder
from torch import nn

from gan.bn_adapt import recalibrate_batchnorm
from gan.evaluate import recalibrate_on_folder
from gan.task import CrackSegmenter
from synth.io import DataError


def shifted(n: int, mean: float, std: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return mean + std * torch.randn(n, 3, 8, 8, generator=g)


def net_with_batchnorm() -> nn.Sequential:
    net = nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 2, 1))
    net[0].running_mean.fill_(-7.0)  # as if trained elsewhere
    net[0].running_var.fill_(9.0)
    return net


def test_statistics_become_the_photos_average_in_any_order() -> None:
    batches = [shifted(4, 2.0, 0.5, 0), shifted(4, 4.0, 0.5, 1)]
    net = net_with_batchnorm().train()
    weight = net[1].weight.clone()
    assert recalibrate_batchnorm(net, batches) == 8
    bn = net[0]
    expected_mean = torch.stack([b.mean((0, 2, 3)) for b in batches]).mean(0)
    torch.testing.assert_close(bn.running_mean, expected_mean)
    expected_var = torch.stack([b.var((0, 2, 3), unbiased=True) for b in batches]).mean(0)
    torch.testing.assert_close(bn.running_var, expected_var)
    assert bn.momentum == 0.1 and net.training and bn.training  # settings restored
    torch.testing.assert_close(net[1].weight, weight)  # weights untouched

    again = net_with_batchnorm().eval()
    recalibrate_batchnorm(again, reversed(batches))
    torch.testing.assert_close(again[0].running_mean, bn.running_mean)
    assert not again.training  # an eval-mode net stays in eval mode


def test_no_photo_or_no_batchnorm_fails_before_touching_anything() -> None:
    net = net_with_batchnorm()
    with pytest.raises(ValueError, match="no image"):
        recalibrate_batchnorm(net, [])
    assert torch.all(net[0].running_mean == -7.0)
    with pytest.raises(ValueError, match="no BatchNorm"):
        recalibrate_batchnorm(nn.Conv2d(3, 2, 1), [shifted(1, 0, 1, 0)])


def tiny_segmenter() -> CrackSegmenter:
    return CrackSegmenter(net={"name": "unet", "base": 4, "depth": 2}).eval()


@pytest.mark.parametrize("eval_size", [(24, 32), None])
def test_a_folder_of_photos_moves_the_statistics_and_the_predictions(tmp_path, eval_size) -> None:
    img_dir, _ = make_folder(tmp_path, n=3)
    model = tiny_segmenter()
    images = torch.rand(1, 3, 24, 32) * 2 - 1
    before = model(images)
    assert recalibrate_on_folder(model, img_dir, eval_size, batch_size=2) == 3
    means = [m.running_mean for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.any(m != 0) for m in means)  # a fresh net starts at zero
    assert not model.training
    assert not torch.allclose(model(images), before)


def test_a_missing_photo_folder_is_a_data_error(tmp_path) -> None:
    with pytest.raises(DataError, match="not found"):
        recalibrate_on_folder(tiny_segmenter(), tmp_path / "missing")


def test_a_photo_too_small_for_batchnorm_statistics_is_a_data_error(tmp_path) -> None:
    """One 2x2 photo at a time: one value per channel at the deepest level, which torch's
    BatchNorm refuses in training mode with a bare ValueError."""
    import cv2
    import numpy as np

    (tmp_path / "tiny").mkdir()
    cv2.imwrite(str(tmp_path / "tiny" / "a.png"), np.full((64, 64, 3), 9, np.uint8))
    cv2.imwrite(str(tmp_path / "tiny" / "b.png"), np.zeros((2, 2, 3), np.uint8))
    # the photo named (the folder was, which left the user to find it)
    with pytest.raises(DataError, match=r"tiny/b\.png: a photo too small for BatchNorm"):
        recalibrate_on_folder(tiny_segmenter(), tmp_path / "tiny", eval_size=None)
    with pytest.raises(DataError, match=r"^eval_size=\[2, 2\]: photos too small for BatchNorm"):
        recalibrate_on_folder(tiny_segmenter(), tmp_path / "tiny", eval_size=[2, 2], batch_size=1)


def test_evaluate_tool_recalibrates_on_the_photos_it_is_given(tmp_path) -> None:
    from _cli_fixtures import run_tool

    img, lab = make_folder(tmp_path / "real", n=3)
    model = tiny_segmenter()
    ckpt = tmp_path / "last.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}, ckpt)
    common = [f"ckpt={ckpt}", f"test_img={img}", f"test_lab={lab}", "eval_size=[24,32]"]
    common.append(f"paths.log_dir={tmp_path / 'logs'}")  # Hydra's run folder, not the checkout's
    proc = run_tool(
        "evaluate", *common, f"out_dir={tmp_path / 'adabn'}", f"recalibrate_bn_on={img}"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    scored = json.loads((tmp_path / "adabn" / "metrics.json").read_text())
    assert scored["bn_recalibrated_on"] == {"image_dir": str(img), "images": 3}
    assert "every photo resized to 24x32 (eval_size; null: each at its own size)" in proc.stdout

    proc = run_tool("evaluate", *common, f"out_dir={tmp_path / 'bad'}", "recalibrate_bn_on=nowhere")
    assert proc.returncode == 1 and "error: nowhere: image folder not found" in proc.stderr
    assert not (tmp_path / "bad" / "metrics.json").exists()
