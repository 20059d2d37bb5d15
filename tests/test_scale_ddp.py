"""Two DDP processes on CPU (trainer=ddp_cpu): rank 0 alone writes checkpoints, logs, images."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import pytest
from _cli_fixtures import gan_overrides, run_tool, task_overrides
from _gan_fixtures import make_synthetic

from gan.checkpoint import load_checkpoint
from gan.evaluate import evaluate_folder, load_segmenter
from synth.toy import write_toy_real_folder

STEPS = 2


def assert_single_writer(tmp: Path, run_name: str, metric: str) -> Path:
    """Exactly one of each artefact: a second rank writing would add files or version dirs."""
    ckpts = list((tmp / "checkpoints").rglob("*.ckpt"))
    assert [p.relative_to(tmp).as_posix() for p in ckpts] == [f"checkpoints/{run_name}/last.ckpt"]
    assert load_checkpoint(ckpts[0])["global_step"] == STEPS
    logs = tmp / "logs"
    assert len(list(logs.rglob("metrics.csv"))) == 1 and len(list(logs.rglob("hparams.yaml"))) == 1
    assert sorted(p.name for p in logs.iterdir()) == sorted(["hydra", run_name])  # one run dir
    assert not [p for p in (logs / run_name).iterdir() if p.name.startswith("version_")]
    with (logs / run_name / "metrics.csv").open(newline="") as file:
        steps = [int(r["step"]) for r in csv.DictReader(file) if r.get(metric)]
    assert steps == list(range(STEPS)), steps  # one row per step, not one per rank
    return logs / run_name


def test_gan_ddp_cpu_rank0_writes_once(tmp_path: Path) -> None:
    write_toy_real_folder(tmp_path / "real")
    syn = make_synthetic(tmp_path / "syn", n=4, shard_size=2, h=32, w=40)
    proc = run_tool("train_gan", *gan_overrides(tmp_path, syn, STEPS), "trainer=ddp_cpu")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count(f"generator steps: {STEPS}") == 1  # said by rank 0, not by each
    run = assert_single_writer(tmp_path, "adapt", "train/total")
    images = sorted(p.name for p in (run / "images").iterdir())
    assert images == [f"adapt_A_GA_FGA_B_FB_fsGA_{s:06d}.png" for s in range(STEPS)]  # as the rows


def test_task_ddp_cpu_rank0_writes_once(tmp_path: Path) -> None:
    real = write_toy_real_folder(tmp_path / "real")
    blank = cv2.imread(str(real / "test_lab" / "0.png"), cv2.IMREAD_GRAYSCALE) * 0
    cv2.imwrite(str(real / "test_lab" / "0.png"), blank)  # unlike the others: counting it
    # twice moves the scores, whatever a 2-step model draws
    proc = run_tool("train_task", *task_overrides(tmp_path, STEPS), "trainer=ddp_cpu")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("test metrics ->") == 1  # metrics.json from rank 0 only
    run = assert_single_writer(tmp_path, "task_oracle", "train/loss")
    assert sorted(p.name for p in (run / "images").iterdir()) == [
        f"val_predictions_{STEPS - 1:06d}.png"  # the step of the last training row
    ]
    (scores,) = list((tmp_path / "out").rglob("metrics.json"))
    # 3 test images on 2 ranks: scored once each (torch's sampler would repeat one), so the
    # summed metrics are the single-process scores of the same weights
    model = load_segmenter(tmp_path / "checkpoints" / "task_oracle" / "last.ckpt")
    alone = evaluate_folder(
        model,
        tmp_path / "real" / "test_img",
        tmp_path / "real" / "test_lab",
        tmp_path / "alone",
        eval_size=None,
    )
    scored = json.loads(scores.read_text())
    for key in ("f1", "miou", "tol_f1"):
        assert scored[f"test/{key}"] == pytest.approx(alone[key], abs=1e-6), key
