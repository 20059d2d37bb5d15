"""Two DDP processes on CPU (gloo) through the real entry point and configs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch
from _cli_fixtures import TINY_GAN
from _gan_fixtures import make_real, make_synthetic

from gan.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def test_train_gan_ddp_cpu_two_processes_and_resume(tmp_path):
    syn = make_synthetic(tmp_path / "syn", n=4, shard_size=2)
    real = make_real(tmp_path / "real", n=3)
    cmd = [
        sys.executable,
        str(ROOT / "tools" / "train_gan.py"),
        "trainer=ddp_cpu",
        "trainer.max_steps=2",
        "trainer.log_every_n_steps=1",
        f"paths.root_dir={tmp_path}",
        f"gan_data.synthetic_dir={syn}",
        f"gan_data.real_dir={real}",
        *TINY_GAN,
        "callbacks.model_checkpoint.every_n_train_steps=1",
        "~callbacks.progress_bar",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "generator steps: 2" in proc.stdout
    assert (tmp_path / "checkpoints" / "adapt" / "last.ckpt").is_file()
    images = list((tmp_path / "logs" / "adapt").rglob("images/*.png"))
    assert len(images) == 2  # rank 0 only, one grid per step

    # rerun longer: both ranks resume, and their streams' place is saved again at the end
    more = [c if c != "trainer.max_steps=2" else "trainer.max_steps=4" for c in cmd]
    proc = subprocess.run(more, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Restored all states from the checkpoint" in proc.stderr
    saved = load_checkpoint(tmp_path / "checkpoints" / "adapt" / "last.ckpt")
    assert saved["global_step"] == 4
    assert saved["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [
        {"epoch": 0, "batches": 4}
    ]
    # each rank's own image pools and random state, taken back by that rank on a resume
    pools = saved["image_pools"]["ranks"]
    assert len(pools) == 2 and len(saved["callbacks"]["RandomStateCheckpoint"]["ranks"]) == 2
    assert pools[0]["a"]["images"].shape == pools[1]["a"]["images"].shape
    assert not torch.equal(pools[0]["a"]["images"], pools[1]["a"]["images"])  # own streams

    # resumed on other photos: refused in one line before the ranks start, none left waiting
    other = make_real(tmp_path / "other_real", n=2)
    moved = [c if c != f"gan_data.real_dir={real}" else f"gan_data.real_dir={other}" for c in more]
    proc = subprocess.run(moved, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert f"gan_data.real_dir={other} holds other files than {real}" in proc.stderr
    assert load_checkpoint(tmp_path / "checkpoints" / "adapt" / "last.ckpt")["global_step"] == 4
