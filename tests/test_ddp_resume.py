"""A DDP task run (two CPU processes, gloo) stopped mid-epoch resumes to the weights of the run
never stopped: each rank continues its share of the epoch order, with its own random state."""

from __future__ import annotations

import os
from pathlib import Path

from _cli_fixtures import (
    ROOT,
    assert_same_weights,
    run_tool,
    straight_ckpt,
    task_overrides,
)

from gan.checkpoint import load_checkpoint
from synth.toy import write_toy_real_folder


def test_ddp_task_training_stopped_mid_epoch_resumes_to_the_uninterrupted_weights(
    tmp_path: Path,
) -> None:
    steps = 7  # 12 photos, 2 ranks x batch 2: 3 batches an epoch; stopped one into the second
    write_toy_real_folder(tmp_path / "real", n=12)
    overrides = [
        *task_overrides(tmp_path, steps),
        "trainer=ddp_cpu",
        "task.mixup_alpha=0.4",  # draws from each rank's own RNG
        "callbacks.model_checkpoint.every_n_train_steps=1",
    ]
    straight = run_tool("train_task", *overrides, "run_name=straight")
    assert straight.returncode == 0, straight.stderr[-3000:]

    stopped = [*overrides, "run_name=stopped"]
    stop = ["+callbacks.stop._target_=_stop_at_step.ExitAtStep", "+callbacks.stop.step=5"]
    paths = os.pathsep.join([str(ROOT), str(ROOT / "tests")])
    first = run_tool("train_task", *stopped, *stop, PYTHONPATH=paths)
    assert first.returncode != 0
    ckpt = tmp_path / "checkpoints" / "stopped" / "last.ckpt"
    saved = load_checkpoint(ckpt)
    assert saved["global_step"] == 4
    assert len(saved["callbacks"]["RandomStateCheckpoint"]["ranks"]) == 2
    rerun = run_tool("train_task", *stopped)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "Restored all states from the checkpoint" in rerun.stderr
    assert "dataloader is not resumable" not in rerun.stderr
    assert_same_weights(ckpt, straight_ckpt(tmp_path), 4)
